"""/v1/webhook-endpoints: the product registers where it hears lifecycle events.

``POST`` answers the endpoint with its signing secret (``whsec_…``), once; ``GET`` lists
the endpoints (without secrets), disabled ones with when and why; ``DELETE`` stops
deliveries to one. A URL that is not http(s) (https outside development), points at the
engine itself or at an address inside the network (loopback, private, link-local, ...:
``lifecycle.webhooks.addresses``) is a 422 naming ``url``; an unknown event type a 422 naming ``events``. Database work runs in a
worker thread.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from lifecycle.contracts.webhooks import WEBHOOK_EVENT_TYPES
from lifecycle.db import session_scope
from lifecycle.models import WebhookEndpoint
from lifecycle.webhooks.addresses import without_userinfo
from lifecycle.webhooks.endpoints import (
    BadEndpoint,
    add_endpoint,
    list_endpoints,
    remove_endpoint,
    url_rules,
)
from starter.api.deps import SessionsDep, SettingsDep
from starter.api.errors import responses
from starter.api.fields import Text

router = APIRouter(prefix="/v1/webhook-endpoints", tags=["webhooks"])

EndpointId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^whe_[0-9a-f]{1,28}$")]


class EndpointBody(BaseModel):
    url: Text(2000, min_length=1) = Field(description="the product's receiver, http:// or https://")  # type: ignore[valid-type]
    events: list[Text(64)] = Field(  # type: ignore[valid-type]
        min_length=1, max_length=len(WEBHOOK_EVENT_TYPES) * 2,
        description="event types to receive: " + ", ".join(WEBHOOK_EVENT_TYPES),
    )
    description: Text(200) = ""  # type: ignore[valid-type]


class EndpointView(BaseModel):
    id: str
    url: str
    events: list[str]
    description: str
    created_at: datetime
    enabled: bool
    disabled_at: datetime | None
    disabled_reason: str | None


class NewEndpointView(EndpointView):
    secret: str = Field(description="the signing secret (Standard Webhooks, whsec_…): shown this once")
    warnings: list[str] = Field(default_factory=list, description="e.g. a name that does not resolve "
                                "from the engine now (each delivery resolves and checks it again)")


def view(e: WebhookEndpoint) -> EndpointView:
    return EndpointView(
        id=e.id, url=e.url, events=list(e.events), description=e.description, created_at=e.created_at,
        enabled=e.disabled_at is None, disabled_at=e.disabled_at, disabled_reason=e.disabled_reason,
    )


@router.get("", response_model=list[EndpointView], responses=responses(401))
async def list_webhook_endpoints(sessions: SessionsDep) -> list[EndpointView]:
    def load() -> list[EndpointView]:
        with sessions() as session:
            return [view(e) for e in list_endpoints(session)]

    return await run_in_threadpool(load)


@router.post("", response_model=NewEndpointView, status_code=status.HTTP_201_CREATED,
             responses=responses(400, 401, 413, 422))
async def add_webhook_endpoint(body: EndpointBody, sessions: SessionsDep, settings: SettingsDep) -> NewEndpointView:
    def add() -> NewEndpointView:
        with session_scope(sessions) as session:
            new = add_endpoint(session, body.url, body.events, engine_url=settings.public_url,
                               description=body.description, **url_rules(settings))
            return NewEndpointView(**view(new.endpoint).model_dump(), secret=new.secret, warnings=new.warnings)

    try:
        return await run_in_threadpool(add)
    except BadEndpoint as err:
        raise RequestValidationError(
            [{"loc": ("body", err.field), "msg": err.reason, "type": "value_error",
              "input": without_userinfo(body.url) if err.field == "url" else getattr(body, err.field)}]
        ) from None


@router.delete("/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(401, 404, 422))
async def remove_webhook_endpoint(endpoint_id: EndpointId, sessions: SessionsDep) -> Response:
    def remove() -> bool:
        with session_scope(sessions) as session:
            return remove_endpoint(session, endpoint_id)

    if not await run_in_threadpool(remove):
        raise HTTPException(404, f"unknown webhook endpoint {endpoint_id!r}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
