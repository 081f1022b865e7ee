"""The catalog in Stripe and the Stripe activities, against localstripe and a SQLite database."""

from __future__ import annotations

import dataclasses

import pytest
import stripe
from sqlalchemy import func, select
from temporalio.exceptions import ApplicationError

from activities.stripe import StripeActivities
from lifecycle.billing.catalog_sync import plan_id_for, sync_catalog
from lifecycle.contracts import catalog
from lifecycle.contracts.billing import (
    ChangePlanInput,
    CouponInput,
    EnsureCustomerInput,
    RetryInvoiceInput,
    StartSubscriptionInput,
)
from lifecycle.models import Customer, Invoice, PlanPrice, Subscription, SubscriptionChange
from starter.dev.localstripe import start_localstripe
from tests.support.helpers import add_customer
from tests.support.stripe import (
    FAILING_CARD,
    GOOD_CARD,
    RecordingStripe,
    activities_at,
    add_card,
    charges,
    customer_with_card,
    new_customer_id,
    subscribed,
)


def _stripe_plans(client: stripe.StripeClient) -> dict[str, bool]:
    out = {}
    for p in client.v1.plans.list(params={"limit": 100}).auto_paging_iter():
        out[p.id] = str(p.active).lower() == "true"
    return out


async def test_sync_twice_changes_nothing(stripe_settings, session_factory):
    from lifecycle.billing.client import make_stripe_client

    with start_localstripe() as fresh:  # an empty Stripe, to see the first run create everything
        client = make_stripe_client(stripe_settings.model_copy(update={"stripe_api_base": fresh.url}))
        first = sync_catalog(client, session_factory)
        plans_after_first = _stripe_plans(client)
        second = sync_catalog(client, session_factory)

        assert len(first.created) == 4 + 8  # a product per tier, a monthly and an annual plan each
        assert second.created == second.updated == second.retired == []
        assert _stripe_plans(client) == plans_after_first
        assert len(client.v1.products.list(params={"limit": 100}).data) == 4
    with session_factory() as s:
        prices = s.scalars(select(PlanPrice).where(PlanPrice.active.is_(True))).all()
        assert sorted((p.plan_code, p.interval, p.amount_cents) for p in prices) == sorted(
            (p.code, i, p.price_cents(i)) for p in catalog.PLANS for i in ("month", "year")
        )


async def test_price_change_retires_the_old_plan_for_new_subscriptions_only(
    stripe_client, session_factory, stripe_acts
):
    _cid, before = await subscribed(session_factory, stripe_acts, stripe_client, "professional")

    raised = [
        dataclasses.replace(p, monthly_price_cents=5900) if p.code == "professional" else p
        for p in catalog.PLANS
    ]
    report = sync_catalog(stripe_client, session_factory, plans=raised)
    old_id = plan_id_for("professional", "month", 4900)
    new_id = plan_id_for("professional", "month", 5900)
    assert report.created == [new_id] and report.retired == [old_id]
    assert sync_catalog(stripe_client, session_factory, plans=raised).changed is False

    # The existing subscription stays on its plan; a new one gets the new price.
    existing = stripe_client.v1.subscriptions.retrieve(before.stripe_subscription_id)
    assert existing["items"]["data"][0]["plan"]["id"] == old_id
    _cid2, after = await subscribed(session_factory, stripe_acts, stripe_client, "professional")
    assert after.amount_cents == 5900 and after.plan == "professional"

    sync_catalog(stripe_client, session_factory)  # back to the catalog's prices for other tests


@pytest.mark.parametrize("plan", [p.code for p in catalog.PLANS])
async def test_subscribe_to_each_tier(plan, stripe_client, session_factory, stripe_acts):
    cid, result = await subscribed(session_factory, stripe_acts, stripe_client, plan, "year")

    price = catalog.get_plan(plan).annual_price_cents
    assert (result.outcome, result.status, result.plan, result.interval) == ("active", "active", plan, "year")
    assert result.amount_cents == price and result.latest_invoice_status == "paid"
    with session_factory() as s:
        sub = s.scalar(select(Subscription).where(Subscription.customer_id == cid))
        inv = s.scalar(select(Invoice).where(Invoice.customer_id == cid))
        assert (sub.plan_code, sub.status, sub.amount_cents) == (plan, "active", price)
        assert (inv.status, inv.amount_paid_cents) == ("paid", price)


async def test_no_card_means_no_subscription(session_factory, stripe_acts, stripe_client):
    cid = new_customer_id()
    add_customer(session_factory, cid)
    result = await stripe_acts.start_subscription(StartSubscriptionInput(cid, "starter", f"{cid}:subscribe"))
    assert result.outcome == "no_payment_method" and result.stripe_subscription_id is None
    stripe_cus = stripe_acts.client.v1.customers.list(params={"email": f"{cid}@example.test"}).data
    assert len(stripe_cus) == 1
    assert stripe_client.v1.subscriptions.list(params={"customer": stripe_cus[0].id, "status": "all"}).data == []


async def test_failing_card_leaves_the_invoice_open_and_a_retry_after_a_good_card_pays_it(
    session_factory, stripe_acts, stripe_client
):
    cid, stripe_cus = await customer_with_card(session_factory, stripe_acts, stripe_client, card=FAILING_CARD)

    started = await stripe_acts.start_subscription(StartSubscriptionInput(cid, "business", f"{cid}:subscribe"))
    assert (started.outcome, started.status, started.latest_invoice_status) == (
        "payment_failed",
        "incomplete",
        "open",
    )

    # A retry with the same failing card: declined, reported, not raised.
    declined = await stripe_acts.retry_invoice(
        RetryInvoiceInput(cid, started.latest_invoice_id, f"{cid}:dunning:1")
    )
    assert (declined.outcome, declined.invoice_status) == ("declined", "open")
    assert declined.failure_code == "card_declined" and declined.hard_decline is False
    # The same step retried (e.g. after a worker crash) does not charge again.
    again = await stripe_acts.retry_invoice(RetryInvoiceInput(cid, started.latest_invoice_id, f"{cid}:dunning:1"))
    assert again.outcome == "declined"
    assert charges(stripe_client, stripe_cus) == 2  # creation + one retry

    add_card(stripe_client, stripe_cus, GOOD_CARD)  # the customer's new default is charged
    paid = await stripe_acts.retry_invoice(RetryInvoiceInput(cid, started.latest_invoice_id, f"{cid}:dunning:2"))
    assert (paid.outcome, paid.invoice_status) == ("paid", "paid")
    sub = stripe_client.v1.subscriptions.retrieve(started.stripe_subscription_id)
    assert sub.status == "active"
    with session_factory() as s:
        inv = s.scalar(select(Invoice).where(Invoice.stripe_invoice_id == started.latest_invoice_id))
        assert (inv.status, inv.amount_paid_cents) == ("paid", 9900)


async def test_a_retry_charges_the_default_card_never_the_newest_one_attached(
    session_factory, stripe_acts, stripe_client
):
    """Stripe's order: the invoice's, the subscription's, then the customer's default payment
    method. A newer card that is only attached (declining here) is neither charged nor made
    the default."""
    cid, stripe_cus = await customer_with_card(session_factory, stripe_acts, stripe_client, card=FAILING_CARD)
    started = await stripe_acts.start_subscription(StartSubscriptionInput(cid, "business", f"{cid}:subscribe"))
    assert started.latest_invoice_status == "open"
    good = add_card(stripe_client, stripe_cus, GOOD_CARD)  # the default, older
    add_card(stripe_client, stripe_cus, FAILING_CARD, default=False)  # newer, attached only

    paid = await stripe_acts.retry_invoice(RetryInvoiceInput(cid, started.latest_invoice_id, f"{cid}:dunning:1"))

    assert (paid.outcome, paid.charged) == ("paid", True)
    assert stripe_client.v1.invoices.retrieve(started.latest_invoice_id).status == "paid"
    assert stripe_client.v1.customers.retrieve(stripe_cus).invoice_settings.default_payment_method == good
    assert stripe_client.v1.subscriptions.retrieve(started.stripe_subscription_id).status == "active"
    with session_factory() as s:
        inv = s.scalar(select(Invoice).where(Invoice.stripe_invoice_id == started.latest_invoice_id))
        assert inv.status == "paid"


async def test_a_retry_for_a_card_that_is_not_the_default_charges_nothing(
    session_factory, stripe_acts, stripe_client
):
    """A retry asked for a new card (``payment_method_id``) charges only if the invoice
    would be charged with that card; an attached card that is not the default leaves the
    invoice untouched."""
    cid, stripe_cus = await customer_with_card(session_factory, stripe_acts, stripe_client, card=FAILING_CARD)
    started = await stripe_acts.start_subscription(StartSubscriptionInput(cid, "business", f"{cid}:subscribe"))
    attached = add_card(stripe_client, stripe_cus, GOOD_CARD, default=False)
    step = RetryInvoiceInput(cid, started.latest_invoice_id, f"{cid}:dunning:card", payment_method_id=attached)
    assert (await stripe_acts.retry_invoice(step)).outcome == "not_default"
    assert charges(stripe_client, stripe_cus) == 1  # the subscription's own first charge only
    assert stripe_client.v1.invoices.retrieve(started.latest_invoice_id).status == "open"


async def test_a_retry_pays_with_the_card_it_checked(
    session_factory, stripe_acts, stripe_client, stripe_settings, recording: RecordingStripe
):
    """Stripe's "Pay an invoice" takes ``payment_method``: the retry names the card it found
    the invoice is charged with, so the card checked (a new card's retry, a hard decline) is
    the card charged, even if a default changes in between.

    This test checks the REQUEST only (``pay.form``, recorded by the proxy). localstripe
    answers 500 to ``payment_method`` on pay (the proxy strips it) and always charges the
    customer's default, and it keeps no ``default_payment_method`` on an invoice or a
    subscription, so no card other than the customer's default can be the one checked: the
    end-state assertions (paid, the intent's payment method) hold with or without the
    parameter and only show the charge went through on that same card."""
    cid, stripe_cus = await customer_with_card(session_factory, stripe_acts, stripe_client, card=FAILING_CARD)
    started = await stripe_acts.start_subscription(StartSubscriptionInput(cid, "business", f"{cid}:subscribe"))
    assert started.latest_invoice_id and started.latest_invoice_status == "open"
    good = add_card(stripe_client, stripe_cus, GOOD_CARD)
    recording.strip = (*recording.strip, "payment_method")
    via_recorder = activities_at(stripe_settings, session_factory, recording.url)

    paid = await via_recorder.retry_invoice(RetryInvoiceInput(cid, started.latest_invoice_id, f"{cid}:dunning:1"))

    assert (paid.outcome, paid.charged) == ("paid", True)
    (pay,) = recording.posts(f"/v1/invoices/{started.latest_invoice_id}/pay")
    assert pay.form == {"payment_method": good}
    invoice = stripe_client.v1.invoices.retrieve(started.latest_invoice_id)
    assert invoice.status == "paid"
    assert stripe_client.v1.payment_intents.retrieve(str(invoice.payment_intent)).payment_method == good


async def test_a_card_attached_without_being_the_default_is_made_the_default_when_subscribing(
    session_factory, stripe_acts, stripe_client
):
    """A customer with no default at all but a card on file still subscribes (the card is
    made the default then); an existing default is never replaced."""
    cid = new_customer_id()
    add_customer(session_factory, cid)
    cus = await stripe_acts.ensure_customer(EnsureCustomerInput(cid, f"{cid}:customer"))
    pm = add_card(stripe_client, cus.stripe_customer_id, default=False)
    assert (await stripe_acts.ensure_customer(EnsureCustomerInput(cid, f"{cid}:customer"))).has_payment_method
    assert stripe_client.v1.customers.retrieve(cus.stripe_customer_id).invoice_settings.default_payment_method is None
    result = await stripe_acts.start_subscription(StartSubscriptionInput(cid, "starter", f"{cid}:subscribe"))
    assert result.outcome == "active"
    assert stripe_client.v1.customers.retrieve(cus.stripe_customer_id).invoice_settings.default_payment_method == pm


def _crash_after_paying(monkeypatch) -> list[str]:
    """The first record of a charge is lost with the process: Stripe was paid, we never knew."""
    real_record = StripeActivities._record
    crashed: list[str] = []

    def crash_once(session, key, object_type, stripe_id):
        if object_type == "invoice_payment" and not crashed:
            crashed.append(key)
            raise ConnectionError("worker killed after Stripe answered the pay call")
        return real_record(session, key, object_type, stripe_id)

    monkeypatch.setattr(StripeActivities, "_record", staticmethod(crash_once))
    return crashed


async def test_a_retry_killed_after_paying_and_before_recording_is_charged_once(
    session_factory, stripe_acts, stripe_client, monkeypatch
):
    """localstripe ignores Idempotency-Key: only the pending marker keeps the retry from charging twice."""
    cid, stripe_cus = await customer_with_card(session_factory, stripe_acts, stripe_client, card=FAILING_CARD)
    started = await stripe_acts.start_subscription(StartSubscriptionInput(cid, "business", f"{cid}:subscribe"))
    inv_id = started.latest_invoice_id
    assert charges(stripe_client, stripe_cus) == 1  # the subscription's own first charge

    # declined: the activity's retry reports the decline Stripe recorded, it does not pay again
    crashed = _crash_after_paying(monkeypatch)
    step = RetryInvoiceInput(cid, inv_id, f"{cid}:dunning:retry_1")
    with pytest.raises(ConnectionError):
        await stripe_acts.retry_invoice(step)
    assert crashed and charges(stripe_client, stripe_cus) == 2
    retried = await stripe_acts.retry_invoice(step)
    assert (retried.outcome, retried.invoice_status, retried.failure_code) == ("declined", "open", "card_declined")
    assert charges(stripe_client, stripe_cus) == 2  # exactly one charge for the step
    assert (await stripe_acts.retry_invoice(step)).outcome == "declined"  # and again: still one
    assert charges(stripe_client, stripe_cus) == 2

    # paid: the retry sees the invoice paid and reports it as this step's charge
    add_card(stripe_client, stripe_cus, GOOD_CARD)  # the customer's new default is charged
    crashed = _crash_after_paying(monkeypatch)
    step = RetryInvoiceInput(cid, inv_id, f"{cid}:dunning:retry_2")
    with pytest.raises(ConnectionError):
        await stripe_acts.retry_invoice(step)
    assert crashed and charges(stripe_client, stripe_cus) == 3
    paid = await stripe_acts.retry_invoice(step)
    assert (paid.outcome, paid.invoice_status, paid.charged) == ("paid", "paid", True)
    assert charges(stripe_client, stripe_cus) == 3


async def test_a_retry_whose_pay_call_never_reached_stripe_stillcharges(
    session_factory, stripe_acts, stripe_client, monkeypatch
):
    """The pending marker alone (nothing moved in Stripe) is no reason not to charge."""
    cid, stripe_cus = await customer_with_card(session_factory, stripe_acts, stripe_client, card=FAILING_CARD)
    started = await stripe_acts.start_subscription(StartSubscriptionInput(cid, "business", f"{cid}:subscribe"))
    invoices = stripe_acts.client.v1.invoices
    real_pay = invoices.pay

    def offline(*args, **kwargs):
        raise ConnectionError("network down before the pay call left")

    monkeypatch.setattr(invoices, "pay", offline)
    step = RetryInvoiceInput(cid, started.latest_invoice_id, f"{cid}:dunning:retry_1")
    with pytest.raises(ConnectionError):
        await stripe_acts.retry_invoice(step)
    assert charges(stripe_client, stripe_cus) == 1
    monkeypatch.setattr(invoices, "pay", real_pay)
    retried = await stripe_acts.retry_invoice(step)
    assert retried.outcome == "declined"
    assert charges(stripe_client, stripe_cus) == 2


async def test_a_retry_after_a_lost_pay_call_pays_once_under_a_key_of_the_new_card(
    session_factory, stripe_acts, stripe_client, stripe_settings, recording: RecordingStripe
):
    """The pay call is lost (Stripe answers 500, nothing moves), the customer sets a new default
    card, and the step runs again: the marker says nothing moved, so it pays, with the new
    card. Stripe would answer 400 idempotency_key_in_use to the first key with another
    ``payment_method``: the card is in the pay call's key, so the second call's key differs
    (the recording proxy shows each key; localstripe ignores keys) and the invoice is paid
    once, with the new card."""
    cid, stripe_cus = await customer_with_card(session_factory, stripe_acts, stripe_client, card=FAILING_CARD)
    via_recorder = activities_at(stripe_settings, session_factory, recording.url)
    started = await via_recorder.start_subscription(StartSubscriptionInput(cid, "business", f"{cid}:subscribe"))
    assert started.latest_invoice_id and started.latest_invoice_status == "open"
    failing = str(stripe_client.v1.customers.retrieve(stripe_cus).invoice_settings.default_payment_method)
    pay_path = f"/v1/invoices/{started.latest_invoice_id}/pay"
    recording.strip = (*recording.strip, "payment_method")
    recording.fail_with[pay_path] = 500
    step = RetryInvoiceInput(cid, started.latest_invoice_id, f"{cid}:dunning:retry_1")
    with pytest.raises(Exception):  # noqa: B017 - whatever the SDK makes of a 500 after its retries
        await via_recorder.retry_invoice(step)
    assert charges(stripe_client, stripe_cus) == 1  # nothing reached localstripe

    good = add_card(stripe_client, stripe_cus, GOOD_CARD)  # the new default
    del recording.fail_with[pay_path]
    paid = await via_recorder.retry_invoice(step)

    assert (paid.outcome, paid.charged) == ("paid", True)
    keys = [p.idempotency_key for p in recording.posts(pay_path)]
    assert set(keys[:-1]) == {f"{step.idempotency_key}:{failing}"} and keys[-1] == f"{step.idempotency_key}:{good}"
    assert recording.posts(pay_path)[-1].form == {"payment_method": good}
    invoice = stripe_client.v1.invoices.retrieve(started.latest_invoice_id)
    assert invoice.status == "paid"
    assert stripe_client.v1.payment_intents.retrieve(str(invoice.payment_intent)).payment_method == good
    assert charges(stripe_client, stripe_cus) == 2  # the first charge and this one


async def test_a_retry_after_a_crash_between_stripes_answer_and_our_commit_creates_nothing_twice(
    session_factory, stripe_acts, stripe_client, monkeypatch
):
    """localstripe ignores Idempotency-Key, so this shows the metadata lookup doing the work."""
    cid = new_customer_id()
    add_customer(session_factory, cid)
    real_record = StripeActivities._record
    crashed: set[str] = set()

    def crash_once(session, key, object_type, stripe_id):
        if object_type in ("customer", "subscription") and object_type not in crashed:
            crashed.add(object_type)  # the first record of each kind is lost with the process
            raise ConnectionError("database went away after Stripe answered")
        return real_record(session, key, object_type, stripe_id)

    monkeypatch.setattr(StripeActivities, "_record", staticmethod(crash_once))
    with pytest.raises(ConnectionError):
        await stripe_acts.ensure_customer(EnsureCustomerInput(cid, f"{cid}:customer"))
    cus = await stripe_acts.ensure_customer(EnsureCustomerInput(cid, f"{cid}:customer"))
    assert cus.created is False  # found by metadata, not created again
    add_card(stripe_client, cus.stripe_customer_id)

    with pytest.raises(ConnectionError):
        await stripe_acts.start_subscription(StartSubscriptionInput(cid, "starter", f"{cid}:subscribe"))
    result = await stripe_acts.start_subscription(StartSubscriptionInput(cid, "starter", f"{cid}:subscribe"))

    assert len(stripe_client.v1.customers.list(params={"email": f"{cid}@example.test"}).data) == 1
    subs = stripe_client.v1.subscriptions.list(params={"customer": cus.stripe_customer_id, "status": "all"}).data
    assert [s.id for s in subs] == [result.stripe_subscription_id]
    invoices = stripe_client.v1.invoices.list(params={"customer": cus.stripe_customer_id}).data
    assert len(invoices) == 1  # charged once
    with session_factory() as s:
        assert s.get(Customer, cid).stripe_customer_id == cus.stripe_customer_id


async def test_upgrade_sends_proration_and_idempotency_key(
    stripe_client, session_factory, stripe_acts, stripe_settings, recording: RecordingStripe
):
    """Stands in for Stripe's proration on update (localstripe answers 500 to it): the
    recording server checks the exact request, then forwards it without the parameter."""
    cid, sub = await subscribed(session_factory, stripe_acts, stripe_client, "starter")
    via_recorder = activities_at(stripe_settings, session_factory, recording.url)
    key = f"customer-{cid}:subscription:r1:upgrade"
    result = await via_recorder.change_plan(
        ChangePlanInput(cid, sub.stripe_subscription_id, "business", "month", key, "always_invoice")
    )

    (update,) = recording.posts(f"/v1/subscriptions/{sub.stripe_subscription_id}")
    assert update.form["proration_behavior"] == "always_invoice"
    assert update.form["items[0][plan]"] == plan_id_for("business", "month", 9900)
    assert update.form["items[0][id]"].startswith("si_")
    assert update.idempotency_key == key
    assert update.stripe_version == stripe_settings.stripe_api_version
    assert (result.plan, result.amount_cents) == ("business", 9900)
    with session_factory() as s:
        history = s.scalars(
            select(SubscriptionChange.plan_code).where(SubscriptionChange.customer_id == cid).order_by(
                SubscriptionChange.id
            )
        ).all()
        assert history == ["starter", "business"]


async def test_subscribing_reads_the_cards_on_file_once(
    stripe_client, session_factory, stripe_acts, stripe_settings, recording: RecordingStripe
):
    cid, _stripe_cus = await customer_with_card(session_factory, stripe_acts, stripe_client)
    via_recorder = activities_at(stripe_settings, session_factory, recording.url)

    result = await via_recorder.start_subscription(StartSubscriptionInput(cid, "starter", f"{cid}:subscribe"))

    assert result.outcome == "active"
    card_reads = [r for r in recording.requests if (r.method, r.path) == ("GET", "/v1/payment_methods")]
    assert len(card_reads) <= 1  # none when the customer has a default


async def test_coupon_is_created_once_and_applied_to_the_subscription(
    stripe_client, session_factory, stripe_acts, stripe_settings, recording: RecordingStripe
):
    """Stands in for coupon application (localstripe never applies coupons): the request
    that applies it is checked on the recording server."""
    cid, sub = await subscribed(session_factory, stripe_acts, stripe_client, "starter")
    via_recorder = activities_at(stripe_settings, session_factory, recording.url)
    offer = CouponInput(cid, f"customer-{cid}/winback:day7", percent_off=25, duration="repeating",
                        duration_in_months=3, apply_to_subscription=sub.stripe_subscription_id)

    first = await via_recorder.create_coupon(offer)
    second = await via_recorder.create_coupon(offer)  # the step retried

    assert first == second
    creates = recording.posts("/v1/coupons")
    assert len(creates) == 1
    assert creates[0].form["percent_off"] == "25" and creates[0].form["duration_in_months"] == "3"
    assert stripe_client.v1.coupons.retrieve(first.coupon_id).percent_off == 25
    (apply,) = recording.posts(f"/v1/subscriptions/{sub.stripe_subscription_id}")
    assert apply.form == {"discounts[0][coupon]": first.coupon_id}
    assert apply.idempotency_key == f"customer-{cid}/winback:day7:apply"


async def test_stripe_errors_are_mapped_to_retryable_or_not(
    stripe_client, session_factory, stripe_acts, stripe_settings, recording: RecordingStripe
):
    cid = new_customer_id()
    add_customer(session_factory, cid)
    # 4xx: fails at once with Stripe's message
    with pytest.raises(ApplicationError) as refused:
        await stripe_acts.retry_invoice(RetryInvoiceInput(cid, "in_doesnotexist", f"{cid}:x"))
    assert refused.value.non_retryable and refused.value.type == "StripeInvalidRequest"
    assert "404" in refused.value.message and "Not Found" in refused.value.message

    # 5xx and 429: retryable (the workflow's retry policy backs off)
    recording.fail_with = {"/v1/invoices/in_x": 503, "/v1/invoices/in_y": 429}
    via_recorder = activities_at(stripe_settings, session_factory, recording.url)
    for inv in ("in_x", "in_y"):
        with pytest.raises(ApplicationError) as transient:
            await via_recorder.retry_invoice(RetryInvoiceInput(cid, inv, f"{cid}:{inv}"))
        assert not transient.value.non_retryable and transient.value.type == "StripeUnavailable"
    # network error: retryable
    offline = activities_at(stripe_settings, session_factory, "http://127.0.0.1:9")
    with pytest.raises(ApplicationError) as network:
        await offline.retry_invoice(RetryInvoiceInput(cid, "in_z", f"{cid}:z"))
    assert not network.value.non_retryable


async def test_catalog_not_synced_is_a_clear_refusal(stripe_client, session_factory):
    acts = StripeActivities(stripe_client, session_factory)
    cid = new_customer_id()
    add_customer(session_factory, cid)
    with pytest.raises(ApplicationError) as err:
        await acts.start_subscription(StartSubscriptionInput(cid, "starter", f"{cid}:s"))
    assert err.value.non_retryable and "lifecycle stripe sync" in err.value.message
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Subscription)) == 0


async def test_an_unknown_tier_or_interval_is_refused_without_retries(
    session_factory, stripe_acts, stripe_client
):
    cid, sub = await subscribed(session_factory, stripe_acts, stripe_client, "starter")
    for plan, interval, kind in (("platinum", "month", "UnknownPlan"), ("business", "week", "BillingError")):
        with pytest.raises(ApplicationError) as err:
            await stripe_acts.change_plan(
                ChangePlanInput(cid, sub.stripe_subscription_id, plan, interval, f"{cid}:{plan}")
            )
        assert err.value.non_retryable and err.value.type == kind
        assert (plan if kind == "UnknownPlan" else interval) in err.value.message
    with pytest.raises(ApplicationError) as err:
        await stripe_acts.start_subscription(StartSubscriptionInput(cid, "platinum", f"{cid}:again"))
    assert err.value.non_retryable and err.value.type == "UnknownPlan"
    item = stripe_client.v1.subscriptions.retrieve(sub.stripe_subscription_id)["items"]["data"][0]
    assert item["plan"]["id"] == plan_id_for("starter", "month", 1900)


async def test_event_log_and_mirror_on_sqlite_and_postgresql(db_url):
    """Recording once by id and never moving backwards rely on each database's upsert."""
    from lifecycle.billing.mirror import upsert_subscription
    from lifecycle.billing.shapes import parse_subscription
    from lifecycle.billing.webhooks import record_event
    from lifecycle.db import make_engine, make_session_factory
    from tests.support.stripe import make_event

    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    try:
        add_customer(factory, "c-db")
        sub = {
            "id": "sub_db", "object": "subscription", "customer": "cus_db", "status": "active",
            "metadata": {"lifecycle_customer_id": "c-db"}, "created": 1_800_000_000,
            "items": {"data": [{"id": "si_1", "current_period_start": 1_800_000_000,
                                "current_period_end": 1_802_592_000, "quantity": 1,
                                "price": {"id": "price_x", "unit_amount": 4900, "currency": "usd",
                                          "recurring": {"interval": "month"},
                                          "metadata": {"lifecycle_plan": "professional"}}}]},
        }  # the current API's shape: periods on the item, a price instead of a plan
        event = make_event("customer.subscription.created", sub, created=1_800_000_010)
        with factory.begin() as s:
            assert record_event(s, event) is True
        with factory.begin() as s:
            assert record_event(s, event) is False
        rec = parse_subscription(sub)
        with factory.begin() as s:
            upsert_subscription(s, rec, 1_800_000_020)
            upsert_subscription(s, parse_subscription({**sub, "status": "past_due"}), 1_800_000_015)
        with factory.begin() as s:
            row = s.scalar(select(Subscription).where(Subscription.stripe_subscription_id == "sub_db"))
            assert (row.status, row.plan_code, row.amount_cents, row.customer_id) == (
                "active", "professional", 4900, "c-db",
            )
            assert row.current_period_end.timestamp() == 1_802_592_000
            assert s.get(Customer, "c-db").stripe_customer_id == "cus_db"
            StripeActivities._record(s, "k1", "customer", "cus_db")
            StripeActivities._record(s, "k1", "customer", "cus_db")  # a retry: no error, one row
    finally:
        engine.dispose()


async def test_backfill_rebuilds_the_mirror_of_a_fresh_install(
    stripe_client, session_factory, stripe_acts, tmp_path
):
    from lifecycle.billing.backfill import backfill
    from lifecycle.db import make_engine, make_session_factory, upgrade

    cid, stripe_cus = await customer_with_card(session_factory, stripe_acts, stripe_client)
    sub = await stripe_acts.start_subscription(StartSubscriptionInput(cid, "enterprise", f"{cid}:s", "year"))

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgrade(url)
    engine = make_engine(url)
    fresh = make_session_factory(engine)
    try:
        sync_catalog(stripe_client, fresh)
        report = backfill(stripe_client, fresh)
        again = backfill(stripe_client, fresh)  # idempotent: nothing new the second time
        with fresh() as s:
            row = s.scalar(select(Subscription).where(Subscription.stripe_subscription_id == sub.stripe_subscription_id))
            assert (row.customer_id, row.plan_code, row.interval, row.status) == (cid, "enterprise", "year", "active")
            customer = s.get(Customer, cid)  # recreated from Stripe, with the email Stripe holds
            assert (customer.email, customer.stripe_customer_id) == (f"{cid}@example.test", stripe_cus)
            inv = s.scalar(select(Invoice).where(Invoice.stripe_invoice_id == sub.latest_invoice_id))
            assert (inv.status, inv.amount_paid_cents, inv.customer_id) == ("paid", 199000, cid)
            assert s.scalar(select(func.count()).select_from(SubscriptionChange).where(
                SubscriptionChange.customer_id == cid)) == 1
        assert report.subscriptions >= 1 and report.customers_adopted >= 1 and again.customers_adopted == 0
    finally:
        engine.dispose()


async def test_a_quarterly_subscriber_s_offer_coupon_takes_one_month_s_share_off_once(
    stripe_client, session_factory, stripe_acts
):
    """25 % off for 1 month on a price billed every three months ($147 a quarter): one
    invoice covers three months, so the coupon is $12.25 off once (a month's share), not a
    1-month ``repeating`` 25 % that takes a quarter off the whole first invoice."""
    cid, stripe_customer = await customer_with_card(session_factory, stripe_acts, stripe_client)
    product = stripe_client.v1.products.create(params={"name": "Professional (quarterly)"})
    quarterly = stripe_client.v1.plans.create(params={
        "amount": 14700, "currency": "usd", "interval": "month", "interval_count": 3, "product": product.id,
    })
    sub = stripe_client.v1.subscriptions.create(params={"customer": stripe_customer, "items": [{"plan": quarterly.id}]})

    result = await stripe_acts.create_coupon(CouponInput(
        cid, f"customer-{cid}/retention:coupon:offer_q", percent_off=25, offer_months=1,
        plan="professional", interval="month", apply_to_subscription=str(sub.id),
    ))

    coupon = stripe_client.v1.coupons.retrieve(result.coupon_id)
    assert (coupon.duration, coupon.amount_off, coupon.currency, coupon.percent_off) == ("once", 1225, "usd", None)
