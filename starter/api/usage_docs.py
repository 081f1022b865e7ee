"""The usage routes' request and answer shapes, for the OpenAPI document only.

The routes parse their bodies with orjson and :func:`lifecycle.usage.parsing.parse_event` (the fast
path; see ``starter/api/usage.py``); these models describe exactly what that accepts and
what it answers, and are never used to validate a request.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from lifecycle.contracts import catalog
from lifecycle.usage.parsing import MAX_CUSTOMER_ID_LENGTH, MAX_KEY_LENGTH
from starter.api.errors import Problem, UsageProblem, responses
from starter.api.fields import NO_CONTROLS

Metric = Literal[tuple(catalog.METRICS)]  # type: ignore[valid-type]  # Literal built from the catalog


class UsageEvent(BaseModel):
    customer_id: str = Field(min_length=1, max_length=MAX_CUSTOMER_ID_LENGTH, pattern=NO_CONTROLS)
    metric: Metric  # type: ignore[valid-type]  # Literal built from the catalog
    quantity: float = Field(
        default=1, ge=0, le=1e12, description="non-negative, at most 6 decimal places (default 1)"
    )
    timestamp: str | float | None = Field(
        default=None,
        description="ISO 8601 with a zone (2026-11-25T08:00:00Z) or epoch seconds; default now; "
        "at most LIFECYCLE_USAGE_CLOCK_SKEW_SECONDS in the future or before signup",
    )
    idempotency_key: str = Field(
        min_length=1, max_length=MAX_KEY_LENGTH, pattern=NO_CONTROLS,
        description="unique per customer: a retry with the same key counts once",
    )


class UsageBatch(BaseModel):
    events: list[UsageEvent] = Field(
        min_length=1, description="at most LIFECYCLE_USAGE_MAX_BATCH (1,000) events"
    )


class UsageCheck(BaseModel):
    customer_id: str = Field(min_length=1, max_length=MAX_CUSTOMER_ID_LENGTH, pattern=NO_CONTROLS)
    metric: Metric  # type: ignore[valid-type]  # Literal built from the catalog
    quantity: float = Field(default=1, ge=0, le=1e12)
    timestamp: str | float | None = None
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=MAX_KEY_LENGTH, pattern=NO_CONTROLS,
        description="optional: a retried check with the same key is recorded once",
    )




def request_body(*models: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads its JSON body itself."""
    refs = [{"$ref": f"#/components/schemas/{m.__name__}"} for m in models]
    schema = refs[0] if len(refs) == 1 else {"anyOf": refs}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


class EventResult(BaseModel):
    index: int
    idempotency_key: str | None
    status: Literal["accepted", "duplicate", "rejected"]
    field: str | None = None
    reason: str | None = None


class BatchResult(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    results: list[EventResult]


class CheckAnswer(BaseModel):
    allowed: bool
    reason: str | None
    duplicate: bool
    customer_id: str
    metric: str
    quantity: float
    idempotency_key: str
    used: float
    limit: float | None
    limit_kind: Literal["hard", "soft"] | None
    remaining: float | None
    overage: float
    period_start: str
    period_end: str


class Entitlements(BaseModel):
    customer_id: str
    plan: dict[str, Any] | None  # None: the Stripe price maps to no tier (see unmapped_price)
    unmapped_price: str | None = None
    note: str | None = None
    stage: str
    features: dict[str, bool]
    period: dict[str, str]
    metrics: dict[str, dict[str, Any]]
    next_plan: dict[str, Any] | None
    feature_upgrades: dict[str, dict[str, Any]]


# put in the document's components (the routes' bodies and answers refer to them)
DOC_MODELS = (UsageEvent, UsageBatch, UsageCheck, EventResult, BatchResult, UsageProblem)


def _either(*models: type[BaseModel], description: str) -> dict[str, Any]:
    refs = [{"$ref": f"#/components/schemas/{m.__name__}"} for m in models]
    return {"description": description, "content": {"application/json": {"schema": {"anyOf": refs}}}}


POST_USAGE = {
    "summary": "Record one usage event or a batch",
    "openapi_extra": request_body(UsageEvent, UsageBatch),
    "responses": {
        200: {"description": "a batch (per-event results), or one event already recorded",
              "content": {"application/json": {"schema": {"anyOf": [
                  {"$ref": "#/components/schemas/BatchResult"},
                  {"$ref": "#/components/schemas/EventResult"}]}}}},
        201: {"model": EventResult, "description": "one event, accepted"},
        **responses(400, 401, 404, 413, model=UsageProblem),
        401: {"model": Problem, "description": "no API key, or not one of LIFECYCLE_API_KEYS",
              "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}},
        422: _either(UsageProblem, BatchResult,
                     description="one event rejected (the field and the reason), or a batch whose "
                     "every event was rejected (per-event results)"),
    },
}

CHECK_USAGE = {
    "summary": "Check-and-record one metered request",
    "openapi_extra": request_body(UsageCheck),
    "response_model": CheckAnswer,
    "responses": {
        **responses(400, 404, 413, 422, model=UsageProblem),
        401: {"model": Problem, "description": "no API key, or not one of LIFECYCLE_API_KEYS",
              "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}},
    },
}

ENTITLEMENTS = {
    "summary": "Plan, features, limits and usage",
    "response_model": Entitlements,
    "responses": {
        404: {"model": UsageProblem, "description": "unknown customer"},
        **responses(401),
    },
}
