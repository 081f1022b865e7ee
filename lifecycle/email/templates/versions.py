"""Published template versions: stored in the database, newest published wins, no deploy.

``lifecycle templates publish`` stores a checked source as the next version of a template
and publishes it; ``--revert`` withdraws every published version so the file is in force
again. Every send reads the newest published versions, and the renderer (``render.py``)
prefers them to the files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lifecycle.models import TemplateVersion


@dataclass
class Published:
    """A template's source as published in the database."""

    name: str
    version: int
    source: str


def load_published(session: Session, names: Iterable[str] | None = None) -> list[Published]:
    """The newest published version of each template (of ``names``, or all)."""
    newest = (
        select(TemplateVersion.name, func.max(TemplateVersion.version).label("v"))
        .where(TemplateVersion.published.is_(True))
        .group_by(TemplateVersion.name)
    )
    if names is not None:
        newest = newest.where(TemplateVersion.name.in_(list(names)))
    sub = newest.subquery()
    rows = session.scalars(
        select(TemplateVersion).join(
            sub, (TemplateVersion.name == sub.c.name) & (TemplateVersion.version == sub.c.v)
        )
    )
    return [Published(r.name, r.version, r.source or "") for r in rows if r.source]


def split_blocks(source: str) -> dict[str, str]:
    """The source of each top-level block, for the editor-friendly columns of a version."""
    out: dict[str, str] = {}
    for m in re.finditer(
        r"{%-?\s*block\s+(\w+)\s*-?%}(.*?){%-?\s*endblock(?:\s+\1)?\s*-?%}", source, re.S
    ):
        out.setdefault(m.group(1), m.group(2).strip())
    return out


def publish(session: Session, name: str, source: str, *, author: str = "") -> TemplateVersion:
    """Store ``source`` as the next version of ``name`` and publish it (callers check it first)."""
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,127}", name):
        raise ValueError(f"template name {name!r}: use letters, digits, _ and -")
    current = session.scalar(
        select(func.max(TemplateVersion.version)).where(TemplateVersion.name == name)
    )
    blocks = split_blocks(source)
    row = TemplateVersion(
        name=name,
        version=(current or 0) + 1,
        subject=blocks.get("subject", ""),
        preheader=blocks.get("preheader", ""),
        html=blocks.get("html_body", ""),
        text=blocks.get("text_body", ""),
        source=source,
        published=True,
        author=author,
    )
    session.add(row)
    session.flush()
    return row


def unpublish(session: Session, name: str) -> int:
    """Withdraw every published version of ``name``: the file is in force again."""
    rows = list(
        session.scalars(
            select(TemplateVersion).where(
                TemplateVersion.name == name, TemplateVersion.published.is_(True)
            )
        )
    )
    for r in rows:
        r.published = False
    return len(rows)
