"""Billing with Stripe: the client, the catalog sync, the mirror of Stripe's objects,
webhook events, backfill."""
