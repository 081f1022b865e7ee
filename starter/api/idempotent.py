"""The ``Idempotency-Key`` header on the ops routes that move money (``lifecycle.idempotency``):
a retry with the same key gets the first answer and acts nothing; a duplicate while the
first still acts is a 409."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import Header, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from lifecycle.idempotency import HEADER, claim, finish

IdempotencyKeyHeader = Annotated[str | None, Header(
    alias=HEADER, min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$",
    description="your key for this call: a retry with the same key acts once and gets the first answer "
    "(409 while the first call is still acting)",
)]

M = TypeVar("M", bound=BaseModel)


async def once(
    sessions: sessionmaker[Session], route: str, key: str | None, actor: str, act: Callable[[], Awaitable[M]]
) -> M | JSONResponse:
    """``act()`` once per (route, key); without a key, every call acts."""
    if key is None:
        return await act()
    claimed = await run_in_threadpool(claim, sessions, route, key, actor)
    if claimed.in_progress:
        raise HTTPException(409, f"a call with this {HEADER} is still in progress; retry in a moment",
                            headers={"Retry-After": "2"})
    if not claimed.acts:
        return JSONResponse(claimed.answer, status_code=claimed.status_code or 200)
    try:
        result = await act()
    except HTTPException as exc:
        await run_in_threadpool(finish, sessions, route, key, exc.status_code, {"detail": exc.detail})
        raise
    except BaseException:
        await run_in_threadpool(finish, sessions, route, key, 500, {})  # released: the retry acts
        raise
    await run_in_threadpool(finish, sessions, route, key, 200, result.model_dump(mode="json"))
    return result
