"""Published versions of the campaign policy and the tier catalog, as they cross Temporal.

``lifecycle policy publish`` (and the worker at start, when the files changed) stores the
policy (``templates/campaigns.toml``) and the catalog (``lifecycle/contracts/catalog.py``)
together as one version with an id; publishing the same content again is the same version.
An entity holds the id of the version it decides on (``CustomerState.policy_version``),
hears a newer one by the ``policy_version`` signal, checks the latest at each
continue-as-new, and loads it through an activity, so its history records what it
decided on and replays the same.

No ``from __future__ import annotations``: these dataclasses cross Temporal.
"""

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from temporalio.converter import value_to_type

from lifecycle.contracts.policy import CampaignPolicy
from lifecycle.contracts.tiers import Tiers

# The entity's signal naming a newly published version (senders name it by this).
POLICY_VERSION_SIGNAL = "policy_version"


@dataclass
class PolicyVersion:
    """One published version: the policy and the tiers an entity decides on."""

    version_id: int
    content_hash: str
    policy: CampaignPolicy
    tiers: Tiers


@dataclass
class PolicyVersionNotice:
    """The ``policy_version`` signal: version ``version_id`` is now the latest."""

    version_id: int


@dataclass
class LatestPolicyQuery:
    """Ask for the latest version; None comes back when it is ``known`` (nothing to load)."""

    known: int | None = None


@dataclass
class PolicyVersionQuery:
    """Load version ``version_id`` (a run continued with its id)."""

    version_id: int


def policy_content(policy: CampaignPolicy, tiers: Tiers) -> dict[str, Any]:
    """The JSON stored for a version (what its hash is taken over)."""
    return {"policy": asdict(policy), "tiers": asdict(tiers)}


def content_hash(content: dict[str, Any]) -> str:
    """sha256 over the canonical JSON of ``content``: the same content, the same version."""
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def version_from_content(version_id: int, digest: str, content: dict[str, Any]) -> PolicyVersion:
    """A stored version as the dataclasses workflow code reads (fields added since get defaults)."""
    return PolicyVersion(
        version_id=version_id,
        content_hash=digest,
        policy=value_to_type(CampaignPolicy, content["policy"], []),
        tiers=value_to_type(Tiers, content["tiers"], []),
    )
