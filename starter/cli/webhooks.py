"""``lifecycle webhooks ...``: the product's endpoints, the delivery log, redelivery."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.table import Table

from lifecycle.contracts.webhooks import WEBHOOK_EVENT_TYPES
from lifecycle.db import database, session_scope
from lifecycle.models import WebhookDelivery
from lifecycle.settings import settings_or_exit
from lifecycle.webhooks import deliveries, endpoints
from starter.cli.text import console as cli_console
from starter.cli.text import safe

app = typer.Typer(help="Webhooks to the product: endpoints, the delivery log, redelivery.", no_args_is_help=True)
console = cli_console()


@app.command("add")
def add(
    url: Annotated[str, typer.Argument(help="the product's receiver (http:// or https://)")],
    events: Annotated[list[str], typer.Option(
        "--events", help="event type(s), repeated or comma-separated: " + ", ".join(WEBHOOK_EVENT_TYPES))],
    description: Annotated[str, typer.Option(help="a note for ops")] = "",
) -> None:
    """Register an endpoint; prints its signing secret once (keep it: it is not shown again)."""
    settings = settings_or_exit()
    chosen = [e for arg in events for e in arg.split(",")]
    with database(settings.database_url) as sessions, session_scope(sessions) as session:
        try:
            new = endpoints.add_endpoint(session, url, chosen, engine_url=settings.public_url,
                                         description=description, **endpoints.url_rules(settings))
        except endpoints.BadEndpoint as err:
            console.print(f"[red]{safe(str(err))}[/red]")
            raise typer.Exit(2) from None
        console.print(f"endpoint [bold]{new.endpoint.id}[/bold] → {safe(new.endpoint.url)}")
        console.print(f"events: {safe(', '.join(new.endpoint.events))}")
        console.print(f"secret: [bold]{safe(new.secret)}[/bold]  (shown once; verify with standardwebhooks)")
        for warning in new.warnings:
            console.print(f"[yellow]warning: {safe(warning)}[/yellow]")


@app.command("list")
def list_() -> None:
    """Every endpoint: its events, enabled or disabled (when, and why)."""
    settings = settings_or_exit()
    with database(settings.database_url) as sessions, sessions() as session:
        rows = endpoints.list_endpoints(session)
    if not rows:
        console.print("no webhook endpoints: add one with `lifecycle webhooks add URL --events …`")
        return
    table = Table(title="webhook endpoints")
    for col in ("id", "url", "events", "state", "since (UTC)", "why"):
        table.add_column(col)
    for e in rows:
        state = "enabled" if e.disabled_at is None else "[red]DISABLED[/red]"
        since = f"{(e.disabled_at or e.created_at):%Y-%m-%d %H:%M}"
        table.add_row(safe(e.id), safe(e.url), safe(", ".join(e.events)), state, since,
                      safe(e.disabled_reason or ""))
    console.print(table)


@app.command("remove")
def remove(endpoint_id: str) -> None:
    """Stop delivering to an endpoint (its log stays)."""
    settings = settings_or_exit()
    with database(settings.database_url) as sessions, session_scope(sessions) as session:
        if not endpoints.remove_endpoint(session, endpoint_id):
            console.print(f"[red]unknown webhook endpoint {safe(repr(endpoint_id))}[/red]")
            raise typer.Exit(1)
    console.print(f"removed {safe(endpoint_id)}")


@app.command("enable")
def enable(endpoint_id: str) -> None:
    """Deliver to a disabled endpoint again (new events; redeliver missed ones by id)."""
    settings = settings_or_exit()
    with database(settings.database_url) as sessions, session_scope(sessions) as session:
        if not endpoints.enable_endpoint(session, endpoint_id):
            console.print(f"[red]unknown webhook endpoint {safe(repr(endpoint_id))}[/red]")
            raise typer.Exit(1)
    console.print(f"enabled {safe(endpoint_id)}")


def _status(d: WebhookDelivery) -> str:
    if d.status == deliveries.DELIVERED:
        return "[green]delivered[/green]"
    if d.status == deliveries.FAILED:
        return "[red]failed[/red]"
    if d.status == deliveries.PENDING and d.attempts:
        return "[yellow]retrying[/yellow]"
    return safe(d.status)


@app.command("deliveries")
def deliveries_(
    failed: Annotated[bool, typer.Option("--failed", help="only failed or still retrying after an error")] = False,
    customer: Annotated[str | None, typer.Option(help="only this customer")] = None,
    endpoint: Annotated[str | None, typer.Option(help="only this endpoint")] = None,
    limit: Annotated[int, typer.Option(help="how many, newest first")] = 50,
) -> None:
    """The delivery log: status code, latency, the response's first bytes, attempts, error."""
    settings = settings_or_exit()
    with database(settings.database_url) as sessions, sessions() as session:
        rows = deliveries.delivery_log(session, failed=failed, customer_id=customer, endpoint_id=endpoint,
                                       limit=limit)
        disabled = {e.id for e in endpoints.list_endpoints(session) if e.disabled_at is not None}
    if not rows:
        console.print("no deliveries" + (" failed" if failed else ""))
        return
    table = Table(title="webhook deliveries")
    for col in ("id", "when (UTC)", "customer", "type", "endpoint", "status", "attempts", "code",
                "ms", "response", "error"):
        table.add_column(col)
    for d in rows:
        ep = safe(d.endpoint_id) + (" [red](disabled)[/red]" if d.endpoint_id in disabled else "")
        table.add_row(
            str(d.id), f"{(d.last_attempt_at or d.created_at):%Y-%m-%d %H:%M:%S}", safe(d.customer_id),
            safe(d.type), ep, _status(d), str(d.attempts), str(d.status_code or ""),
            str(d.latency_ms if d.latency_ms is not None else ""), safe((d.response_head or "")[:60]),
            safe(d.error or ""),
        )
    console.print(table)


@app.command("redeliver")
def redeliver(delivery_id: int) -> None:
    """Deliver an event again to the same endpoint (same webhook-id: the product dedupes)."""
    from lifecycle.temporal import connect
    from lifecycle.webhooks.sending import hand_over, retry_of

    settings = settings_or_exit()
    with database(settings.database_url) as sessions:
        with session_scope(sessions) as session:
            try:
                ref = deliveries.redelivery(session, delivery_id)
            except (deliveries.UnknownDelivery, deliveries.CannotRedeliver) as err:
                console.print(f"[red]{safe(str(err))}[/red]")
                raise typer.Exit(1) from None
            row = session.get(WebhookDelivery, ref.delivery_id)
            assert row is not None
            customer_id = row.customer_id

        async def go() -> None:
            client = await connect(settings)
            await hand_over(client, settings.task_queue, customer_id, [ref], retry_of(settings))

        try:
            asyncio.run(go())
        except Exception as exc:  # Temporal down: say so, and close the new row
            with session_scope(sessions) as session:
                row = session.get(WebhookDelivery, ref.delivery_id)
                if row is not None:
                    row.status, row.error = deliveries.SKIPPED, f"not handed over: {exc}"
            console.print(f"[red]Temporal did not take the redelivery: {safe(str(exc))}[/red]")
            raise typer.Exit(1) from None
    console.print(f"redelivery {ref.delivery_id} of delivery {delivery_id} queued for {safe(customer_id)}")
