"""Typed FastAPI dependencies: settings, database session, Temporal client, API key."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from lifecycle.api_keys import ApiKey
from lifecycle.settings import Settings
from starter.api.auth import forbidden, resolve
from starter.signals.relay import Relay

_bearer = HTTPBearer(auto_error=False, description="An API key from LIFECYCLE_API_KEYS")


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_sessions(request: Request) -> sessionmaker[Session]:
    """The session factory: async routes do their database work in a worker thread with it
    (``run_in_threadpool``), never on the event loop."""
    return request.app.state.session_factory


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.session_factory() as session:
        yield session


def get_temporal(request: Request) -> Client:
    return request.app.state.temporal


def require_api_key(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiKey:
    grants: list[ApiKey] = request.app.state.settings.api_key_grants
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer API key: send 'Authorization: Bearer <key>' with a key from LIFECYCLE_API_KEYS",
            headers={"WWW-Authenticate": "Bearer"},
        )
    # Starlette decodes header bytes as latin-1: encoding back gives the bytes as sent.
    grant = resolve(credentials.credentials.encode("latin-1"), grants)
    if grant is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "unknown API key", headers={"WWW-Authenticate": "Bearer"}
        )
    return grant


def require_scope(scope: str) -> Callable[..., ApiKey]:
    """A router's dependency: the request's key has ``scope``, else 403."""

    def check(grant: Annotated[ApiKey, Depends(require_api_key)]) -> ApiKey:
        if not grant.allows(scope):
            raise HTTPException(status.HTTP_403_FORBIDDEN, forbidden(grant, scope))
        return grant

    return check


def get_relay(request: Request) -> Relay:
    return request.app.state.relay


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
RelayDep = Annotated[Relay, Depends(get_relay)]
SessionDep = Annotated[Session, Depends(get_session)]  # for sync (threadpool) routes only
SessionsDep = Annotated[sessionmaker[Session], Depends(get_sessions)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
ApiKeyDep = Annotated[ApiKey, Depends(require_api_key)]  # who is asking (the audit trail's actor)

