"""Signed, expiring links for the billing pages (lifecycle/links.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from lifecycle.email.unsubscribe import make_token
from lifecycle.links import BadLink, ExpiredLink, link_url, make_link_token, read_link_token
from starter.dev.localstripe import free_port

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


def test_no_token_reaches_the_access_log_of_a_real_uvicorn_server(sqlite_url: str, tmp_path: Path) -> None:
    """`lifecycle api` (real uvicorn): every request with a token, the access log captured."""
    port = free_port()
    secret = "l" * 40
    env = {**os.environ, "LIFECYCLE_DATABASE_URL": sqlite_url, "LIFECYCLE_LINK_SECRET": secret,
           "LIFECYCLE_UNSUBSCRIBE_SECRET": "u" * 40, "LIFECYCLE_TEMPORAL_ADDRESS": "127.0.0.1:1",
           "LIFECYCLE_SIGNAL_RELAY_INTERVAL_SECONDS": "0", "LIFECYCLE_STRIPE_SWEEP_INTERVAL_SECONDS": "0",
           "LIFECYCLE_USAGE_RESEND_INTERVAL_SECONDS": "0", "LIFECYCLE_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    expires = datetime.now(UTC) + timedelta(days=1)
    tokens = {
        "/billing/card": make_link_token(secret, "card", "cus_1", expires),
        "/billing/reactivate": make_link_token(secret, "reactivate", "cus_1", expires),
        "/unsubscribe": make_token("u" * 40, "cus_1"),
        "/%62illing/card": make_link_token(secret, "card", "cus_2", expires),  # the router decodes it
    }
    log_path = tmp_path / "api.log"
    with log_path.open("wb") as log:
        api = subprocess.Popen([str(Path(sys.prefix) / "bin" / "lifecycle"), "api", "--port", str(port)],
                               env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/docs", timeout=1)
                    break
                except httpx.TransportError:
                    assert api.poll() is None and time.monotonic() < deadline, log_path.read_text()
                    time.sleep(0.2)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
                for path, token in tokens.items():
                    http.get(f"{path}?token={token}")
                    http.post(f"{path}?token={token}&x=1")
                http.get("/docs?probe=kept")  # other paths keep their query strings
            time.sleep(0.5)
        finally:
            api.terminate()
            api.wait(timeout=10)
    lines = [line for line in log_path.read_text().splitlines() if '" ' in line and "HTTP/1.1" in line]
    assert len(lines) >= 2 * len(tokens), log_path.read_text()
    text = log_path.read_text()
    for token in tokens.values():
        assert token not in text and token.split(".")[-1] not in text
    assert 'GET /billing/card?[redacted] HTTP/1.1' in text and 'POST /unsubscribe?[redacted] HTTP/1.1' in text
    assert "GET /docs?probe=kept" in text
