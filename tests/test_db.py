"""The schema: migrations and models agree, on SQLite and on PostgreSQL; the catalog is seeded."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select

from lifecycle.contracts import catalog
from lifecycle.db import make_engine, make_session_factory, upgrade
from lifecycle.models import Base, PlanRow


def test_migrations_create_exactly_the_models(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(ctx, Base.metadata)
            tables = set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
    assert diff == [], f"models and migrations disagree: {diff}"
    assert set(Base.metadata.tables) <= tables


def test_catalog_is_seeded_with_the_four_tiers_and_reseeding_is_harmless(db_url: str) -> None:
    upgrade(db_url)  # a second upgrade changes nothing and duplicates nothing
    engine = make_engine(db_url)
    try:
        with make_session_factory(engine)() as s:
            rows = {p.code: p for p in s.scalars(select(PlanRow))}
    finally:
        engine.dispose()
    assert {code: row.monthly_price_cents for code, row in rows.items()} == {
        "starter": 1900,
        "professional": 4900,
        "business": 9900,
        "enterprise": 19900,
    }
    assert rows["starter"].limits["ai_requests"] == {"amount": 1000, "kind": "hard", "unit": "requests"}
    assert rows["enterprise"].features["sso"] is True
    assert rows["starter"].features["api_access"] is False


def test_next_tier_up_and_what_it_adds() -> None:
    assert catalog.next_plan_up("starter").code == "professional"
    assert catalog.next_plan_up("enterprise") is None
    adds = catalog.added_by(catalog.get_plan("professional"), catalog.get_plan("starter"))
    assert "api access" in adds
    assert any("10,000 requests" in a for a in adds)
