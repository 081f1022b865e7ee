"""The ``lifecycle`` command line (typer). Every command has --help."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select

from lifecycle.settings import settings_or_exit
from starter.cli import ops
from starter.cli.dunning import dunning_app, invoice_app
from starter.cli.email import campaigns_app, outbox_app, templates_app
from starter.cli.policy import app as policy_app
from starter.cli.signals import app as signals_app
from starter.cli.stripe import app as stripe_app
from starter.cli.text import console as make_console
from starter.cli.text import safe
from starter.cli.usage import app as usage_app
from starter.cli.webhooks import app as webhooks_app

app = typer.Typer(help="Lifecycle Engine: customer lifecycle campaigns on Temporal.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
customer_app = typer.Typer(help="Inspect customers, and act on one.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(customer_app, name="customer")
app.add_typer(usage_app, name="usage")
app.add_typer(stripe_app, name="stripe")
app.add_typer(templates_app, name="templates")
app.add_typer(outbox_app, name="outbox")
app.add_typer(campaigns_app, name="campaigns")
app.add_typer(signals_app, name="signals")
app.add_typer(invoice_app, name="invoice")
app.add_typer(dunning_app, name="dunning")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(policy_app, name="policy")
app.add_typer(ops.customers_app, name="customers")
app.add_typer(ops.ops_app, name="ops")
app.command("audit")(ops.audit)
customer_app.command("action")(ops.customer_action)

console = make_console()


@app.command()
def dev(
    demo: Annotated[bool, typer.Option(help="compressed policy (a day lasts seconds) and sample customers")] = False,
    day_seconds: Annotated[float, typer.Option(help="length of a policy day with --demo")] = 10.0,
) -> None:
    """Run the whole local stack: Temporal dev server, worker, API. Ctrl-C stops everything."""
    from starter.dev.stack import run_dev

    raise typer.Exit(run_dev(settings_or_exit(), demo=demo, day_seconds=day_seconds))


@app.command()
def worker() -> None:
    """Run a Temporal worker (all workflows and activities) on the configured task queue."""
    from lifecycle.settings import SettingsError
    from worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # the stripe SDK logs every request URL at INFO, customer emails in query strings included
    logging.getLogger("stripe").setLevel(logging.WARNING)
    try:
        asyncio.run(run_worker(settings_or_exit()))
    except KeyboardInterrupt:
        pass
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        raise typer.Exit(2) from None


@app.command()
def api(
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to bind")] = 8000,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
) -> None:
    """Run the HTTP API (OpenAPI docs at /docs). Refuses production-like settings (beyond
    loopback, live Stripe, real email) with a default or short secret."""
    import uvicorn

    from lifecycle.settings import SettingsError, refuse_unsafe_start

    settings = settings_or_exit()
    try:
        refuse_unsafe_start(settings, host=host, who="the API")
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        raise typer.Exit(2) from None
    if workers == 1:
        from starter.api.app import create_app

        target: object = create_app(settings, host=host)
    else:  # each worker process imports the factory; the host was checked above
        target = "starter.api.app:create_app"
    uvicorn.run(
        target,  # type: ignore[arg-type]  # an app or its factory's import string
        factory=workers > 1, host=host, port=port, workers=workers, log_level="info",
    )


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="target revision")] = "head") -> None:
    """Apply migrations and seed the plan catalog."""
    from lifecycle.db import upgrade

    settings = settings_or_exit()
    upgrade(settings.database_url, revision)
    console.print(f"database at {safe(settings.database_url)} is at {safe(revision)}")


@customer_app.command("show")
def customer_show(customer_id: str) -> None:
    """A customer's stage, subscription, usage this period, timeline (with every email held
    back and why), emails sent, and the link to its workflow in the Web UI."""
    from lifecycle.contracts.ids import customer_workflow_id
    from lifecycle.db import database
    from lifecycle.models import Customer, EmailMessage, LifecycleEvent, Subscription
    from lifecycle.usage import UsageService

    settings = settings_or_exit()
    with database(settings.database_url) as sessions, sessions() as session:
        customer = session.get(Customer, customer_id)
        if customer is None:
            console.print(f"[red]unknown customer {safe(repr(customer_id))}[/red]")
            raise typer.Exit(1)
        console.print(f"[bold]{safe(customer.id)}[/bold]  {safe(customer.name)} <{safe(customer.email)}>  "
                      f"{safe(customer.company)}")
        plan = safe(customer.plan_code) if customer.plan_code else "none (its Stripe price maps to no tier)"
        console.print(
            f"stage [bold]{safe(customer.stage)}[/bold]  plan {plan}  "
            f"trial ends {customer.trial_ends_at:%Y-%m-%d %H:%M UTC}" if customer.trial_ends_at else
            f"stage [bold]{safe(customer.stage)}[/bold]  plan {plan}"
        )
        console.print(f"payment method on file: {'yes' if customer.payment_method_on_file else 'no'}")
        console.print(f"workflow: {safe(settings.temporal_ui_link(customer_workflow_id(customer.id)))}")
        sub = session.scalars(
            select(Subscription)
            .where(Subscription.customer_id == customer_id)
            .order_by(Subscription.updated_at.desc(), Subscription.id.desc())
        ).first()
        if sub is None:
            console.print("subscription: none")
        else:
            ends = f"{sub.current_period_end:%Y-%m-%d}" if sub.current_period_end else "?"
            cancel = ", cancels at period end" if sub.cancel_at_period_end else ""
            from lifecycle.billing.currencies import CATALOG_CURRENCY, subscription_currency
            from lifecycle.billing.prices import tier_label
            from lifecycle.contracts.money import money

            every = f"{sub.interval}ly" if sub.interval else "(no interval)"
            amount = money(sub.amount_cents, subscription_currency(session, sub) or CATALOG_CURRENCY)
            console.print(
                f"subscription: {safe(tier_label(sub.plan_code, sub.stripe_price_id))} {every} "
                f"{amount}, "
                f"{safe(sub.status)}, period ends {ends}{cancel}  ({safe(sub.stripe_subscription_id)})"
            )
        stripe_ids = (customer.stripe_customer_id, sub.stripe_subscription_id if sub else None)
        from lifecycle.billing.dunning import current_view

        dunning = current_view(session, customer_id)
        if dunning is not None and not dunning["ended"]:
            console.print(f"dunning: {safe(dunning['state'])}"
                          f"{', access suspended' if dunning['suspended'] else ''}")
        if dunning is not None and (failing := dunning["end_action_failing"]):
            console.print(f"[red]dunning end action {safe(failing['action'])} not confirmed by Stripe "
                          f"(failing since {failing['since']:%Y-%m-%d %H:%M} UTC, retried): "
                          f"{safe(failing['error'])}; Stripe keeps billing until it succeeds[/red]")

        from starter.cli.growth import growth_lines

        for line in growth_lines(session, customer_id):
            console.print(safe(line))

        ent = UsageService(sessions).entitlements(customer_id)
        usage = Table(title=f"usage {ent['period']['start'][:10]} → {ent['period']['end'][:10]}")
        for col in ("metric", "used", "limit", "kind", "remaining"):
            usage.add_column(col)
        for metric, m in ent["metrics"].items():
            usage.add_row(safe(metric), f"{m['used']:,}", safe(f"{m['limit']:,} {m['unit']}"), safe(m["limit_kind"]),
                          f"{m['remaining']:,}" + ("  (over)" if m["overage"] else ""))
        console.print(usage)

        from starter.cli.winback import print_winback

        print_winback(console, session, customer_id)

        timeline = Table(title="timeline", show_lines=False)
        for col in ("when (UTC)", "what", "campaign", "detail"):
            timeline.add_column(col)
        for ev in session.scalars(
            select(LifecycleEvent).where(LifecycleEvent.customer_id == customer_id).order_by(
                LifecycleEvent.occurred_at, LifecycleEvent.id
            )
        ):
            what = ev.kind if ev.kind != "stage_changed" else f"stage {ev.from_stage or '-'} → {ev.to_stage}"
            detail = ", ".join(f"{k}={v}" for k, v in ev.detail.items() if v is not None)
            timeline.add_row(f"{ev.occurred_at:%Y-%m-%d %H:%M:%S}", safe(what), safe(ev.campaign or ""), safe(detail))
        console.print(timeline)

        emails = Table(title="emails")
        for col in ("sent (UTC)", "campaign/step", "template", "variant", "subject", "status"):
            emails.add_column(col)
        for msg in session.scalars(
            select(EmailMessage).where(EmailMessage.customer_id == customer_id).order_by(EmailMessage.id)
        ):
            emails.add_row(
                f"{msg.sent_at or msg.created_at:%Y-%m-%d %H:%M:%S}",
                safe(f"{msg.campaign}/{msg.step}"),
                safe(f"{msg.template} ({msg.template_version})"),
                safe(msg.variant or ""),
                safe(msg.subject),
                safe(msg.status),
            )
        console.print(emails)
    # Stripe ids and why-waiting: Temporal is asked after the database session is closed
    ops.show_ops(console, settings, customer_id, *stripe_ids)


def main() -> None:
    # The Temporal SDK can crash at interpreter teardown after all work is done
    # (COMPONENTS.md): finish, flush, and exit with the command's own status.
    try:
        app()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
