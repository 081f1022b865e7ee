"""Payment recovery for ops and finance: mark an invoice paid out of band, and the dunning report.

``POST /v1/invoices/{id}/mark-paid {reason}`` (scope ``ops``; ``Idempotency-Key``: a retry
acts once): pays the invoice in Stripe out of band (``lifecycle.billing.manual``), records
who (the API key's name) and why in the audit trail (intent before, outcome after), and
ends a running dunning like any payment. ``GET /v1/dunning/report?since=``: what finance reads
(``lifecycle.billing.dunning_report``). Database and Stripe work run in worker threads;
no transaction is open while Stripe or Temporal is called.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import stripe
from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from lifecycle.billing.client import StripeNotConfigured, make_stripe_client
from lifecycle.billing.dunning_report import report
from lifecycle.billing.manual import MarkPaidRefused, api_actor, mark_paid
from starter.api.deps import ApiKeyDep, RelayDep, SessionsDep, SettingsDep
from starter.api.errors import responses
from starter.api.idempotent import IdempotencyKeyHeader, once

router = APIRouter(tags=["dunning"])  # scope billing
ops_router = APIRouter(tags=["dunning"])  # scope ops: moves money by hand

InvoiceIdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$")]


class MarkPaidBody(BaseModel):
    reason: str = Field(min_length=1, max_length=2000, description="why: e.g. 'bank transfer received 2026-12-01'")


class MarkPaidView(BaseModel):
    invoice_id: str
    customer_id: str | None
    amount_cents: int
    actor: str
    reason: str
    stripe_updated: bool = Field(description="false against localstripe: the mirror only (no paid_out_of_band there)")
    delivered: bool = Field(description="the customer's workflow heard it (false: queued, the relay sends it)")


@ops_router.post(
    "/v1/invoices/{invoice_id}/mark-paid", response_model=MarkPaidView,
    responses=responses(400, 401, 403, 404, 409, 413, 422, 502, 503),
)
async def post_mark_paid(
    invoice_id: InvoiceIdPath, body: MarkPaidBody, sessions: SessionsDep, settings: SettingsDep,
    relay: RelayDep, api_key: ApiKeyDep, idempotency_key: IdempotencyKeyHeader = None,
) -> MarkPaidView | JSONResponse:
    """Mark an invoice paid out of band; refused with the reason when it is unknown, paid or void.
    Needs the ``ops`` scope; in the audit trail (intent, then outcome)."""
    try:
        client = make_stripe_client(settings)
    except StripeNotConfigured as exc:
        raise HTTPException(503, str(exc)) from None
    actor = api_actor(api_key.name)

    async def act() -> MarkPaidView:
        try:
            done = await run_in_threadpool(
                mark_paid, client, sessions, invoice_id, actor=actor, reason=body.reason,
                localstripe_compat=settings.stripe_localstripe_compat,
            )
        except MarkPaidRefused as exc:
            raise HTTPException(exc.status, exc.reason) from None
        except stripe.StripeError as exc:
            raise HTTPException(502, f"Stripe refused: {exc.user_message or exc}") from None
        delivered = await relay.deliver_customer(done.customer_id) if done.customer_id else False
        return MarkPaidView(
            invoice_id=done.invoice_id, customer_id=done.customer_id, amount_cents=done.amount_cents,
            actor=done.actor, reason=done.reason, stripe_updated=done.stripe_updated, delivered=delivered,
        )

    return await once(sessions, f"mark-paid:{invoice_id}", idempotency_key, actor, act)


@router.get("/v1/dunning/report", responses=responses(401, 422))
async def get_report(
    sessions: SessionsDep,
    since: Annotated[dt.datetime | None, Query(description="failed on or after (ISO 8601)")] = None,
) -> dict[str, Any]:
    """Failed, recovered (by path), open, lost; recovery rate; median days to recover; by decline code."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)

    def load() -> dict[str, Any]:
        with sessions() as session:
            return report(session, since=since)

    return await run_in_threadpool(load)
