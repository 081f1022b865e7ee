"""Billing with Stripe, one module per role:

- ``client``        the Stripe client from the settings, the metadata keys the engine writes
- ``catalog_sync``  the plan catalog in Stripe (``lifecycle stripe sync``), the active plan
- ``prices``        Stripe prices and plans to tiers; the prices and products Stripe showed us
- ``shapes``        Stripe payloads (2017 and current API versions) parsed into records
- ``mirror``        subscriptions (with their history), invoices and payments, never backwards
- ``handlers``      what each webhook event does: one handler per event type
- ``webhooks``      the webhook event log: record once, process, retry what is stuck
- ``backfill``      the mirror rebuilt from Stripe's list endpoints

Stripe calls here are synchronous (CLI and ``lifecycle dev``); activities wrap theirs in
threads. Processing an event never calls Stripe.
"""
