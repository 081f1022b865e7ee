"""The local stack for ``make dev``: Temporal dev server, localstripe, worker, API."""
