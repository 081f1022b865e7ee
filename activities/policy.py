"""Policy versions for the entity: the latest published one, or one by id.

The entity decides on what these return (recorded in its history, so replay reads the
same); ``lifecycle/policy/versions.py`` stores them.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from lifecycle.contracts.policy_versions import LatestPolicyQuery, PolicyVersion, PolicyVersionQuery
from lifecycle.policy import versions


class PolicyActivities:
    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._sessions = session_factory

    def _latest(self, query: LatestPolicyQuery) -> PolicyVersion | None:
        with self._sessions() as session:
            found = versions.latest(session)
        if found is None or found.version_id == query.known:
            return None
        return found

    @activity.defn(name="policy_latest")
    async def latest(self, query: LatestPolicyQuery) -> PolicyVersion | None:
        """The latest published version, or None when it is ``query.known`` or none is published."""
        return await asyncio.to_thread(self._latest, query)

    def _get(self, query: PolicyVersionQuery) -> PolicyVersion:
        with self._sessions() as session:
            found = versions.get(session, query.version_id)
        if found is None:  # a version is never deleted: a database that lost it is an ops problem
            raise ApplicationError(f"policy version {query.version_id} is not in the database")
        return found

    @activity.defn(name="policy_version")
    async def version(self, query: PolicyVersionQuery) -> PolicyVersion:
        """Version ``query.version_id`` (a run continued with its id loads it first)."""
        return await asyncio.to_thread(self._get, query)
