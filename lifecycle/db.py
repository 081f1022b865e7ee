"""Database engine, sessions, migrations and the catalog seed.

No engine is created at import: callers build one from settings with
:func:`make_engine` and keep it (the API in its lifespan, the worker at start).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, UniqueConstraint, create_engine, event, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from lifecycle.contracts import catalog
from lifecycle.models import LifecycleEvent, PlanRow

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys and a busy timeout."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
        kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def database(url: str) -> Iterator[sessionmaker[Session]]:
    """A session factory for a short-lived process (a CLI command); the engine is disposed after."""
    engine = make_engine(url)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations, then seed the plan catalog."""
    command.upgrade(alembic_config(url), revision)
    with database(url) as sessions, session_scope(sessions) as session:
        seed_catalog(session)


def seed_catalog(session: Session) -> None:
    """Make the plans table match lifecycle.contracts.catalog (prices, limits, features)."""
    existing = {p.code: p for p in session.scalars(select(PlanRow))}
    for plan in catalog.PLANS:
        row = existing.get(plan.code) or PlanRow(code=plan.code)
        row.name = plan.name
        row.rank = plan.rank
        row.monthly_price_cents = plan.monthly_price_cents
        row.annual_price_cents = plan.annual_price_cents
        row.features = dict(plan.features)
        row.limits = {
            lim.metric: {"amount": lim.amount, "kind": lim.kind, "unit": lim.unit}
            for lim in plan.limits
        }
        session.add(row)


def add_timeline_event(
    session: Session,
    *,
    key: str,
    customer_id: str,
    kind: str,
    at: dt.datetime,
    detail: dict[str, Any],
    campaign: str | None = None,
    from_stage: str | None = None,
    to_stage: str | None = None,
) -> bool:
    """Add an entry to the customer's timeline once per ``key`` (a retry records nothing twice).

    Returns False when an entry with this key is already there. The caller commits.
    """
    # INSERT ... ON CONFLICT DO NOTHING: two requests racing on one key record it once
    return insert_ignore(
        session,
        LifecycleEvent,
        dict(
            event_key=key[:255],  # the column's length
            customer_id=customer_id,
            kind=kind,
            from_stage=from_stage,
            to_stage=to_stage,
            campaign=campaign or None,
            detail=detail,
            occurred_at=at,
            recorded_at=dt.datetime.now(dt.UTC),
        ),
        on=("event_key",),
    )


def dialect_insert(dialect_name: str) -> Any:
    """The INSERT construct with ON CONFLICT for this database (PostgreSQL or SQLite)."""
    return postgresql.insert if dialect_name == "postgresql" else sqlite.insert


def unique_keys(model: type[Any]) -> list[frozenset[str]]:
    """The column sets that identify a row of ``model``: its primary key and each unique
    constraint, unique index or unique column."""
    table = sa_inspect(model).local_table
    keys = [frozenset(c.name for c in table.primary_key.columns)]
    keys += [frozenset(c.name for c in u.columns) for u in table.constraints if isinstance(u, UniqueConstraint)]
    keys += [frozenset(c.name for c in i.columns) for i in table.indexes if i.unique]
    keys += [frozenset([c.name]) for c in table.columns if c.unique]
    return keys


def insert_ignore(session: Session, model: type[Any], values: dict[str, Any], *, on: Sequence[str]) -> bool:
    """INSERT ... ON CONFLICT (``on``) DO NOTHING; False if a row with the same ``on`` was
    already there.

    ``on`` names the key the caller means (the primary key or one unique constraint, by its
    columns): only a conflict on it is ignored, any other unique violation raises
    (``IntegrityError``) instead of being taken for "already there"."""
    if frozenset(on) not in unique_keys(model):
        raise ValueError(f"{model.__name__}: {tuple(on)} is neither its primary key nor a unique constraint")
    insert = dialect_insert(session.get_bind().dialect.name)
    key = sa_inspect(model).primary_key[0]
    stmt = insert(model).values(**values).on_conflict_do_nothing(index_elements=list(on)).returning(key)
    return session.execute(stmt).scalar_one_or_none() is not None
