"""``lifecycle policy ...``: publish the campaign policy and the tier catalog as a version."""

from __future__ import annotations

import asyncio
import getpass
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import func, select
from temporalio.service import RPCError

from lifecycle.contracts.policy import PolicyError
from lifecycle.db import database
from lifecycle.models import PolicyPublicationRow, PolicyVersionRow
from lifecycle.settings import settings_or_exit
from starter.cli.text import console as cli_console
from starter.cli.text import safe

app = typer.Typer(help="Published versions of the campaign policy and the tier catalog.", no_args_is_help=True)
console = cli_console()


@app.command("publish")
def publish_cmd(
    who: Annotated[str, typer.Option(help="who publishes (the audit of the version)")] = "",
    signal: Annotated[bool, typer.Option(help="signal every running customer workflow")] = True,
    resend: Annotated[bool, typer.Option(help="signal even when the version was the latest already")] = False,
) -> None:
    """Validate templates/campaigns.toml and the catalog, store them as a version (the same
    content is the same version) and tell every running customer workflow."""
    from lifecycle.temporal import connect
    from starter.signals.policy import announce, publish_current

    settings = settings_or_exit()
    with database(settings.database_url) as factory:
        try:
            published = publish_current(settings, factory, who=who or getpass.getuser())
        except PolicyError as exc:
            console.print(f"[red]not published:[/red] {safe(str(exc))}")
            raise typer.Exit(1) from None
    v = published.version
    state = "new" if published.created else ("published again" if published.changed else "unchanged: already the latest")
    console.print(f"policy version {v.version_id} ({state}), content {v.content_hash[:12]}, "
                  f"{len(v.tiers.tiers)} tiers, a policy day of {v.policy.day_seconds:g} s")
    if not signal or not (published.changed or resend):
        return

    async def tell() -> None:
        try:
            client = await connect(settings)
            out = await announce(client, v.version_id)
        except (RPCError, RuntimeError) as exc:  # stored all the same: continue-as-new picks it up
            console.print(f"[red]stored, but no customer workflow was signalled:[/red] {safe(str(exc))}; "
                          "each loads it at its next continue-as-new, or run publish --resend when Temporal is back")
            raise typer.Exit(1) from None
        console.print(f"signalled {out.signalled} running customer workflow(s); {out.gone} had ended")
        for err in out.errors[:20]:
            console.print(f"  [red]{safe(err)}[/red]")
        if out.errors:  # each one still checks the latest at its next continue-as-new
            raise typer.Exit(1)

    asyncio.run(tell())


@app.command("list")
def list_cmd(limit: Annotated[int, typer.Option(help="how many, newest first")] = 20) -> None:
    """The published versions, the latest first."""
    with database(settings_or_exit().database_url) as factory, factory() as session:
        last = (select(PolicyPublicationRow.version_id, func.max(PolicyPublicationRow.id).label("seq"))
                .group_by(PolicyPublicationRow.version_id).subquery())
        rows = list(session.scalars(
            select(PolicyVersionRow).join(last, last.c.version_id == PolicyVersionRow.id)
            .order_by(last.c.seq.desc()).limit(limit)
        ))
    if not rows:
        console.print("no version published yet (the worker publishes the files at start)")
        return
    table = Table(title="policy versions (latest first)")
    for col in ("version", "published (UTC)", "by", "content"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r.id), f"{r.published_at:%Y-%m-%d %H:%M:%S}", safe(r.published_by), r.content_hash[:12])
    console.print(table)
