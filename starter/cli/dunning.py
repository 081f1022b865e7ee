"""``lifecycle invoice mark-paid`` and ``lifecycle dunning report``: manual payment and what
finance reads of dunning."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Annotated, Any

import stripe
import typer
from rich.table import Table

from lifecycle.billing.client import StripeNotConfigured, make_stripe_client
from lifecycle.billing.dunning_report import report
from lifecycle.billing.manual import MarkPaidRefused, cli_actor, mark_paid
from lifecycle.contracts.money import money_each
from lifecycle.db import database
from lifecycle.settings import settings_or_exit
from starter.cli.text import console as cli_console
from starter.cli.text import safe

invoice_app = typer.Typer(help="Invoices: manual payment.", no_args_is_help=True)
dunning_app = typer.Typer(help="Dunning (payment recovery): the finance report.", no_args_is_help=True)
console = cli_console()


@invoice_app.command("mark-paid")
def mark_paid_command(
    invoice: Annotated[str, typer.Argument(help="the Stripe invoice id (in_...)")],
    reason: Annotated[str, typer.Option(help="why: e.g. 'bank transfer received 2026-12-01'")],
    actor: Annotated[str | None, typer.Option(help="who (default: your OS user)")] = None,
) -> None:
    """Mark an invoice paid out of band in Stripe; a running dunning ends as recovered (manual)."""
    from lifecycle.temporal import connect
    from starter.signals.relay import Relay

    settings = settings_or_exit()
    try:
        client = make_stripe_client(settings)
    except StripeNotConfigured as exc:
        console.print(f"[red]{safe(str(exc))}[/red]")
        raise typer.Exit(2) from None
    with database(settings.database_url) as factory:
        try:
            done = mark_paid(client, factory, invoice, actor=cli_actor(actor), reason=reason,
                             localstripe_compat=settings.stripe_localstripe_compat)
        except MarkPaidRefused as exc:
            console.print(f"[red]refused:[/red] {safe(exc.reason)}")
            raise typer.Exit(1) from None
        except stripe.StripeError as exc:
            console.print(f"[red]Stripe refused:[/red] {safe(str(exc.user_message or exc))}")
            raise typer.Exit(1) from None

        async def deliver() -> bool:
            relay = Relay(await connect(settings, lazy=True), settings, factory)
            return await relay.deliver_customer(done.customer_id) if done.customer_id else False

        delivered = asyncio.run(deliver())
    where = "in Stripe (paid out of band)" if done.stripe_updated else "in the mirror only (localstripe)"
    console.print(f"invoice {safe(done.invoice_id)} marked paid {where} by {safe(done.actor)}: "
                  f"{done.amount_cents / 100:.2f}")
    console.print("the customer's workflow heard it" if delivered else "queued for the customer's workflow")


@dunning_app.command("report")
def report_command(
    since: Annotated[str | None, typer.Option(help="failed on or after this date (YYYY-MM-DD)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the report as JSON")] = False,
) -> None:
    """Failed invoices, recovered (by path), open, lost; recovery rate; median days; by decline code."""
    start = None
    if since:
        try:
            start = dt.datetime.fromisoformat(since).replace(tzinfo=dt.UTC)
        except ValueError:
            console.print(f"[red]--since: expected YYYY-MM-DD, got {safe(since)}[/red]")
            raise typer.Exit(2) from None
    with database(settings_or_exit().database_url) as factory, factory() as session:
        body = report(session, since=start)
    if as_json:
        print(json.dumps(body))
        return
    _print(body)


def _money(c: dict[str, Any]) -> str:
    """``3 ($297 + €10)``: one amount per currency, never summed."""
    return f"{c['count']} ({money_each(c['amounts'])})"


def _print(body: dict[str, Any]) -> None:
    rate = body["recovery_rate"]
    console.print(f"failed {_money(body['failed'])}  recovered {_money(body['recovered'])}  "
                  f"open {_money(body['open'])}  lost {_money(body['lost'])}  closed {_money(body['closed'])}")
    console.print(f"recovery rate {rate:.1%}" if rate is not None else "recovery rate: none settled yet")
    days = body["median_days_to_recover"]
    console.print(f"median days to recover {days}" if days is not None else "median days to recover: -")
    paths = Table(title="recovered by path")
    for col in ("path", "count", "amount"):
        paths.add_column(col)
    for path, c in body["recovered_by"].items():
        paths.add_row(safe(path), str(c["count"]), money_each(c["amounts"]))
    console.print(paths)
    codes = Table(title="by decline code")
    for col in ("decline code", "failed", "recovered", "lost", "rate"):
        codes.add_column(col)
    for code, s in body["by_decline_code"].items():
        r = s["recovery_rate"]
        codes.add_row(safe(code), str(s["failed"]["count"]), str(s["recovered"]["count"]),
                      str(s["lost"]["count"]), f"{r:.0%}" if r is not None else "-")
    console.print(codes)
