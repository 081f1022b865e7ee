"""Signed, expiring links for the billing pages (lifecycle/links.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lifecycle.links import BadLink, ExpiredLink, link_url, make_link_token, read_link_token

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_a_link_reads_back_its_customer_expiry_and_claims() -> None:
    token = make_link_token("s3cret", "card", "cus-1", NOW + timedelta(days=14), invoice="in_1")
    link = read_link_token("s3cret", "card", token, now=NOW)
    assert (link.customer_id, link.claims) == ("cus-1", {"invoice": "in_1"})
    assert link.expires_at == NOW + timedelta(days=14)


def test_a_link_stops_working_at_its_expiry() -> None:
    token = make_link_token("s3cret", "card", "cus-1", NOW + timedelta(days=1))
    with pytest.raises(ExpiredLink, match="expired on 2026-03-02"):
        read_link_token("s3cret", "card", token, now=NOW + timedelta(days=1))


@pytest.mark.parametrize("case", ["other purpose", "other secret", "tampered", "garbage", "empty"])
def test_a_link_made_for_something_else_or_changed_is_refused(case: str) -> None:
    token = make_link_token("s3cret", "card", "cus-1", NOW + timedelta(days=1))
    body, sig = token.split(".")
    secret, purpose = "s3cret", "card"
    if case == "other purpose":
        purpose = "reactivate"
    elif case == "other secret":
        secret = "another"
    elif case == "tampered":
        other = make_link_token("s3cret", "card", "cus-2", NOW + timedelta(days=1))
        token = f"{other.split('.')[0]}.{sig}"
    elif case == "garbage":
        token = "not a token at all"
    else:
        token = ""
    with pytest.raises(BadLink) as info:
        read_link_token(secret, purpose, token, now=NOW)
    assert not isinstance(info.value, ExpiredLink)


def test_link_url() -> None:
    assert link_url("https://x.test/", "/billing/card", "t.s") == "https://x.test/billing/card?token=t.s"
