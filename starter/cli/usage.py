"""``lifecycle usage ...``: reconcile counters, export raw events, re-send threshold signals."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lifecycle.db import database
from lifecycle.settings import Settings, settings_or_exit
from lifecycle.usage import UsageError, UsageService, number
from starter.cli.text import plain

if TYPE_CHECKING:
    from starter.signals.usage import DeliveryReport

app = typer.Typer(help="Usage metering: reconcile counters, export raw events, re-send signals.",
                  no_args_is_help=True)



@contextlib.contextmanager
def _service(settings: Settings) -> Iterator[UsageService]:
    with database(settings.database_url) as sessions:
        yield UsageService.from_settings(sessions, settings)


@app.command()
def reconcile(
    fix: Annotated[bool, typer.Option("--fix", help="set each drifted counter to its raw events' sum")] = False,
    customer: Annotated[str | None, typer.Option(help="only this customer")] = None,
) -> None:
    """Recompute every counter from the raw events and report drift per customer and metric.

    Exits 1 when drift is found and not fixed, so a scheduled run can alert.
    """
    with _service(settings_or_exit()) as svc:
        drifts = svc.reconcile(fix=fix, customer_id=customer)
    if not drifts:
        typer.echo("no drift: every counter equals the sum of its raw events")
        return
    typer.echo(f"{'customer':<24} {'metric':<12} {'period start':<26} {'counted':>14} "
               f"{'raw events':>14} {'drift':>12}  fixed")
    for d in drifts:
        typer.echo(f"{plain(d.customer_id):<24} {plain(d.metric):<12} {d.period_start.isoformat():<26} "
                   f"{number(d.counted)!s:>14} {number(d.actual)!s:>14} {number(d.drift)!s:>12}  "
                   f"{'yes' if d.fixed else 'no'}")
    typer.echo(f"{len(drifts)} counter(s) drifted" + ("; fixed" if fix else "; run with --fix to repair"))
    if not fix:
        raise typer.Exit(1)


@app.command()
def export(
    customer: Annotated[str, typer.Argument(help="customer id")],
    period: Annotated[str, typer.Option(
        help="YYYY-MM (the billing period starting that month), YYYY-MM-DD (the period "
             "containing that day) or 'current'")] = "current",
    out: Annotated[Path | None, typer.Option(help="CSV file to write (default: stdout)")] = None,
) -> None:
    """Write a customer's raw usage events of one billing period as CSV (for billing disputes)."""
    with _service(settings_or_exit()) as svc:
        try:
            p = svc.resolve_period(customer, period)
        except UsageError as err:
            typer.echo(f"error: {plain(err.field)}: {plain(err.reason)}", err=True)
            raise typer.Exit(2) from None
        if out is None:
            n = svc.export_csv(customer, p, sys.stdout)
        else:
            with out.open("w", newline="", encoding="utf-8") as fh:
                n = svc.export_csv(customer, p, fh)
    typer.echo(f"{n} event(s) of {plain(customer)} from {p.start.isoformat()} to {p.end.isoformat()}"
               + (f" written to {out}" if out else ""), err=True)


@app.command()
def resend() -> None:
    """Signal every threshold crossing Temporal has not taken yet.

    The API does the same every LIFECYCLE_USAGE_RESEND_INTERVAL_SECONDS.
    """
    settings = settings_or_exit()
    with _service(settings) as svc:
        report = asyncio.run(_resend(settings, svc))
    for e in report.errors:
        typer.echo(f"not delivered: {plain(e)}", err=True)
    typer.echo(f"{report.sent} signal(s) sent, {report.failed} still pending")
    if report.failed:
        raise typer.Exit(1)


async def _resend(settings: Settings, svc: UsageService) -> DeliveryReport:
    from lifecycle.temporal import connect
    from starter.signals.usage import resend_pending

    return await resend_pending(await connect(settings), svc, older_than=dt.timedelta(0))
