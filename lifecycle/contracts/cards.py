"""The customer's default card as workflows see it, and the card-expiry campaign's input.

A card is valid through the last day of its ``exp_month``/``exp_year``: it expires at the
first instant of the next month (UTC, as card networks count it), which
:func:`card_expires_at` computes. The campaign id carries the expiry month
(``customer-{id}/card-expiry/{yyyy-mm}``), so one card's reminders run once.

No I/O, no clock. No ``from __future__ import annotations`` here: these dataclasses cross
Temporal.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime

from lifecycle.contracts.policy import EmailStep

CARD_EXPIRY_CAMPAIGN = "card_expiry"  # the campaign name in email logs and results
CARD_EXPIRY_ID_PART = "card-expiry"  # the workflow id's part: customer-{id}/card-expiry/{yyyy-mm}


@dataclass
class CardOnFile:
    """The default card (brand, last 4 digits, expiry) and the reminders' workflow, if one runs."""

    payment_method_id: str
    brand: str = ""
    last4: str = ""
    exp_month: int = 0
    exp_year: int = 0
    reminders_workflow_id: str | None = None

    @property
    def expiry_month(self) -> str:
        """``yyyy-mm``: the part of the reminders' workflow id."""
        return f"{self.exp_year:04d}-{self.exp_month:02d}"

    def same_card(self, other: "CardOnFile | None") -> bool:
        return other is not None and (
            self.payment_method_id, self.exp_month, self.exp_year, self.last4, self.brand
        ) == (other.payment_method_id, other.exp_month, other.exp_year, other.last4, other.brand)


def card_expires_at(exp_month: int, exp_year: int) -> datetime:
    """The first instant the card no longer works: the start of the month after its expiry."""
    if not 1 <= exp_month <= 12:
        raise ValueError(f"exp_month must be 1..12, got {exp_month}")
    if exp_month == 12:
        return datetime(exp_year + 1, 1, 1, tzinfo=UTC)
    return datetime(exp_year, exp_month + 1, 1, tzinfo=UTC)


@dataclass
class CardExpiryInput:
    customer_id: str
    card: CardOnFile
    expires_at: datetime
    reminders: list[EmailStep] = field(default_factory=list)
    day_seconds: float = 86400.0
