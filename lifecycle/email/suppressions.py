"""Who must not get email: unsubscribes, hard bounces and spam reports.

A suppression is stored per address and reason (``suppressions``). A marketing email
skips anyone unsubscribed, bounced or reported spam; a transactional one (dunning, a
receipt) skips only hard bounces and spam reports. Written by the unsubscribe page, the
SendGrid event webhook and the product's opt-out event; read on every send.
"""

from __future__ import annotations

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from lifecycle.db import insert_ignore
from lifecycle.models import Suppression

# suppression reasons
UNSUBSCRIBE, BOUNCE, SPAM = "unsubscribe", "bounce", "spam_report"
TRANSACTIONAL_BLOCKERS = {BOUNCE, SPAM}
# how a skipped send names the reason on the customer's timeline
REASON_NAMES = {UNSUBSCRIBE: "unsubscribed", BOUNCE: "suppressed: hard bounce",
                SPAM: "suppressed: spam report"}


def suppression_reasons(session: Session, customer_id: str | None, email: str) -> set[str]:
    conds = [Suppression.email == email.lower()]
    if customer_id:
        conds.append(Suppression.customer_id == customer_id)
    return set(session.scalars(select(Suppression.reason).where(or_(*conds))))


def blocked_because(session: Session, *, customer_id: str, email: str, category: str) -> str:
    """Why an email of ``category`` may not go to this customer ("" when it may)."""
    blocked = suppression_reasons(session, customer_id, email)
    if category != "marketing":
        blocked &= TRANSACTIONAL_BLOCKERS
    return ", ".join(sorted(REASON_NAMES.get(b, b) for b in blocked))


def add_suppression(
    session: Session, *, email: str, reason: str, customer_id: str | None, source: str
) -> bool:
    """Record a suppression once per address and reason; True if it is new.

    An insert-or-ignore on (email, reason): two clicks of the same link at once both
    answer, one row is written (a check-then-insert let the second fail on the unique key)."""
    email = email.strip().lower()
    added = insert_ignore(session, Suppression, dict(
        email=email,
        customer_id=customer_id,
        reason=reason,
        scope="marketing" if reason == UNSUBSCRIBE else "all",
        source=source,
    ), on=("email", "reason"))
    if not added and customer_id:
        session.execute(
            update(Suppression)
            .where(Suppression.email == email, Suppression.reason == reason, Suppression.customer_id.is_(None))
            .values(customer_id=customer_id)
        )
    return added


def remove_unsubscribe(session: Session, *, customer_id: str, email: str) -> bool:
    """Lift a customer's own unsubscribe (never a bounce or a spam report); True if there was one."""
    rows = session.scalars(
        select(Suppression).where(
            Suppression.reason == UNSUBSCRIBE,
            or_(Suppression.customer_id == customer_id, Suppression.email == email.strip().lower()),
        )
    ).all()
    for row in rows:
        session.delete(row)
    return bool(rows)
