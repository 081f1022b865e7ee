"""The error shapes the API answers with, the ``responses=`` tables that document them, and
the handlers that keep every error body encodable.

Two shapes, documented as they are:

* ``{"detail": "…"}`` (:class:`Problem`): every route's refusals (401, 402, 404, 409, 413,
  502, 503, …), FastAPI's ``HTTPException``; a 422 from request validation is FastAPI's
  ``{"detail": [{"loc": […], "msg": "…", "type": "…"}]}`` (``HTTPValidationError``), whose
  ``loc`` names the field.
* ``{"detail": {"field": "…", "reason": "…"}}`` (:class:`UsageProblem`): the usage routes,
  which parse their bodies themselves for speed.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from lifecycle.text import json_safe


class Problem(BaseModel):
    detail: str = Field(description="what was wrong, for a person to read")


class UsageProblemDetail(BaseModel):
    field: str = Field(description="the field at fault (body, events, customer_id, metric, quantity, …)")
    reason: str
    idempotency_key: str | None = Field(default=None, description="the rejected event's key, when it had one")


class UsageProblem(BaseModel):
    detail: UsageProblemDetail


class WebhookAck(BaseModel):
    received: bool
    duplicate: bool
    id: str


class Received(BaseModel):
    received: int


_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "string"}}}
_WWW_AUTH = {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}}

_DESCRIPTIONS = {
    400: "malformed request (body not JSON, bad signature, bad token)",
    401: "no API key, or not one of LIFECYCLE_API_KEYS (checked before the body is read)",
    402: "no payment method on file",
    403: "signature does not match the body; on /v1: the API key lacks the route's scope",
    404: "unknown customer (or nothing of that kind for the customer)",
    409: "the request does not fit the current state",
    413: "body larger than this route's limit (refused while reading, before parsing)",
    422: "invalid value; the answer names the field",
    502: "Stripe refused or failed the request",
    503: "a dependency (Temporal, Stripe, configuration) is unavailable; nothing was recorded",
}


def responses(*codes: int, model: type[BaseModel] = Problem, **overrides: Any) -> dict[int | str, Any]:
    """A ``responses=`` table for a route decorator: each code with its shape and meaning.

    422 is left to FastAPI (``HTTPValidationError``) unless ``model`` or an override says
    otherwise; ``overrides`` maps ``"422"``-style strings or ints to a full entry."""
    table: dict[int | str, Any] = {}
    for code in codes:
        if code == 422 and model is Problem:
            continue  # FastAPI documents its own validation error for routes with parameters
        entry: dict[str, Any] = {"model": model, "description": _DESCRIPTIONS.get(code, "error")}
        if code == 401:
            entry["headers"] = _WWW_AUTH
        if code == 503:
            entry["headers"] = _RETRY_AFTER
        table[code] = entry
    for key, entry in overrides.items():
        table[int(key.lstrip("_")) if isinstance(key, str) else key] = entry
    return table


def json_responses(*codes: int) -> dict[int | str, Any]:
    """The same table for a route whose success is not JSON (an HTML page): its errors are."""
    table = responses(*codes)
    for entry in table.values():
        entry.pop("model", None)
        entry["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    return table


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, except that what is echoed back always encodes (a lone surrogate
    in the input used to turn the 422 into a 500)."""
    assert isinstance(exc, RequestValidationError)
    errors = json_safe(jsonable_encoder(exc.errors()))
    return JSONResponse({"detail": errors}, status_code=422)


def install(app: FastAPI, *, extra_models: tuple[type[BaseModel], ...] = ()) -> None:
    """The validation handler, and ``extra_models`` (request bodies the routes read
    themselves) added to the document's components so ``openapi_extra`` can refer to them."""
    app.add_exception_handler(RequestValidationError, _validation_error)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes,
        )
        if extra_models:
            _, defs = models_json_schema(
                [(m, "validation") for m in extra_models], ref_template="#/components/schemas/{model}"
            )
            doc.setdefault("components", {}).setdefault("schemas", {}).update(defs.get("$defs", {}))
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
