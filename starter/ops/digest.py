"""``lifecycle ops digest``: what ops should look at, one line each, for a period (by
default the last 24 hours). Read from the database only.

Its lines today: the invoices Stripe retried by itself while the engine retries
(``LIFECYCLE_DUNNING_RETRY_MODE=engine``): Smart Retries, or a custom retry schedule, are
still on in the Stripe account and charge the customer on Stripe's schedule as well as the
engine's (``lifecycle.billing.charges``; docs/billing.md says which settings to turn off).
Each invoice is listed once, when it was first seen. Then every dunning whose end action
(the cancel) Stripe has not confirmed yet: its call fails and is retried, and Stripe keeps
billing until it succeeds (listed while it fails, whatever the period).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from lifecycle.billing.charges import stripe_retries_seen
from lifecycle.billing.dunning import end_actions_failing


def digest(session: Session, *, since: dt.datetime) -> list[str]:
    """The digest's lines since ``since``, oldest first (empty: nothing to look at)."""
    retries = [
        f"{r.at:%Y-%m-%d %H:%M} UTC  Smart Retries still on: Stripe retried invoice {r.invoice_id} of "
        f"customer {r.customer_id} itself (attempt {r.attempt_count}, the engine charged {r.engine_attempts} "
        "time(s)); turn retries off in the Stripe dashboard (docs/billing.md)"
        for r in stripe_retries_seen(session, since=since)
    ]
    failing = [
        f"{r.end_action_failing_since or r.since:%Y-%m-%d %H:%M} UTC  dunning end action {r.end_action} of customer "
        f"{r.customer_id} not confirmed by Stripe, retried ({r.end_action_error}); Stripe keeps billing "
        f"until it succeeds ({r.workflow_id})"
        for r in end_actions_failing(session)
    ]
    return retries + failing
