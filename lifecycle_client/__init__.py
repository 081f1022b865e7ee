"""The product-side client of the engine (needs only httpx): usage check and record,
and a drop-in ASGI middleware."""
