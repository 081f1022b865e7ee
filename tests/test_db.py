"""The schema: migrations and models agree, on SQLite and on PostgreSQL; the catalog is seeded."""

from __future__ import annotations

import datetime as dt

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from lifecycle.contracts import catalog
from lifecycle.db import (
    alembic_config,
    insert_ignore,
    make_engine,
    make_session_factory,
    session_scope,
    upgrade,
)
from lifecycle.models import Base, Customer, DunningCase, DunningRun, PlanRow, Suppression


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


def _customer(id: str, stripe_id: str) -> dict[str, object]:
    return dict(id=id, email=f"{id}@example.com", stage="trialing", stripe_customer_id=stripe_id)


def test_insert_ignore_ignores_only_a_conflict_on_the_key_it_names(session_factory: sessionmaker[Session]) -> None:
    """ON CONFLICT (id) DO NOTHING: the same id is "already there" (False, the row unchanged);
    another customer claiming the same Stripe customer (a different unique key) is an error,
    never taken for "already there" (a bare DO NOTHING hid it)."""
    with session_scope(session_factory) as s:
        assert insert_ignore(s, Customer, _customer("c1", "cus_1"), on=("id",)) is True
    with session_scope(session_factory) as s:
        assert insert_ignore(s, Customer, _customer("c1", "cus_other"), on=("id",)) is False
    with pytest.raises(IntegrityError), session_scope(session_factory) as s:
        insert_ignore(s, Customer, _customer("c2", "cus_1"), on=("id",))
    with session_factory() as s:
        assert [(c.id, c.stripe_customer_id) for c in s.scalars(select(Customer))] == [("c1", "cus_1")]


def test_insert_ignore_takes_a_unique_constraint_of_several_columns_and_refuses_any_other_key(
    session_factory: sessionmaker[Session],
) -> None:
    row = dict(email="a@example.com", reason="unsubscribe", scope="marketing", source="link")
    with session_scope(session_factory) as s:
        assert insert_ignore(s, Suppression, row, on=("email", "reason")) is True
        assert insert_ignore(s, Suppression, row, on=("reason", "email")) is False
        assert insert_ignore(s, Suppression, {**row, "reason": "bounce"}, on=("email", "reason")) is True
    with pytest.raises(ValueError, match="neither its primary key nor a unique constraint"), \
            session_scope(session_factory) as s:
        insert_ignore(s, Suppression, row, on=("email",))


def test_downgrade_to_0019_keeps_the_latest_of_two_dunning_runs_of_one_invoice(db_url: str) -> None:
    """0020 keys dunning by run: a second dunning of the same invoice has its own rows. Going
    back to 0019 (one run per workflow id, one case per invoice) keeps the latest run's."""
    wid = "customer-c1/dunning/in_1"
    first, second = dt.datetime(2026, 11, 1, tzinfo=dt.UTC), dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    engine = make_engine(db_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            for run_id, at, state in (("run-b", first, "canceled"), ("run-a", second, "warning")):
                session.add(DunningRun(workflow_id=wid, run_id=run_id, customer_id="c1", state=state,
                                       since=at, started_at=at, retry_mode="engine"))
                session.add(DunningCase(invoice_id="in_1", workflow_id=wid, run_id=run_id,
                                        customer_id="c1", failed_at=at, outcome=state))
    finally:
        engine.dispose()

    command.downgrade(alembic_config(db_url), "0019_idempotency_keys")

    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            runs = conn.execute(text("SELECT workflow_id, state FROM dunning_runs")).all()
            cases = conn.execute(text("SELECT invoice_id, outcome FROM dunning_cases")).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in runs] == [(wid, "warning")]  # the later run (started 2026-12-01)
    assert [tuple(c) for c in cases] == [("in_1", "warning")]
    upgrade(db_url)  # and back up again
