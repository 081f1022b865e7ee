"""Published versions of the policy and the catalog: stored once by content, the last published wins.

``publish`` stores ``templates/campaigns.toml`` and the catalog together (validated by the
caller: ``current_files``) as one row of ``policy_versions``; the same content published
again is the same row, made the latest again. Each publication is a row of
``policy_publications``: the latest version is the one of the highest publication id, an
order the database assigns (never the publisher's clock, which may be skewed). Entities load versions through
``activities/policy.py``; ``starter/signals/policy.py`` tells the running ones.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from lifecycle.contracts.policy import CampaignPolicy, PolicyError, load_policy
from lifecycle.contracts.policy_versions import (
    PolicyVersion,
    content_hash,
    policy_content,
    version_from_content,
)
from lifecycle.contracts.tiers import Tiers, tiers_from_catalog
from lifecycle.db import insert_ignore
from lifecycle.models import PolicyPublicationRow, PolicyVersionRow
from lifecycle.settings import Settings


@dataclass
class Published:
    """What ``publish`` did: the version, and whether it is new or was the latest already."""

    version: PolicyVersion
    created: bool  # a new row (content never published before)
    changed: bool  # the latest version is another one than before (running entities must hear it)


def check_tiers(tiers: Tiers) -> None:
    """A catalog an entity can decide on, or PolicyError saying what is wrong."""
    if not tiers.tiers:
        raise PolicyError("catalog: no tier")
    codes = [t.code for t in tiers.tiers]
    ranks = [t.rank for t in tiers.tiers]
    if len(set(codes)) != len(codes) or any(not c for c in codes):
        raise PolicyError(f"catalog: tier codes must be unique and non-empty, got {codes}")
    if len(set(ranks)) != len(ranks):
        raise PolicyError(f"catalog: tier ranks must be unique, got {ranks}")
    for t in tiers.tiers:
        if t.monthly_price_cents < 0 or t.annual_price_cents < 0:
            raise PolicyError(f"catalog.{t.code}: prices must not be negative")
        for lim in t.limits:
            if lim.kind not in ("hard", "soft"):
                raise PolicyError(f"catalog.{t.code}.{lim.metric}: kind must be hard or soft, got {lim.kind!r}")


def current_files(settings: Settings) -> tuple[CampaignPolicy, Tiers]:
    """The policy file and the catalog as deployed, validated (PolicyError otherwise)."""
    policy = load_policy(settings.policy_path, day_seconds=settings.day_seconds)
    tiers = tiers_from_catalog()
    check_tiers(tiers)
    for name in (policy.team_promotion.tier, *policy.team_promotion.plans):
        if name not in tiers.codes:
            raise PolicyError(f"team_promotion: unknown tier {name!r}; the catalog has {', '.join(tiers.codes)}")
    return policy, tiers


def _version(row: PolicyVersionRow) -> PolicyVersion:
    return version_from_content(row.id, row.content_hash, row.content)


def _latest_row(session: Session) -> PolicyVersionRow | None:
    return session.scalars(
        select(PolicyVersionRow)
        .join(PolicyPublicationRow, PolicyPublicationRow.version_id == PolicyVersionRow.id)
        .order_by(PolicyPublicationRow.id.desc())
        .limit(1)
    ).first()


def latest(session: Session) -> PolicyVersion | None:
    """The version published last (None: nothing published yet)."""
    row = _latest_row(session)
    return _version(row) if row is not None else None


def get(session: Session, version_id: int) -> PolicyVersion | None:
    row = session.get(PolicyVersionRow, version_id)
    return _version(row) if row is not None else None


def publish(
    session: Session, policy: CampaignPolicy, tiers: Tiers, *, who: str = "", reinstate: bool = True
) -> Published:
    """Store ``policy`` and ``tiers`` as a version (once per content) and make it the latest;
    with ``reinstate=False`` content published before stays where it is (not made the latest)."""
    content = policy_content(policy, tiers)
    digest = content_hash(content)
    before = _latest_row(session)
    now = dt.datetime.now(dt.UTC)
    created = insert_ignore(
        session, PolicyVersionRow,
        {"content_hash": digest, "content": content, "published_at": now, "published_by": who[:200]},
        on=("content_hash",),
    )
    row = session.scalars(select(PolicyVersionRow).where(PolicyVersionRow.content_hash == digest)).one()
    if not created and not reinstate:
        return Published(version=_version(row), created=False, changed=False)
    changed = before is None or before.id != row.id
    if created or changed:  # new, or an earlier version in force again: a publication, ordered by the database
        if not created:
            row.published_at, row.published_by = now, who[:200]
        session.add(PolicyPublicationRow(version_id=row.id, published_at=now, published_by=who[:200]))
        session.flush()
    return Published(version=_version(row), created=created, changed=changed)
