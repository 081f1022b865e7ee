"""``lifecycle stripe ...``: the catalog in Stripe, the billing mirror, the webhook event log."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from lifecycle.db import database
from lifecycle.settings import Settings, settings_or_exit
from starter.cli.text import console as make_console
from starter.cli.text import safe

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

app = typer.Typer(help="Stripe: catalog sync, mirror backfill, webhook events.", no_args_is_help=True)
console = make_console()



def _stripe_client(settings: Settings):  # noqa: ANN202
    from lifecycle.billing.client import StripeNotConfigured, make_stripe_client

    try:
        return make_stripe_client(settings, max_network_retries=2)
    except StripeNotConfigured as exc:
        console.print(f"[red]{safe(exc)}[/red]")
        raise typer.Exit(2) from None


@app.command()
def sync() -> None:
    """Create or update the four tiers in Stripe (a product each, monthly and annual plans).

    Idempotent: a second run changes nothing. After a price change in lifecycle/contracts/catalog.py
    it adds the new plan and retires the old one for new subscriptions.
    """
    import stripe

    from lifecycle.billing.catalog_sync import CatalogNotSynced, sync_catalog

    settings = settings_or_exit()
    client = _stripe_client(settings)
    try:
        with database(settings.database_url) as factory:
            report = sync_catalog(client, factory)
    except (stripe.StripeError, CatalogNotSynced) as exc:
        console.print(f"[red]sync failed: {safe(exc)}[/red]")
        raise typer.Exit(1) from None
    for label, ids in (("created", report.created), ("updated", report.updated), ("retired", report.retired)):
        for i in ids:
            console.print(f"{label:8} {safe(i)}")
    console.print(
        f"{len(report.created)} created, {len(report.updated)} updated, "
        f"{len(report.retired)} retired, {len(report.unchanged)} unchanged"
    )


@app.command()
def backfill() -> None:
    """Rebuild the billing mirror (subscriptions, invoices, payments) from Stripe's list endpoints."""
    import stripe

    from lifecycle.billing.backfill import backfill as run_backfill
    from lifecycle.billing.prices import configure_price_tiers

    settings = settings_or_exit()
    configure_price_tiers(settings.stripe_price_tiers)
    client = _stripe_client(settings)
    try:
        with database(settings.database_url) as factory:
            report = run_backfill(client, factory)
    except stripe.StripeError as exc:
        console.print(f"[red]backfill failed: {safe(exc)}[/red]")
        raise typer.Exit(1) from None
    console.print(
        f"{report.subscriptions} subscriptions, {report.invoices} invoices, {report.payments} payments; "
        f"{report.customers_linked} customers linked, {report.customers_adopted} created from Stripe"
    )
    if report.unmapped:
        console.print(
            f"[yellow]{report.unmapped} subscriptions bill a price that maps to no tier: "
            "see `lifecycle stripe prices`[/yellow]"
        )


@app.command()
def events(
    failed: Annotated[bool, typer.Option("--failed", help="only events whose processing failed")] = False,
    stuck: Annotated[
        bool, typer.Option("--stuck", help="only events still unapplied (received or failed) past the stuck threshold")
    ] = False,
    limit: Annotated[int, typer.Option(help="how many, newest first")] = 20,
) -> None:
    """The last webhook events received, with their status (and the reason when they failed)."""
    import datetime as dt

    from lifecycle.billing.webhooks import recent_events

    settings = settings_or_exit()
    stuck_after = dt.timedelta(seconds=settings.stripe_stuck_after_seconds) if stuck else None
    with database(settings.database_url) as factory, factory() as session:
        rows = recent_events(session, failed_only=failed, stuck_after=stuck_after, limit=limit)
    title = "stuck Stripe events" if stuck else "failed Stripe events" if failed else "Stripe events"
    table = Table(title=title)
    for col in ("received (UTC)", "id", "type", "status", "attempts", "reason"):
        table.add_column(col)
    for r in rows:
        reason = r.error or r.note or ""  # the failure, or a note such as "unmapped price price_..."
        table.add_row(f"{r.received_at:%Y-%m-%d %H:%M:%S}", safe(r.id), safe(r.type), safe(r.status),
                      str(r.attempts), safe(reason))
    console.print(table)
    if not rows:
        console.print("no stuck events" if stuck else "no failed events" if failed else "no events recorded yet")


@app.command()
def replay(event_id: str) -> None:
    """Process one recorded event again: the mirror, then the customer's workflow."""
    from lifecycle.billing.prices import configure_price_tiers
    from lifecycle.temporal import connect
    from starter.api.stripe_webhooks import process_and_hand_over

    settings = settings_or_exit()
    configure_price_tiers(settings.stripe_price_tiers)  # a mapping fixed since applies now

    async def go(factory: sessionmaker[Session]) -> str:
        temporal = await connect(settings)
        return await process_and_hand_over(factory, temporal, settings, event_id, "replay", force=True)

    with database(settings.database_url) as factory:
        status = asyncio.run(go(factory))
    color = "green" if status in ("processed", "ignored") else "red"
    console.print(f"[{color}]{safe(event_id)}: {safe(status)}[/{color}]")
    if status in ("failed", "missing"):
        raise typer.Exit(1)


@app.command()
def prices(
    unmapped: Annotated[bool, typer.Option("--unmapped", help="only prices that map to no tier")] = False,
) -> None:
    """Every Stripe price (or legacy plan) seen, the tier it maps to now and how.

    How: own_id (made by `lifecycle stripe sync`), price_metadata / product_metadata
    (metadata.tier), lookup_key (a tier code as a word of it), setting
    (LIFECYCLE_STRIPE_PRICE_TIERS). After fixing an unmapped one, `lifecycle stripe replay
    EVENT_ID` (its latest subscription event) or `lifecycle stripe backfill` applies it.
    Exit status 1 when a price seen on a subscription maps to no tier.
    """
    from sqlalchemy import select

    from lifecycle.billing.prices import configure_price_tiers, price_tier
    from lifecycle.billing.shapes import PriceRec
    from lifecycle.db import session_scope
    from lifecycle.models import StripePrice, Subscription

    settings = settings_or_exit()
    configure_price_tiers(settings.stripe_price_tiers)
    rows: list[tuple[StripePrice, int]] = []
    with database(settings.database_url) as factory, session_scope(factory) as session:
        billed: dict[str, int] = {}
        for price_id in session.scalars(select(Subscription.stripe_price_id)):
            if price_id:
                billed[price_id] = billed.get(price_id, 0) + 1
        for row in session.scalars(select(StripePrice).order_by(StripePrice.id)):
            rec = PriceRec(
                id=row.id, object=row.object, product_id=row.product_id, product_metadata=None,
                lookup_key=row.lookup_key, nickname=row.nickname, metadata=dict(row.metadata_ or {}),
                interval=row.interval, interval_count=row.interval_count,
                unit_amount_cents=row.unit_amount_cents, currency=row.currency,
            )
            row.tier, row.tier_source = price_tier(session, rec)  # as it maps now
            if unmapped and row.tier:
                continue
            rows.append((row, billed.get(row.id, 0)))
        table = Table(title="Stripe prices seen")
        for col in ("price", "kind", "product", "lookup key", "amount", "every", "tier", "how", "subscriptions"):
            table.add_column(col)
        for row, n in rows:
            every = f"{row.interval_count} {row.interval}" if row.interval_count > 1 else (row.interval or "?")
            table.add_row(
                row.id, row.object, row.product_id or "", row.lookup_key or "",
                f"{row.unit_amount_cents / 100:,.2f} {row.currency}", every,
                row.tier or "[red]none[/red]", row.tier_source or "", str(n),
            )
        console.print(table)
        stuck = [row.id for row, n in rows if row.tier is None and n]
    if not rows:
        console.print("no unmapped prices" if unmapped else "no prices seen yet")
    if stuck:
        console.print(
            f"[red]{len(stuck)} prices billed on subscriptions map to no tier: set metadata.tier on the "
            "price or its product, or LIFECYCLE_STRIPE_PRICE_TIERS=price_id=tier[/red]"
        )
        raise typer.Exit(1)
