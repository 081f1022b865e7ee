"""Webhooks to the product (outbound): the endpoints it registers, the events published for
it, the delivery log, and the Standard Webhooks signature on every delivery.

Not to be confused with the webhooks the engine receives (Stripe: ``lifecycle/billing/webhooks.py``).
"""
