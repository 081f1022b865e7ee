"""Ops on the command line: ``lifecycle customer action``, ``lifecycle customers list``,
``lifecycle audit``, and the why-waiting and Stripe part of ``lifecycle customer show``.

Actions go straight to Temporal through :func:`starter.ops.actions.take_action` (the
same checks and update as the HTTP API); who did it is ``--actor`` or the OS user.
"""

from __future__ import annotations

import asyncio
import getpass
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lifecycle.contracts.ops import (
    ACTIONS,
    CANCEL_CAMPAIGN,
    RESEND,
    SKIP_STEP,
    WAIT_KINDS,
    WhyWaiting,
)
from lifecycle.settings import Settings, settings_or_exit
from starter.cli.text import console as cli_console
from starter.cli.text import safe

console = cli_console()
customers_app = typer.Typer(help="Customers across the lifecycle (Temporal visibility).", no_args_is_help=True)
ops_app = typer.Typer(help="Ops: the digest of what to look at.", no_args_is_help=True)


@ops_app.command("digest")
def digest_command(
    hours: Annotated[float, typer.Option(help="the period, in hours back from now")] = 24.0,
) -> None:
    """What ops should look at (e.g. Smart Retries still on in retry mode engine), one line each."""
    from lifecycle.db import database
    from starter.ops.digest import digest

    if hours <= 0:
        console.print(f"[red]--hours: expected a positive number, got {hours}[/red]")
        raise typer.Exit(2)
    since = datetime.now(UTC) - timedelta(hours=hours)
    with database(settings_or_exit().database_url) as factory, factory() as session:
        lines = digest(session, since=since)
    for line in lines:
        console.print(safe(line))
    if not lines:
        console.print(f"nothing to look at in the last {hours:g} hours")


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return f"{getpass.getuser()} (cli)"
    except (KeyError, OSError):  # no user name in this environment
        return "cli"


def customer_action(
    customer_id: Annotated[str, typer.Argument(help="the customer")],
    action: Annotated[str, typer.Argument(help=f"one of {', '.join(ACTIONS)}")],
    name: Annotated[str | None, typer.Argument(
        help="cancel-campaign, skip-step: the campaign; resend: the step whose email to send again")] = None,
    reason: Annotated[str, typer.Option(help="why (required): it goes into the audit trail")] = "",
    step: Annotated[str | None, typer.Option(help="skip-step: the step you saw waiting (checked)")] = None,
    campaign: Annotated[str | None, typer.Option(help="resend: the step's campaign, if several have it")] = None,
    days: Annotated[int | None, typer.Option(help="extend-grace: how many days")] = None,
    actor: Annotated[str | None, typer.Option(help="who is acting (default: the OS user)")] = None,
) -> None:
    """Act on one customer: pause, resume, cancel-campaign NAME, skip-step NAME, extend-grace
    --days N, retry-now, resend STEP. Refused with the reason when it does not fit (exit 1)."""
    from lifecycle.db import database
    from lifecycle.temporal import connect
    from starter.ops.actions import ActionRefused, ActionRequest, take_action

    settings = settings_or_exit()
    if action in (CANCEL_CAMPAIGN, SKIP_STEP):
        campaign = name or campaign
    elif action == RESEND:
        step = name or step
    req = ActionRequest(action=action, reason=reason, actor=_actor(actor), campaign=campaign, step=step, days=days)

    async def run() -> str:
        client = await connect(settings)
        with database(settings.database_url) as sessions:
            result = await take_action(client, sessions, customer_id, req)
        return result.done

    try:
        done = asyncio.run(run())
    except ActionRefused as exc:
        console.print(f"[red]refused ({exc.status}): {safe(exc.message)}[/red]")
        raise typer.Exit(1) from None
    except RuntimeError as exc:  # Temporal unreachable
        console.print(f"[red]Temporal could not be reached: {safe(str(exc))}[/red]")
        raise typer.Exit(1) from None
    console.print(f"{safe(customer_id)}: {safe(done)}  (by {safe(req.actor)})")


@customers_app.command("list")
def customers_list(
    stage: Annotated[str | None, typer.Option(help="lifecycle stage, e.g. trialing")] = None,
    plan: Annotated[str | None, typer.Option(help="plan code, e.g. starter")] = None,
    campaign: Annotated[str | None, typer.Option(help="a running campaign, e.g. onboarding")] = None,
    waiting_for: Annotated[str | None, typer.Option(help=f"one of {', '.join(WAIT_KINDS)}")] = None,
    dunning_state: Annotated[str | None, typer.Option(help="the dunning campaign's state")] = None,
    next_step_before: Annotated[
        datetime | None, typer.Option(help="a campaign acts before this time (UTC), e.g. 2026-12-24T09:00:00")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="rows per page")] = 50,
    page_token: Annotated[str | None, typer.Option(help="the token a previous page printed")] = None,
) -> None:
    """Customers by stage, plan, campaign, what they wait for and when they next act, a page at a time."""
    from lifecycle.temporal import connect
    from starter.ops.listing import BadFilter, Filters, list_customers

    settings = settings_or_exit()
    filters = Filters(stage=stage, plan=plan, campaign=campaign, waiting_for=waiting_for,
                      dunning_state=dunning_state, next_step_before=next_step_before)

    async def run():  # type: ignore[no-untyped-def]  # the Page
        return await list_customers(await connect(settings), filters, page_size=limit, page_token=page_token)

    try:
        page = asyncio.run(run())
    except BadFilter as exc:
        console.print(f"[red]{safe(str(exc))}[/red]")
        raise typer.Exit(2) from None
    table = Table(title=f"customers ({safe(page.query)})")
    for col in ("customer", "stage", "plan", "campaigns", "waiting for", "next step at (UTC)"):
        table.add_column(col)
    for r in page.rows:
        at = f"{r.next_step_at:%Y-%m-%d %H:%M:%S}" if r.next_step_at else ""
        table.add_row(safe(r.customer_id), safe(r.stage or ""), safe(r.plan or ""), safe(", ".join(r.campaigns)),
                      safe(", ".join(r.waiting(campaign))), at)
    console.print(table)
    if page.next_page_token:
        console.print(f"next page: --page-token {page.next_page_token}")


def audit(
    customer: Annotated[str | None, typer.Option(help="only this customer")] = None,
    actor: Annotated[str | None, typer.Option(help="only this actor (an API key's name, a CLI user)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="how many, newest first")] = 100,
) -> None:
    """The audit trail of ops actions: who did what to which customer, when and why."""
    from lifecycle import audit as audit_log
    from lifecycle.db import database

    with database(settings_or_exit().database_url) as sessions, sessions() as session:
        rows = audit_log.entries(session, customer_id=customer, actor=actor, limit=limit)
    table = Table(title="audit trail")
    for col in ("when (UTC)", "customer", "action", "actor", "reason", "detail"):
        table.add_column(col)
    for r in rows:
        detail = ", ".join(f"{k}={v}" for k, v in r.detail.items() if v is not None)
        table.add_row(f"{r.occurred_at:%Y-%m-%d %H:%M:%S}", safe(r.customer_id), safe(r.action), safe(r.actor),
                      safe(r.reason), safe(detail))
    console.print(table)


def show_ops(out: Console, settings: Settings, customer_id: str, stripe_customer_id: str | None,
             stripe_subscription_id: str | None) -> None:
    """The part of ``customer show`` that names Stripe and says what each campaign waits for."""
    from lifecycle.temporal import connect
    from starter.ops.lookup import stripe_links
    from starter.ops.why import NO_ANSWER, describe_wait, why_waiting

    links = stripe_links(settings, stripe_customer_id, stripe_subscription_id)
    out.print(f"stripe customer: {safe(links.customer_id or 'none')}"
              + (f"  {safe(links.customer_url)}" if links.customer_url else ""))
    out.print(f"stripe subscription: {safe(links.subscription_id or 'none')}"
              + (f"  {safe(links.subscription_url)}" if links.subscription_url else ""))

    async def ask() -> WhyWaiting:
        return await why_waiting(await connect(settings), customer_id, deadline=settings.temporal_deadline_seconds)

    try:
        why = asyncio.run(ask())
    except NO_ANSWER as exc:
        out.print(f"why waiting: Temporal did not answer ({safe(str(exc) or exc.__class__.__name__)})")
        return
    table = Table(title="why waiting" + ("  (marketing paused)" if why.paused else ""))
    for col in ("campaign", "step", "waiting for", "next"):
        table.add_column(col)
    for c in why.campaigns:
        nxt = c.next_step or ""
        if c.next_step_at:
            nxt += f" at {c.next_step_at:%Y-%m-%d %H:%M} UTC"
        table.add_row(safe(c.campaign), safe(c.step or "-"), safe(describe_wait(c.waiting)), safe(nxt))
    out.print(table)
