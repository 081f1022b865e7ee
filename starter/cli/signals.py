"""``lifecycle signals ...``: the events queued for customer workflows that Temporal has not taken yet."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from lifecycle.db import database
from lifecycle.settings import settings_or_exit
from lifecycle.signal_outbox import undelivered, undelivered_count
from starter.cli.text import console as cli_console
from starter.cli.text import safe

if TYPE_CHECKING:
    from starter.signals.relay import DeliveryReport

app = typer.Typer(
    help="The signal outbox: events queued for customer workflows (list with no command).",
    invoke_without_command=True,
)
console = cli_console()


@app.callback()
def pending(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="how many, oldest first")] = 50,
) -> None:
    """List the events still waiting for Temporal, oldest first, with the last error."""
    if ctx.invoked_subcommand is not None:
        return
    with database(settings_or_exit().database_url) as factory, factory() as session:
        rows = undelivered(session, limit=limit)
        total = undelivered_count(session)
    if not rows:
        console.print("nothing queued: every event reached its workflow")
        return
    table = Table(title=f"{total} event(s) waiting for Temporal")
    for col in ("queued (UTC)", "customer", "event id", "kind", "attempts", "next try (UTC)", "last error"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            f"{r.created_at:%Y-%m-%d %H:%M:%S}", safe(r.customer_id), safe(r.event_id), safe(r.kind),
            str(r.attempts), f"{r.next_attempt_at:%H:%M:%S}" if r.next_attempt_at else "now",
            safe(r.last_error or ""),
        )
    console.print(table)


@app.command()
def deliver() -> None:
    """Deliver every queued event now (the API's relay does it by itself every few seconds)."""
    from lifecycle.temporal import connect
    from starter.signals.relay import Relay

    settings = settings_or_exit()

    async def go(factory: sessionmaker[Session]) -> DeliveryReport:
        temporal = await connect(settings, lazy=True)
        return await Relay(temporal, settings, factory).round(older_than=timedelta(0), due_only=False)

    with database(settings.database_url) as factory:
        report = asyncio.run(go(factory))
    console.print(f"delivered {report.sent}, failed {report.failed}")
    for err in report.errors[:20]:
        console.print(f"  {safe(err)}")
    if report.failed:
        raise typer.Exit(1)
