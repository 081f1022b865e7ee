"""CLI for marketers and ops: ``lifecycle templates …``, ``lifecycle outbox …``, ``lifecycle campaigns …``.

Registered in ``starter/cli/app.py``::

    app.add_typer(templates_app, name="templates")
    app.add_typer(outbox_app, name="outbox")
    app.add_typer(campaigns_app, name="campaigns")
"""

from __future__ import annotations

import asyncio
import webbrowser
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from lifecycle.contracts.policy import CampaignPolicy, Conversion, PolicyError, load_policy
from lifecycle.db import database, session_scope
from lifecycle.email.previews import EmailPreviews
from lifecycle.email.providers import OutboxProvider, make_provider
from lifecycle.email.results import campaign_results
from lifecycle.email.service import EmailRejected, EmailRetryLater, EmailService
from lifecycle.email.templates.checks import check_templates
from lifecycle.email.templates.render import SUFFIX, TemplateRenderError, TemplateSet
from lifecycle.email.templates.versions import load_published, publish, unpublish
from lifecycle.models import EmailMessage, TemplateVersion
from lifecycle.settings import Settings, SettingsError, settings_or_exit
from starter.cli.text import console as make_console
from starter.cli.text import plain, safe

templates_app = typer.Typer(
    help="Email templates: check, preview, send a test, publish without a deploy.",
    no_args_is_help=True,
)
outbox_app = typer.Typer(help="Emails recorded (the outbox and every provider's log).", no_args_is_help=True)
campaigns_app = typer.Typer(help="Campaign results per step and A/B variant.", no_args_is_help=True)

console = make_console()
err = make_console(stderr=True)


@campaigns_app.callback()
def _campaigns() -> None:
    """Campaign results per step and A/B variant."""  # a group even with one command



def _policy(settings: Settings) -> CampaignPolicy:
    try:
        return load_policy(settings.policy_path, day_seconds=settings.day_seconds)
    except PolicyError as exc:
        err.print(f"[red]{safe(exc)}[/red]")
        raise typer.Exit(2) from None


def _email_dir(settings: Settings) -> Path:
    return settings.templates_dir / "email"


def _published_or_none(factory: sessionmaker[Session], names: list[str] | None = None) -> list:
    """Published versions, or [] (with a note) when the database is not migrated yet."""
    try:
        with session_scope(factory) as session:
            return load_published(session, names)
    except DBAPIError as exc:
        err.print(f"[yellow]note: no published versions read ({safe(exc.orig)}); using files[/yellow]")
        return []


# --- templates --------------------------------------------------------------------------


@templates_app.command("check")
def templates_check(
    published: Annotated[
        bool, typer.Option("--published/--files-only", help="also check versions published in the database")
    ] = False,
) -> None:
    """Validate every template: syntax, layout blocks, declared variables, sample render, absolute links."""
    settings = settings_or_exit()
    policy = _policy(settings)
    versions = []
    if published:
        with database(settings.database_url) as factory:
            versions = _published_or_none(factory)
    templates = TemplateSet(_email_dir(settings), versions)
    problems = check_templates(templates, policy)
    for p in problems:
        console.print(f"[red]✗[/red] {safe(p)}")
    names = templates.names()
    if problems:
        console.print(f"{len(problems)} problem(s) in {len({p.template for p in problems})} template(s)")
        raise typer.Exit(1)
    console.print(f"[green]✓[/green] {len(names)} templates OK: {safe(', '.join(names))}")


@templates_app.command("preview")
def templates_preview(
    name: Annotated[str, typer.Argument(help="template name, e.g. welcome")],
    customer: Annotated[str | None, typer.Option("--customer", help="render with this customer's data")] = None,
    sample: Annotated[bool, typer.Option("--sample", help="render with the step's sample data (default)")] = False,
    out: Annotated[Path, typer.Option(help="folder to write NAME.html and NAME.txt to")] = Path(".data/preview"),
    open_browser: Annotated[bool, typer.Option("--open/--no-open", help="open the HTML in a browser if there is one")] = True,
) -> None:
    """Render subject, HTML and text; write them out and open the HTML where a browser exists."""
    if customer and sample:
        err.print("[red]--customer and --sample: choose one[/red]")
        raise typer.Exit(2)
    settings = settings_or_exit()
    policy = _policy(settings)
    with database(settings.database_url) as factory:
        service = EmailPreviews(EmailService(factory, OutboxProvider(), settings))  # renders only
        try:
            with session_scope(factory) as session:
                rendered = service.render_for(session, name, customer_id=customer, policy=policy)
        except DBAPIError as exc:
            if customer:
                err.print(f"[red]database: {safe(exc.orig)}[/red]")
                raise typer.Exit(1) from None
            files = TemplateSet(_email_dir(settings))
            rendered = files.render(name, service.sample_vars(files, name, policy))
        except (TemplateRenderError, EmailRejected) as exc:
            err.print(f"[red]{safe(exc)}[/red]")
            raise typer.Exit(1) from None
    out.mkdir(parents=True, exist_ok=True)
    html_path, text_path = out / f"{name}.html", out / f"{name}.txt"
    html_path.write_text(rendered.html, encoding="utf-8")
    text_path.write_text(
        f"Subject: {rendered.subject}\nPreheader: {rendered.preheader}\n\n{rendered.text}",
        encoding="utf-8",
    )
    console.print(f"[bold]Subject:[/bold]   {safe(rendered.subject)}")
    console.print(f"[bold]Preheader:[/bold] {safe(rendered.preheader)}")
    console.print(f"[bold]Version:[/bold]   {safe(rendered.template_version)}")
    console.print(f"HTML: {safe(html_path)}\ntext: {safe(text_path)}")
    if open_browser:
        _open(html_path)


def _open(path: Path) -> None:
    try:
        browser = webbrowser.get()
    except webbrowser.Error:
        console.print("(no browser here; open the HTML file yourself)")
        return
    if isinstance(browser, webbrowser.GenericBrowser):  # a console browser would take the terminal
        console.print("(no graphical browser here; open the HTML file yourself)")
        return
    browser.open(path.resolve().as_uri())


@templates_app.command("send-test")
def templates_send_test(
    name: Annotated[str, typer.Argument(help="template name")],
    to: Annotated[str, typer.Option("--to", help="address to send the test to")],
    customer: Annotated[str | None, typer.Option("--customer", help="render with this customer's data")] = None,
) -> None:
    """Send one through the configured provider, marked as a test ([TEST] subject, X-Lifecycle-Test)."""
    if "@" not in to:
        err.print(f"[red]--to: {safe(repr(to))} is not an email address[/red]")
        raise typer.Exit(2)
    settings = settings_or_exit()
    policy = _policy(settings)
    try:
        provider = make_provider(settings)
    except SettingsError as exc:
        err.print(f"[red]{safe(exc)}[/red]")
        raise typer.Exit(2) from None
    with database(settings.database_url) as factory:
        service = EmailPreviews(EmailService(factory, provider, settings))
        try:
            result = asyncio.run(service.send_test(name, to, customer_id=customer, policy=policy))
        except (EmailRejected, EmailRetryLater) as exc:
            err.print(f"[red]not sent: {safe(exc)}[/red]")
            raise typer.Exit(1) from None
    console.print(
        f"test of {safe(name)} ({safe(result.template_version)}) {safe(result.status)} to {safe(to)} via "
        f"{safe(provider.name)}; message {result.message_id} (`lifecycle outbox show {result.message_id}`)"
    )


@templates_app.command("publish")
def templates_publish(
    name: Annotated[str, typer.Argument(help="template name")],
    file: Annotated[Path | None, typer.Option("--file", help=f"source to publish (default templates/email/NAME{SUFFIX})")] = None,
    author: Annotated[str, typer.Option(help="who made this edit")] = "",
    revert: Annotated[bool, typer.Option("--revert", help="withdraw published versions: the file is in force again")] = False,
) -> None:
    """Publish a new version to the database (it overrides the file, no deploy). Checked first."""
    settings = settings_or_exit()
    with database(settings.database_url) as factory:
        if revert:
            with session_scope(factory) as session:
                n = unpublish(session, name)
            console.print(f"{safe(name)}: {n} version(s) withdrawn; the file is in force")
            return
        path = file or (_email_dir(settings) / f"{name}{SUFFIX}")
        if not path.is_file():
            err.print(f"[red]--file: {safe(path)} not found[/red]")
            raise typer.Exit(2)
        source = path.read_text(encoding="utf-8")
        from lifecycle.email.templates.versions import Published

        others = [p for p in _published_or_none(factory) if p.name != name]
        candidate = TemplateSet(_email_dir(settings), [*others, Published(name, 0, source)])
        problems = check_templates(candidate, _policy(settings), only=[name] if not name.startswith("_") else None)
        if problems:
            for p in problems:
                err.print(f"[red]✗[/red] {safe(p)}")
            err.print("[red]not published[/red]")
            raise typer.Exit(1)
        with session_scope(factory) as session:
            row = publish(session, name, source, author=author)
            version = row.version
    console.print(f"[green]✓[/green] {safe(name)} v{version} published; new emails use it now")


@templates_app.command("versions")
def templates_versions(name: Annotated[str, typer.Argument(help="template name")]) -> None:
    """Every stored version of a template; the one in force is marked."""
    settings = settings_or_exit()
    with database(settings.database_url) as factory, session_scope(factory) as session:
        rows = list(session.scalars(
            select(TemplateVersion).where(TemplateVersion.name == name).order_by(TemplateVersion.version)
        ))
        in_force = {p.name: p.version for p in load_published(session, [name])}.get(name)
    table = Table("version", "published", "author", "created", "subject", title=safe(name))
    for r in rows:
        mark = " ← in force" if r.version == in_force else ""
        table.add_row(f"v{r.version}{mark}", "yes" if r.published else "no", safe(r.author),
                      f"{r.created_at:%Y-%m-%d %H:%M}", safe(r.subject[:60]))
    console.print(table)
    if in_force is None:
        console.print(f"in force: the file templates/email/{safe(name)}{SUFFIX}")


# --- outbox -----------------------------------------------------------------------------


@outbox_app.command("list")
def outbox_list(
    customer: Annotated[str | None, typer.Option(help="only this customer")] = None,
    campaign: Annotated[str | None, typer.Option(help="only this campaign")] = None,
    status: Annotated[str | None, typer.Option(help="only this status (sent, deferred…)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
) -> None:
    """The newest recorded emails (every provider; the outbox provider stores them only here)."""
    settings = settings_or_exit()
    with database(settings.database_url) as factory, session_scope(factory) as session:
        q = select(EmailMessage).order_by(EmailMessage.id.desc()).limit(limit)
        if customer:
            q = q.where(EmailMessage.customer_id == customer)
        if campaign:
            q = q.where(EmailMessage.campaign == campaign)
        if status:
            q = q.where(EmailMessage.status == status)
        rows = list(session.scalars(q))
    table = Table("id", "created (UTC)", "to", "campaign/step", "template", "variant", "status", "subject")
    for r in rows:
        table.add_row(
            str(r.id), f"{r.created_at:%Y-%m-%d %H:%M}", safe(r.to_address),
            safe(f"{r.campaign}/{r.step}") if r.campaign else "-",
            safe(f"{r.template}@{r.template_version}"), safe(r.variant or "-"),
            safe(r.status) + (" (test)" if r.is_test else ""), safe(plain(r.subject)[:50]),
        )
    console.print(table)


@outbox_app.command("show")
def outbox_show(
    message_id: Annotated[int, typer.Argument(help="message id from `outbox list`")],
    html: Annotated[bool, typer.Option("--html", help="print the HTML part too")] = False,
) -> None:
    """One email in full: headers, subject, text (and HTML)."""
    settings = settings_or_exit()
    with database(settings.database_url) as factory, session_scope(factory) as session:
        r = session.get(EmailMessage, message_id)
        if r is None:
            err.print(f"[red]no message {message_id}[/red]")
            raise typer.Exit(1)
    console.print(f"[bold]Message {r.id}[/bold]  status {safe(r.status)}  via {safe(r.provider)}"
                  f"  provider id {safe(r.provider_message_id or '-')}")
    console.print(f"From: {safe(r.from_address)}\nTo: {safe(r.to_address)}\nSubject: {safe(r.subject)}")
    for k, v in (r.headers or {}).items():
        console.print(f"{safe(k)}: {safe(v)}")
    console.print(f"Template: {safe(r.template)} ({safe(r.template_version)})  variant {safe(r.variant or '-')}"
                  f"  campaign {safe(r.campaign or '-')}/{safe(r.step or '-')}  category {safe(r.category)}")
    console.print(f"Created: {r.created_at:%Y-%m-%d %H:%M:%S} UTC  sent: "
                  f"{r.sent_at:%Y-%m-%d %H:%M:%S} UTC" if r.sent_at else f"Created: {r.created_at}")
    if r.error:
        console.print(f"[red]Error: {safe(r.error)}[/red]")
    console.print("\n" + plain(r.text, multiline=True), markup=False, highlight=False)
    if html:
        console.print(plain(r.html, multiline=True), markup=False, highlight=False)


# --- campaigns --------------------------------------------------------------------------


@campaigns_app.command("results")
def campaigns_results(
    campaign: Annotated[str, typer.Argument(help="campaign name, e.g. onboarding")],
    step: Annotated[str | None, typer.Option(help="only this step")] = None,
) -> None:
    """Per step and variant: sent, delivered, opened, clicked, converted, and the lift over holdout."""
    settings = settings_or_exit()
    policy = _policy(settings)
    conversion = policy.conversions.get(campaign, Conversion())
    with database(settings.database_url) as factory, session_scope(factory) as session:
        results = campaign_results(
            session, campaign, conversion, day_seconds=policy.day_seconds, step=step
        )
    if not results:
        console.print(f"no emails recorded for campaign {safe(repr(campaign))}")
        return
    table = Table(
        "step", "variant", "customers", "sent", "delivered", "opened", "clicked", "converted",
        "rate", "vs holdout",
        title=safe(f"{campaign}: converted = {conversion.goal} within {conversion.within_days:g} days"),
    )
    for g in results:
        lift = "" if g.lift_pp is None else f"{g.lift_pp:+.1f} pp"
        table.add_row(
            safe(g.step), safe(g.variant), str(g.customers), str(g.sent), str(g.delivered), str(g.opened),
            str(g.clicked), str(g.converted), f"{100 * g.conversion_rate:.1f}%", lift,
        )
    console.print(table)
