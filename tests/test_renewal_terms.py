"""The renewal_terms activity on SQLite and PostgreSQL: what a renewal will charge (the
mirrored amount after discounts, in the subscription's currency) and the card (the default
card from the card mirror, never the newest one attached), as the reminder states them."""

from __future__ import annotations

import datetime as dt

from temporalio.testing import ActivityEnvironment

from activities.renewal import RenewalActivities
from lifecycle.billing.cards import record_card, set_default_card
from lifecycle.billing.payment_shapes import CardRec
from lifecycle.contracts.growth import RenewalTerms, RenewalTermsInput
from lifecycle.db import make_engine, make_session_factory
from lifecycle.models import Customer, StripeEvent, Subscription
from tests.support.helpers import add_customer


def _attached(event_id: str, stripe_customer: str, brand: str, last4: str, created: int) -> StripeEvent:
    return StripeEvent(id=event_id, type="payment_method.attached", created=created, payload={
        "id": event_id, "type": "payment_method.attached",
        "data": {"object": {"id": f"pm_{event_id}", "object": "payment_method", "customer": stripe_customer,
                            "card": {"brand": brand, "last4": last4}}}})


async def test_the_mirrored_amount_and_the_default_card_of_this_customer(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        sessions = make_session_factory(engine)
        add_customer(sessions, "ren-1", plan="professional")
        add_customer(sessions, "ren-2", plan="professional")
        end = dt.datetime(2027, 3, 14, tzinfo=dt.UTC)
        with sessions() as s:
            s.get(Customer, "ren-1").stripe_customer_id = "cus_ren1"  # type: ignore[union-attr]
            s.add(Subscription(stripe_subscription_id="sub_ren1", customer_id="ren-1", plan_code="professional",
                               interval="year", amount_cents=44100, status="active", current_period_end=end))
            s.add(_attached("evt_1", "cus_ren1", "visa", "4242", created=100))
            s.add(_attached("evt_2", "cus_ren1", "mastercard", "4444", created=200))  # the newer card
            s.add(_attached("evt_3", "cus_other", "amex", "0005", created=300))  # someone else's
            # the default card (invoice_settings.default_payment_method) is the older Visa
            record_card(s, CardRec("pm_evt_1", "cus_ren1", "visa", "4242", 12, 2030), 100)
            record_card(s, CardRec("pm_evt_2", "cus_ren1", "mastercard", "4444", 12, 2030), 200)
            set_default_card(s, "ren-1", "pm_evt_1", 150)
            s.commit()
        acts = RenewalActivities(sessions)
        env = ActivityEnvironment()
        known = await env.run(acts.renewal_terms, RenewalTermsInput("ren-1", "sub_ren1"))
        assert known == RenewalTerms(amount_cents=44100, card="Visa ending 4242")
        # no mirrored subscription and no Stripe customer: the workflow falls back to the tier
        assert await env.run(acts.renewal_terms, RenewalTermsInput("ren-2", "sub_none")) == RenewalTerms()
    finally:
        engine.dispose()
