"""Amounts people read (issue 18): every amount carries its currency, zero- and
three-decimal currencies by Stripe's minor units, no total of two currencies, the renewal
reminder's amount and card as Stripe will charge them, dates in the customer's time zone.

Each test reads what the customer or finance reads: the email as stored in
``email_messages`` (what the provider is handed), the report as the API and CLI give it.
"""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import select

from lifecycle.billing.dunning_report import report
from lifecycle.contracts.money import minor_units, money
from lifecycle.db import session_scope
from lifecycle.email.providers import OutboxProvider
from lifecycle.email.service import EmailService
from lifecycle.email.templates.render import TemplateSet
from lifecycle.models import Customer, DunningCase, EmailMessage, StripePrice, Subscription
from tests.support.email import TEMPLATES, EmailDB, make_settings, utc

NOON = utc(2026, 3, 3, 12)


def _price(s: object, pid: str, tier: str, interval: str, cents: int, currency: str) -> StripePrice:
    return StripePrice(id=pid, object="price", interval=interval, interval_count=1, unit_amount_cents=cents,
                       currency=currency, tier=tier, tier_source="price_metadata")


def _eur_customer(db: EmailDB, cid: str, *, plan: str = "starter", interval: str = "month",
                  amount: int = 1800, timezone: str = "UTC") -> None:
    """A customer billed in euros: their subscription's price is a EUR Stripe price."""
    with session_scope(db.factory) as s:
        s.add(Customer(id=cid, email=f"{cid}@example.org", name="Grete Weber", timezone=timezone, plan_code=plan))
        s.add(_price(s, f"price_{cid}", plan, interval, amount, "eur"))
        s.flush()
        s.add(Subscription(stripe_subscription_id=f"sub_{cid}", customer_id=cid, plan_code=plan,
                           interval=interval, amount_cents=amount, status="active",
                           stripe_price_id=f"price_{cid}",
                           current_period_end=dt.datetime(2027, 1, 1, tzinfo=dt.UTC)))


def _sent(db: EmailDB, cid: str, template: str) -> str:
    with session_scope(db.factory) as s:
        row = s.scalars(select(EmailMessage).where(EmailMessage.customer_id == cid,
                                                   EmailMessage.template == template)).one()
        return "\n".join([row.subject, row.text, row.html])


def _bare_dollars(text: str) -> list[str]:
    """Every "$" not written "US$": what a customer would take for their own dollar."""
    return re.findall(r"(?<!US)(?<!CA)(?<!A)\$\d[\d,.]*", text)


async def _send(db: EmailDB, cid: str, template: str, context: dict[str, object], key: str) -> None:
    from lifecycle.contracts.email import SendEmailInput

    service = EmailService(db.factory, OutboxProvider(), make_settings(db.url, email_frequency_cap=0))
    result = await service.send(SendEmailInput(
        customer_id=cid, template=template, idempotency_key=key, campaign="test", step=template,
        category="transactional", context=context, now=NOON))
    assert result.status == "sent", result


async def test_a_eur_customer_never_reads_a_dollar_sign(email_db: EmailDB) -> None:
    """The trial reminder quotes the plan in euros (Stripe's EUR price); the renewal reminder
    the subscription's amount in euros; an upgrade nudge, whose next tier Stripe has in US
    dollars only, says "US$" and why: never a bare "$"."""
    from temporalio.testing import ActivityEnvironment

    from activities.renewal import RenewalActivities
    from lifecycle.contracts.growth import RenewalInput, RenewalTermsInput
    from lifecycle.contracts.policy import EmailStep
    from workflows.growth.renewal import reminder_context

    _eur_customer(email_db, "eur-1")
    await _send(email_db, "eur-1", "trial_reminder", {"days_left": 3, "has_payment_method": True}, "t1")
    trial = _sent(email_db, "eur-1", "trial_reminder")
    assert "€18/month" in trial and _bare_dollars(trial) == []

    _eur_customer(email_db, "eur-2", plan="professional", interval="year", amount=44100)
    terms = await ActivityEnvironment().run(RenewalActivities(email_db.factory).renewal_terms,
                                            RenewalTermsInput("eur-2", "sub_eur-2"))
    step = EmailStep(name="renewal_30d", template="renewal_reminder", days_before_end=30)
    inp = RenewalInput("eur-2", dt.datetime(2027, 1, 1, tzinfo=dt.UTC), "professional", "year", [step])
    await _send(email_db, "eur-2", "renewal_reminder", reminder_context(inp, step, terms), "r1")
    renewal = _sent(email_db, "eur-2", "renewal_reminder")
    assert "€441" in renewal and _bare_dollars(renewal) == []

    # what the usage campaign gives the nudge (its declared sample: the catalog's "$49")
    nudge = TemplateSet(TEMPLATES / "email").declared("usage_nudge")
    assert nudge["next_plan"]["price"] == "$49"
    await _send(email_db, "eur-1", "usage_nudge", nudge, "n1")
    upgrade = _sent(email_db, "eur-1", "usage_nudge")
    assert "US$49/month" in upgrade and "list prices in US dollars" in upgrade
    assert _bare_dollars(upgrade) == []


def test_jpy_and_kwd_are_formatted_by_their_minor_units() -> None:
    """Stripe's amounts are in the currency's minor unit: yen have none (5000 is ¥5,000, not
    ¥50), Kuwaiti dinars have three (1500 fils is KWD 1.500); ISK is two-decimal in the API."""
    from lifecycle.contracts.dunning import DunningInvoice
    from workflows.dunning.effects import recovered_context

    assert (minor_units("jpy"), minor_units("KWD"), minor_units("eur")) == (0, 3, 2)
    assert money(5000, "jpy") == "¥5,000"
    assert money(123456, "krw") == "₩123,456"
    assert money(1500, "kwd") == "KWD 1.500"
    assert money(2000, "kwd") == "KWD 2"
    assert money(12345, "bhd") == "BHD 12.345"
    assert money(50000, "isk") == "ISK 500"
    assert (money(49000), money(44150), money(1050, "eur")) == ("$490", "$441.50", "€10.50")
    # the dunning email of a yen invoice, as the workflow writes it
    yen = [DunningInvoice(invoice_id="in_1", amount_due_cents=5000, currency="jpy")]
    assert recovered_context(yen, 2.0)["amount"] == "¥5,000"


def test_the_dunning_report_gives_one_total_per_currency(email_db: EmailDB) -> None:
    """$99 and €10 failed, the $99 recovered: the report never says 10,900 of anything."""
    from rich.console import Console

    import starter.cli.dunning as cli

    failed = utc(2026, 3, 1)
    with session_scope(email_db.factory) as s:
        s.add(DunningCase(invoice_id="in_usd", workflow_id="w1", customer_id="c1", amount_cents=9900,
                          currency="usd", failed_at=failed, outcome="recovered", how="retry_1",
                          closed_at=failed + dt.timedelta(days=2)))
        s.add(DunningCase(invoice_id="in_eur", workflow_id="w2", customer_id="c2", amount_cents=1000,
                          currency="eur", failed_at=failed, outcome="open"))
        s.add(DunningCase(invoice_id="in_jpy", workflow_id="w3", customer_id="c3", amount_cents=5000,
                          currency="jpy", failed_at=failed, outcome="open"))
    with email_db.factory() as s:
        body = report(s)
    assert body["failed"] == {"count": 3, "amounts": {"eur": 1000, "jpy": 5000, "usd": 9900}}
    assert body["recovered"] == {"count": 1, "amounts": {"usd": 9900}}
    assert body["recovered_by"] == {"retry_1": {"count": 1, "amounts": {"usd": 9900}}}
    assert body["open"] == {"count": 2, "amounts": {"eur": 1000, "jpy": 5000}}
    assert body["by_decline_code"]["unknown"]["failed"]["amounts"] == {"eur": 1000, "jpy": 5000, "usd": 9900}
    console = Console(record=True, width=200)
    original, cli.console = cli.console, console
    try:
        cli._print(body)
    finally:
        cli.console = original
    printed = console.export_text()
    assert "failed 3 (€10 + ¥5,000 + $99)" in printed
    assert "open 2 (€10 + ¥5,000)" in printed


async def test_dates_in_emails_are_in_the_customers_time_zone(email_db: EmailDB) -> None:
    """Access suspended at 03:00 UTC on March 10 is March 9 in Los Angeles: the customer who
    set that zone (``PUT /v1/customers/{id}/time-zone``) reads March 9; a bad name is a 422."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from starter.api import events

    email_db.add_customer("la-1")
    app = FastAPI()
    app.include_router(events.router)
    app.state.session_factory = email_db.factory
    with TestClient(app) as http:
        assert http.put("/v1/customers/la-1/time-zone", json={"time_zone": "Mars/Olympus"}).status_code == 422
        assert http.put("/v1/customers/nobody/time-zone", json={"time_zone": "UTC"}).status_code == 404
        r = http.put("/v1/customers/la-1/time-zone", json={"time_zone": "America/Los_Angeles"})
        assert r.status_code == 200 and r.json() == {"customer_id": "la-1", "time_zone": "America/Los_Angeles"}
    with session_scope(email_db.factory) as s:
        assert s.get(Customer, "la-1").timezone == "America/Los_Angeles"  # type: ignore[union-attr]
    context = {"amount": "$19", "invoice_count": 1, "hard_decline": False, "decline_code": None,
               "days_overdue": 3, "suspend_at": "2026-03-10T03:00:00+00:00",
               "end_at": "2026-03-24T03:00:00+00:00", "end_action": "cancel"}
    await _send(email_db, "la-1", "dunning_reminder", context, "d1")
    await _send(email_db, "la-1", "dunning_suspended", context, "d2")
    reminder = _sent(email_db, "la-1", "dunning_reminder")
    assert "March 9, 2026" in reminder and "2026-03-10" not in reminder
    assert "March 23, 2026" in _sent(email_db, "la-1", "dunning_suspended")
    # a customer whose zone is unknown reads UTC
    email_db.add_customer("utc-1")
    await _send(email_db, "utc-1", "dunning_reminder", context, "d3")
    assert "March 10, 2026" in _sent(email_db, "utc-1", "dunning_reminder")
    # the renewal on January 1, 05:00 UTC is on December 31 in Los Angeles
    from lifecycle.contracts.growth import RenewalInput, RenewalTerms
    from lifecycle.contracts.policy import EmailStep
    from workflows.growth.renewal import reminder_context

    step = EmailStep(name="renewal_30d", template="renewal_reminder", days_before_end=30)
    renews = RenewalInput("la-1", dt.datetime(2027, 1, 1, 5, tzinfo=dt.UTC), "professional", "year", [step])
    renewal = reminder_context(renews, step, RenewalTerms(amount_cents=49000), with_instant=True)
    await _send(email_db, "la-1", "renewal_reminder", renewal, "r-la")
    la = _sent(email_db, "la-1", "renewal_reminder")
    assert "renews on December 31, 2026" in la and "January 1, 2027" not in la
    # the usage period that ends April 1, 00:00 UTC starts afresh on March 31 in Los Angeles
    from lifecycle.contracts.campaigns import UsageNudgeInput
    from workflows.usage_nudge import email_context as usage_context

    nudge = UsageNudgeInput("la-1", "ai_requests", 80, 800, 1000, "hard", utc(2026, 3, 1), "starter", "active",
                            period_end=utc(2026, 4, 1))
    await _send(email_db, "la-1", "usage_nudge", usage_context(nudge, with_instant=True), "u-la")
    usage = _sent(email_db, "la-1", "usage_nudge")
    assert "starts afresh on March 31" in usage and "April 1" not in usage


class _Invoices:
    def __init__(self, answer: object) -> None:
        self.answer, self.calls = answer, []  # type: ignore[var-annotated]

    def create_preview(self, params: dict[str, object]) -> object:
        import time

        self.calls.append(params)
        if isinstance(self.answer, Exception):
            raise self.answer
        if self.answer == "slow":
            time.sleep(1.0)
        return self.answer


class _FakeStripe:
    """Stands in for stripe.StripeClient's ``v1.invoices.create_preview``: answers as Stripe documents, fails, or is slow."""

    def __init__(self, answer: object) -> None:
        self.v1 = type("V1", (), {})()
        self.v1.invoices = _Invoices(answer)  # type: ignore[attr-defined]


async def test_the_renewal_reminder_quotes_the_preview_and_the_default_card(email_db: EmailDB) -> None:
    """The mirror says €441 (before tax); Stripe's preview of the renewal invoice says
    €524.79 (19 % VAT in): the reminder quotes €524.79 and the default card (not the newest
    one attached). When the preview fails or takes over the cap, it quotes the mirror."""
    import stripe
    from temporalio.testing import ActivityEnvironment

    from activities.renewal import RenewalActivities
    from activities.stripe.previews import RenewalPreviews
    from lifecycle.billing.cards import record_card, set_default_card
    from lifecycle.billing.payment_shapes import CardRec
    from lifecycle.contracts.growth import RenewalInput, RenewalTermsInput
    from lifecycle.contracts.policy import EmailStep
    from workflows.growth.renewal import reminder_context

    _eur_customer(email_db, "ren-eu", plan="professional", interval="year", amount=44100)
    with session_scope(email_db.factory) as s:
        s.get(Customer, "ren-eu").stripe_customer_id = "cus_reneu"  # type: ignore[union-attr]
        record_card(s, CardRec("pm_default", "cus_reneu", "visa", "4242", 12, 2030), 100)
        record_card(s, CardRec("pm_newest", "cus_reneu", "mastercard", "4444", 12, 2031), 200)
        set_default_card(s, "ren-eu", "pm_default", 150)
    step = EmailStep(name="renewal_30d", template="renewal_reminder", days_before_end=30)
    inp = RenewalInput("ren-eu", dt.datetime(2027, 1, 1, tzinfo=dt.UTC), "professional", "year", [step])
    env = ActivityEnvironment()

    async def terms(answer: object, timeout_s: float = 10.0):  # type: ignore[no-untyped-def]
        fake = _FakeStripe(answer)
        acts = RenewalActivities(email_db.factory, RenewalPreviews(fake, timeout_s=timeout_s))  # type: ignore[arg-type]
        got = await env.run(acts.renewal_terms, RenewalTermsInput("ren-eu", "sub_ren-eu"))
        return got, fake.v1.invoices.calls  # type: ignore[attr-defined]

    preview = {"object": "invoice", "amount_due": 52479, "currency": "eur",
               "total_taxes": [{"amount": 8379}], "total": 52479}
    got, calls = await terms(preview)
    assert calls == [{"customer": "cus_reneu", "subscription": "sub_ren-eu"}]
    assert (got.amount_cents, got.currency, got.source, got.card) == (52479, "eur", "preview", "Visa ending 4242")
    await _send(email_db, "ren-eu", "renewal_reminder", reminder_context(inp, step, got), "p1")
    sent = _sent(email_db, "ren-eu", "renewal_reminder")
    assert "€524.79" in sent and "Visa ending 4242" in sent and "4444" not in sent

    failed, _ = await terms(stripe.APIConnectionError("down"))
    assert (failed.amount_cents, failed.currency, failed.source) == (44100, "eur", "mirror")
    slow, _ = await terms("slow", timeout_s=0.2)
    assert (slow.amount_cents, slow.source) == (44100, "mirror")


async def test_offer_emails_quote_the_customers_currency_or_say_us_dollars(email_db: EmailDB) -> None:
    """The expansion offer to a EUR customer quotes Professional at Stripe's EUR prices; the
    team promotion's Business has no EUR price in the mirror, so it says US$99 and why."""
    from lifecycle.contracts.tiers import tiers_from_catalog
    from workflows.growth.entity import tier_offer

    _eur_customer(email_db, "eur-o")
    with session_scope(email_db.factory) as s:
        s.add(_price(s, "price_pro_eur_m", "professional", "month", 4500, "eur"))
        s.add(_price(s, "price_pro_eur_y", "professional", "year", 45000, "eur"))
    tiers = tiers_from_catalog()
    starter, pro, business = tiers.get("starter"), tiers.get("professional"), tiers.get("business")
    expansion = {"offer": "next_tier", "next_plan": tier_offer(pro, starter), "annual": None,
                 "usage": {"metric_label": "AI requests", "periods": 2, "plan_name": "Starter"}}
    await _send(email_db, "eur-o", "expansion_offer", expansion, "o1")
    offer = _sent(email_db, "eur-o", "expansion_offer")
    assert "€45/month" in offer and "€450 a year" in offer and _bare_dollars(offer) == []
    team = {"team_plan": tier_offer(business, starter),
            "team": {"why": "seats", "count": 3, "plan_name": "Starter"}}
    await _send(email_db, "eur-o", "team_promotion", team, "o2")
    promo = _sent(email_db, "eur-o", "team_promotion")
    assert "US$99/month" in promo and "list prices in US dollars" in promo and _bare_dollars(promo) == []


async def test_the_renewal_preview_against_localstripe_includes_tax(
    session_factory, stripe_acts, stripe_client  # type: ignore[no-untyped-def]
) -> None:
    """A $490 annual subscription with 19 % tax on it: the mirror says $490, Stripe's preview
    of the renewal (here localstripe's create_preview, through the real SDK call) $583.10,
    and that is what the terms quote. Without the tax the preview equals the mirror."""
    from temporalio.testing import ActivityEnvironment

    from activities.renewal import RenewalActivities
    from activities.stripe.previews import RenewalPreviews
    from lifecycle.contracts.growth import RenewalTermsInput
    from tests.support.stripe import subscribed

    cid, result = await subscribed(session_factory, stripe_acts, stripe_client, "professional", "year")
    acts = RenewalActivities(session_factory, RenewalPreviews(stripe_client))
    env = ActivityEnvironment()
    plain = await env.run(acts.renewal_terms, RenewalTermsInput(cid, result.stripe_subscription_id))
    assert (plain.source, plain.amount_cents, plain.currency) == ("preview", 49000, "usd")
    vat = stripe_client.v1.tax_rates.create(params={"display_name": "VAT", "percentage": 19.0, "inclusive": False})
    assert result.stripe_subscription_id
    stripe_client.v1.subscriptions.update(result.stripe_subscription_id, params={"default_tax_rates": [vat.id]})
    taxed = await env.run(acts.renewal_terms, RenewalTermsInput(cid, result.stripe_subscription_id))
    assert (taxed.source, taxed.amount_cents) == ("preview", 58310)
    assert money(taxed.amount_cents, taxed.currency) == "$583.10"


async def test_the_card_page_never_adds_two_currencies(monkeypatch, settings) -> None:  # type: ignore[no-untyped-def]
    """Open invoices of $99 and €10: the page lists each and charges "$99 + €10", never 109."""
    from lifecycle.billing.shapes import InvoiceRec
    from starter.pages import card as card_page

    def invoice(iid: str, cents: int, currency: str) -> InvoiceRec:
        return InvoiceRec(id=iid, customer="cus_1", customer_email=None, subscription="sub_1", status="open",
                          amount_due_cents=cents, amount_paid_cents=0, currency=currency, attempt_count=1,
                          period_start=None, period_end=None, paid_at=None, created=1, billing_reason=None,
                          charge=None, payment_intent=None)

    monkeypatch.setattr(card_page, "start_setup", lambda client, cus: "seti_secret")
    monkeypatch.setattr(card_page, "open_invoices",
                        lambda client, cus: [invoice("in_usd", 9900, "usd"), invoice("in_eur", 1000, "eur")])
    page = (await card_page._form(None, settings, "token", "cus_1")).body.decode()  # type: ignore[arg-type]
    assert "€10 + $99" in page and "Save card and pay €10 + $99" in page
    assert "$109" not in page and "109" not in page
