"""Signed webhook payloads the engine cannot read: refused with 400, nothing recorded.

Each body below carries a valid Stripe signature (the sender knows the secret, or Stripe
itself sent something odd), so only the shape check stands between it and the database.
Run on SQLite and PostgreSQL: PostgreSQL refuses NUL characters and over-long ids where
SQLite would take them.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select

from lifecycle.db import make_engine, make_session_factory
from lifecycle.models import StripeEvent
from starter.api.app import create_app
from tests.support.stripe import make_event, sign


def _event(**overrides):
    ev = make_event("balance.available", {"object": "balance", "available": []})
    ev.update(overrides)
    return ev


HOSTILE = {
    "json_array": [_event()],
    "json_string": "evt_1",
    "created_1e30": _event(created=10**30),
    "created_negative": _event(created=-5),
    "created_float": _event(created=1.5e9),
    "created_text": _event(created="yesterday"),
    "id_300_chars": _event(id="evt_" + "a" * 296),
    "id_with_spaces": _event(id="evt 1; drop table"),
    "id_number": _event(id=12345),
    "type_200_chars": _event(type="invoice." + "x" * 192),
    "type_with_nul": _event(type="invoice.paid\u0000"),
    "type_upper_case": _event(type="Invoice.Paid"),
    "nul_in_nested_string": make_event(
        "customer.updated", {"id": "cus_1", "object": "customer", "name": "a\u0000b", "metadata": {}}
    ),
    "nul_in_a_key": make_event("customer.updated", {"id": "cus_1", "object": "customer", "metadata": {"k\u0000": "v"}}),
    "unpaired_surrogate": make_event("customer.updated", {"id": "cus_1", "object": "customer", "name": "\ud800"}),
    "data_not_object": _event(data=[1, 2]),
    "previous_attributes_list": _event(data={"object": {"object": "balance"}, "previous_attributes": [1]}),
    "api_version_object": _event(api_version={"v": 1}),
}


@pytest.fixture
async def api(db_url, stripe_settings) -> AsyncIterator[tuple[httpx.AsyncClient, object]]:
    settings = stripe_settings.model_copy(update={"database_url": db_url})
    app = create_app(settings)
    engine = make_engine(db_url)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as http:
            yield http, make_session_factory(engine)
    engine.dispose()


def _body(payload) -> bytes:
    # ensure_ascii keeps \u0000 and lone surrogates as escapes, as a sender would write them
    return json.dumps(payload).encode()


async def _post(http, body: bytes):
    return await http.post(
        "/webhooks/stripe", content=body, headers={"Stripe-Signature": sign(body), "Content-Type": "application/json"}
    )


@pytest.mark.parametrize("name", list(HOSTILE))
async def test_a_signed_payload_the_engine_cannot_read_is_refused_and_nothing_is_recorded(api, name):
    http, sessions = api
    r = await _post(http, _body(HOSTILE[name]))

    assert r.status_code == 400, r.text
    assert "not a Stripe event" in r.json()["detail"]
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(StripeEvent)) == 0

    ok = _event(id=f"evt_after_{name}", created=int(time.time()))
    after = await _post(http, _body(ok))
    assert after.status_code == 200, after.text
    with sessions() as s:
        assert [e.id for e in s.scalars(select(StripeEvent))] == [f"evt_after_{name}"]


async def test_the_longest_id_and_type_stripe_may_send_are_recorded(api):
    http, sessions = api
    long_id = "evt_" + "A1_" * 83 + "x"  # 254 characters
    ev = _event(id=long_id, type="a." + "b" * 98)
    r = await _post(http, _body(ev))
    assert r.status_code == 200, r.text
    with sessions() as s:
        row = s.get(StripeEvent, long_id)
        assert row is not None and row.type == ev["type"]


async def test_json_nested_past_any_parser_limit_is_refused_not_a_500(api):
    http, sessions = api
    body = b'{"id": "evt_deep", "object": "event", "data": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    r = await _post(http, body)
    assert r.status_code in (400, 413), r.text  # 413 when the size limit comes first
    with sessions() as s:
        assert s.get(StripeEvent, "evt_deep") is None
