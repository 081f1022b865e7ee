"""The ``lifecycle`` command line (typer), one module per command group."""
