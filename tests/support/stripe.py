"""Shared helpers for the Stripe tests.

- ``signed_event``: the one place that builds and signs the events localstripe never
  sends (``customer.subscription.updated``, ``invoice.payment_failed``, ``invoice.paid``,
  ...). The object inside is always a real object fetched from localstripe; the
  signature uses Stripe's scheme (``t=<ts>,v1=HMAC-SHA256(secret, "<ts>.<body>")``).
- ``RecordingStripe``: a local HTTP server in front of localstripe that records every
  request exactly as the SDK sent it (path, form body, Idempotency-Key) and forwards it
  with the parameters localstripe cannot take removed (proration_behavior, discounts).
  It stands in for Stripe where the API call itself is missing from localstripe; with
  ``keeps`` it also holds fields localstripe has no room for (a subscription's
  ``default_payment_method``): written through it, shown on the object as Stripe would.
- customers with a card, subscribers, and Stripe activities pointed at another server.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import stripe
from sqlalchemy.orm import Session, sessionmaker

from activities.stripe import StripeActivities
from lifecycle.billing.client import make_stripe_client
from lifecycle.billing.shapes import to_plain
from lifecycle.contracts.billing import (
    EnsureCustomerInput,
    StartSubscriptionInput,
    SubscriptionResult,
)
from lifecycle.contracts.customer import CustomerEvent
from lifecycle.settings import STRIPE_API_VERSION, Settings
from starter.signals.send import signal_customer, start_input
from tests.support.helpers import add_customer

GOOD_CARD = "4242424242424242"
FAILING_CARD = "4000000000000341"  # attaches, then every charge is declined
WEBHOOK_SECRET = "whsec_test_lifecycle"


def make_event(
    type: str,
    obj: Any,
    *,
    created: int | None = None,
    event_id: str | None = None,
    previous_attributes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An event as Stripe sends it, around a real object (a StripeObject or a dict)."""
    data: dict[str, Any] = {"object": to_plain(obj)}
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    return {
        "id": event_id or f"evt_test_{uuid.uuid4().hex[:20]}",
        "object": "event",
        "api_version": STRIPE_API_VERSION,
        "created": created if created is not None else int(time.time()),
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": type,
        "data": data,
    }


def sign(body: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def signed_event(
    type: str, obj: Any, *, secret: str = WEBHOOK_SECRET, sign_at: int | None = None, **kw: Any
) -> tuple[dict[str, Any], bytes, dict[str, str]]:
    """(event, raw body, headers) ready to POST to /webhooks/stripe."""
    event = make_event(type, obj, **kw)
    body = json.dumps(event, indent=2).encode()
    return event, body, {"Stripe-Signature": sign(body, secret, sign_at), "Content-Type": "application/json"}


def add_card(client: stripe.StripeClient, stripe_customer_id: str, number: str = GOOD_CARD, default: bool = True) -> str:
    pm = client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}}
    )
    client.v1.payment_methods.attach(pm.id, params={"customer": stripe_customer_id})
    if default:
        client.v1.customers.update(
            stripe_customer_id, params={"invoice_settings": {"default_payment_method": pm.id}}
        )
    return pm.id


def charges(client: stripe.StripeClient, stripe_customer_id: str) -> int:
    """Charge attempts in Stripe for one customer (localstripe makes a payment intent per pay).

    localstripe's list has no customer filter and returns its store oldest first, so every
    page is read: with the first 100 only, a customer made late in a long run has none."""
    pis = client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()
    return sum(1 for p in pis if p.customer == stripe_customer_id)


async def customer_with_card(
    session_factory: sessionmaker[Session],
    acts: StripeActivities,
    client: stripe.StripeClient,
    *,
    card: str = GOOD_CARD,
    prefix: str = "cus",
) -> tuple[str, str]:
    """(our id, Stripe's id) of a new customer whose Stripe customer has ``card`` as default."""
    cid = new_customer_id(prefix)
    add_customer(session_factory, cid)
    cus = await acts.ensure_customer(EnsureCustomerInput(cid, f"{cid}:customer"))
    add_card(client, cus.stripe_customer_id, card)
    return cid, cus.stripe_customer_id


async def subscribed(
    session_factory: sessionmaker[Session],
    acts: StripeActivities,
    client: stripe.StripeClient,
    plan: str = "professional",
    interval: str = "month",
) -> tuple[str, SubscriptionResult]:
    """A new customer with a good card, subscribed through the activity."""
    cid, _ = await customer_with_card(session_factory, acts, client)
    return cid, await acts.start_subscription(StartSubscriptionInput(cid, plan, f"{cid}:subscribe", interval))


async def signed_up(temporal: Any, settings: Settings, session_factory: sessionmaker[Session], cid: str) -> None:
    """The customer's row, and its workflow started by a signup (trial on the starter tier)."""
    add_customer(session_factory, cid)
    await signal_customer(
        temporal, cid, CustomerEvent(f"signup:{cid}", "signup"),
        start=start_input(settings, cid, "starter"), task_queue=settings.task_queue,
    )


def activities_at(settings: Settings, session_factory: sessionmaker[Session], api_base: str) -> StripeActivities:
    """The Stripe activities talking to another server (the recording proxy, a dead port)."""
    return StripeActivities(
        make_stripe_client(settings.model_copy(update={"stripe_api_base": api_base})), session_factory
    )


# --- a recording server in front of localstripe ------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    form: dict[str, str]
    idempotency_key: str | None
    stripe_version: str | None


@dataclass
class RecordingStripe:
    """Records requests and forwards them to localstripe minus the params it cannot take."""

    upstream: str
    strip: tuple[str, ...] = ("proration_behavior", "discounts")
    fail_with: dict[str, int] = field(default_factory=dict)  # path prefix -> status to answer
    # path prefix -> the JSON object to answer with 200 (an API localstripe lacks, e.g. the portal)
    answer_with: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    # fields localstripe lacks, kept here: set by a POST to /v1/<objects>/<id>, merged into
    # every answer holding that object (itself, or in a list)
    keeps: tuple[str, ...] = ()
    kept: dict[str, dict[str, str]] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None

    def _keep(self, path: str, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Hold the ``keeps`` fields of an update; the pairs left for localstripe."""
        if path.count("/") != 3 or not self.keeps:
            return pairs
        object_id = path.rsplit("/", 1)[1]
        for k, v in pairs:
            if k in self.keeps:
                self.kept.setdefault(object_id, {})[k] = v
        return [(k, v) for k, v in pairs if k not in self.keeps]

    def _merge(self, body: bytes) -> bytes:
        if not self.kept:
            return body
        try:
            obj = json.loads(body)
        except ValueError:
            return body
        if not isinstance(obj, dict):
            return body
        for item in [obj, *(obj.get("data") or [] if isinstance(obj.get("data"), list) else [])]:
            if isinstance(item, dict) and item.get("id") in self.kept:
                item.update(self.kept[item["id"]])
        return json.dumps(obj).encode()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> RecordingStripe:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                pairs = parse_qsl(raw.decode(), keep_blank_values=True)
                path, _, query = self.path.partition("?")
                outer.requests.append(
                    Recorded(
                        self.command,
                        path,
                        dict(pairs),
                        self.headers.get("Idempotency-Key"),
                        self.headers.get("Stripe-Version"),
                    )
                )
                for prefix, code in outer.fail_with.items():
                    if path.startswith(prefix):
                        body = json.dumps({"error": {"message": f"injected {code}", "type": "api_error"}})
                        self._reply(code, body.encode(), "application/json")
                        return
                for prefix, answer in outer.answer_with.items():
                    if path.startswith(prefix):
                        self._reply(200, json.dumps(answer).encode(), "application/json")
                        return
                kept = [(k, v) for k, v in pairs if not k.startswith(outer.strip)]
                if self.command == "POST":
                    kept = outer._keep(path, kept)
                method = self.command
                if method == "POST" and pairs and not kept and path.count("/") == 3:
                    method = "GET"  # nothing left for localstripe to apply: answer the object as is
                with httpx.Client(timeout=30) as http:
                    r = http.request(
                        method,
                        outer.upstream + self.path,
                        content=urlencode(kept) if method == "POST" else None,
                        headers={
                            "Authorization": self.headers.get("Authorization", ""),
                            "Content-Type": "application/x-www-form-urlencoded",
                        },
                    )
                body = outer._merge(r.content) if r.status_code == 200 else r.content
                self._reply(r.status_code, body, r.headers.get("content-type", "application/json"))

            def _reply(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_DELETE = _handle  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def posts(self, path_prefix: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path.startswith(path_prefix)]


def new_customer_id(prefix: str = "cus") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"

