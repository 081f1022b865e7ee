"""What ``lifecycle customer show`` says about the growth campaigns, from the timeline.

The offers (``offer_made``: expansion, team promotion) and the renewal reminders (sent,
or skipped with the reason) are timeline entries and emails the workflows recorded; this
sums them up in one line each, so ops see at a glance what the customer was offered.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from lifecycle.contracts.growth import (
    EXPANSION_CAMPAIGN,
    RENEWAL_CAMPAIGN,
    TEAM_PROMOTION_CAMPAIGN,
)
from lifecycle.models import EmailMessage, LifecycleEvent

LABELS = {EXPANSION_CAMPAIGN: "expansion offer", TEAM_PROMOTION_CAMPAIGN: "team promotion"}


def growth_lines(session: Session, customer_id: str) -> list[str]:
    """``offers: expansion offer 2026-12-02 business $99 (sent); team promotion -`` and the
    renewal reminders sent and skipped (plain text: the caller escapes it)."""
    made = session.scalars(
        select(LifecycleEvent)
        .where(LifecycleEvent.customer_id == customer_id, LifecycleEvent.kind == "offer_made")
        .order_by(LifecycleEvent.occurred_at, LifecycleEvent.id)
    ).all()
    parts = []
    for campaign, label in LABELS.items():
        offers = [e for e in made if e.campaign == campaign]
        if not offers:
            parts.append(f"{label} -")
        for e in offers:
            d = e.detail
            parts.append(f"{label} {e.occurred_at:%Y-%m-%d} {d.get('plan', '')} {d.get('price', '')} "
                         f"({d.get('email', '?')})")
    sent = session.scalars(
        select(EmailMessage.step).where(
            EmailMessage.customer_id == customer_id, EmailMessage.campaign == RENEWAL_CAMPAIGN
        ).order_by(EmailMessage.id)
    ).all()
    skipped = session.scalars(
        select(LifecycleEvent).where(
            LifecycleEvent.customer_id == customer_id,
            LifecycleEvent.campaign == RENEWAL_CAMPAIGN,
            LifecycleEvent.kind == "email_skipped",
        ).order_by(LifecycleEvent.id)
    ).all()
    renewal = [f"{step} sent" for step in sent] + [
        f"{e.detail.get('step')} skipped ({e.detail.get('reason')})" for e in skipped
    ]
    return [f"offers: {'; '.join(parts)}", f"renewal reminders: {'; '.join(renewal) or '-'}"]
