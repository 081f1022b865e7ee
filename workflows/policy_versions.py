"""The entity's side of policy versions: which published version it decides on, and loading it.

The entity (``customer-{id}``) holds the id of a published version
(``state.policy_version``; lifecycle/contracts/policy_versions.py). It loads the latest
when a ``policy_version`` signal says one was published and at each continue-as-new; the
next run gets only the id and loads that version first. Loading is an activity, so the
history records what the entity decided on and replays the same. An entity of the
previous release (the whole policy in its input, no id) converts the same way.
"""

from __future__ import annotations

from collections.abc import Callable

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.policy import PolicyActivities
    from lifecycle.contracts.customer import CustomerState
    from lifecycle.contracts.policy_versions import (
        LatestPolicyQuery,
        PolicyVersion,
        PolicyVersionNotice,
        PolicyVersionQuery,
    )
    from workflows.options import STORE_RETRY, STORE_TIMEOUT
    from workflows.timeline import record_event


class PolicyVersions:
    """``adopt`` makes the entity decide on a version from then on (its parts follow)."""

    def __init__(self, state: CustomerState, *, carried: bool, adopt: Callable[[PolicyVersion], None]) -> None:
        self._state = state
        self._adopt = adopt
        # the policy is in hand: carried by the input, or nothing to load (no version id)
        self.loaded = carried or state.policy_version is None
        self.heard: int | None = None  # a version announced by signal, not looked at yet

    def on_signal(self, notice: PolicyVersionNotice) -> None:
        if notice.version_id != self._state.policy_version:
            self.heard = notice.version_id

    async def until_loaded(self) -> None:
        if not self.loaded:  # only in a run continued with a version id, until it is loaded
            await workflow.wait_condition(lambda: self.loaded)

    async def load(self) -> None:
        """The version this run was continued with (its id in the state)."""
        assert self._state.policy_version is not None
        version: PolicyVersion = await workflow.execute_activity_method(
            PolicyActivities.version, PolicyVersionQuery(self._state.policy_version),
            start_to_close_timeout=STORE_TIMEOUT, retry_policy=STORE_RETRY,
        )
        self._adopt(version)
        self.loaded = True

    async def check_latest(self) -> None:
        """Load the latest published version if it is not the one held (and say so on the timeline)."""
        self.heard = None
        latest: PolicyVersion | None = await workflow.execute_activity_method(
            PolicyActivities.latest, LatestPolicyQuery(known=self._state.policy_version),
            start_to_close_timeout=STORE_TIMEOUT, retry_policy=STORE_RETRY,
        )
        if latest is None:
            return
        previous = self._state.policy_version
        self._adopt(latest)
        await record_event(
            self._state.customer_id, key=f"{workflow.info().workflow_id}:policy:{latest.version_id}",
            kind="policy_version", detail={"version": latest.version_id, "previous": previous},
        )
