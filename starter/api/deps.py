"""Typed FastAPI dependencies: settings, database session, Temporal client, API key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from lifecycle.settings import Settings
from starter.api.auth import key_matches
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
) -> str:
    keys: list[str] = request.app.state.settings.api_keys
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer API key: send 'Authorization: Bearer <key>' with a key from LIFECYCLE_API_KEYS",
            headers={"WWW-Authenticate": "Bearer"},
        )
    # Starlette decodes header bytes as latin-1: encoding back gives the bytes as sent.
    if not key_matches(credentials.credentials.encode("latin-1"), keys):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "unknown API key", headers={"WWW-Authenticate": "Bearer"}
        )
    return credentials.credentials


def get_relay(request: Request) -> Relay:
    return request.app.state.relay


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
RelayDep = Annotated[Relay, Depends(get_relay)]
SessionDep = Annotated[Session, Depends(get_session)]  # for sync (threadpool) routes only
SessionsDep = Annotated[sessionmaker[Session], Depends(get_sessions)]
TemporalDep = Annotated[Client, Depends(get_temporal)]

