"""Sample data for previews, test sends and the checks: a sample customer and plan, the
standard values, a template's own ``{#- vars -#}`` samples, then its policy steps' samples."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lifecycle.contracts.policy import CampaignPolicy, EmailStep, email_steps

SAMPLE_PLAN: dict[str, Any] = {"code": "starter", "name": "Starter", "price": "$19"}

SAMPLE_CUSTOMER: dict[str, Any] = {
    "id": "cus_sample",
    "name": "Ada Lovelace",
    "first_name": "Ada",
    "email": "ada@example.com",
    "company": "Analytical Engines Ltd",
    "plan": "starter",
    "plan_name": "Starter",
    "timezone": "Europe/London",
    "stage": "trialing",
}


@dataclass
class TemplateUse:
    """The campaign steps that use one template and what they declare."""

    steps: list[tuple[str, EmailStep]] = field(default_factory=list)

    def declared(self) -> set[str] | None:
        """Variables every step using it gives (None: no step uses the template)."""
        if not self.steps:
            return None
        sets = [set(step.vars) for _, step in self.steps]
        return set.intersection(*sets)

    def sample(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for _, step in reversed(self.steps):
            out.update(step.vars)
        return out


def template_uses(policy: CampaignPolicy | None) -> dict[str, TemplateUse]:
    uses: dict[str, TemplateUse] = {}
    for campaign, step in email_steps(policy) if policy is not None else []:
        names = {v.template for v in step.variants} if step.variants else {step.template}
        for name in names:
            uses.setdefault(name, TemplateUse()).steps.append((campaign, step))
    return uses


def sample_vars(
    name: str,
    policy: CampaignPolicy | None,
    *,
    settings_vars: Mapping[str, Any] | None = None,
    declared: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Sample data for ``name``: a sample customer, the standard values, the template's own
    ``{#- vars -#}`` samples (``declared``), then the steps' samples."""
    out: dict[str, Any] = {
        "customer": dict(SAMPLE_CUSTOMER),
        "company_name": "Example Inc.",
        "postal_address": "Example Inc., 1 Main Street, Springfield",
        "sender_postal_address": "Example Inc., 1 Main Street, Springfield",
        "plan": dict(SAMPLE_PLAN),
        "app_url": "https://app.example.com",
        "unsubscribe_url": "https://app.example.com/unsubscribe?token=sample",
        "card_update_url": "https://app.example.com/billing/card?token=sample",
        "category": "marketing",
        "campaign": "sample",
        "step": "sample",
        "is_test": True,
    }
    out.update(settings_vars or {})
    out["sender_postal_address"] = out["postal_address"]
    out.update(declared or {})
    use = template_uses(policy).get(name)
    if use:
        campaign, step = use.steps[0]
        out.update(campaign=campaign, step=step.name, category=step.category)
        out.update(use.sample())
    return out
