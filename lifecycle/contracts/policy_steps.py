"""The building blocks of every policy section: an email step (with its A/B variants), the
error that names a bad key, and the small parsers the sections share.

No ``from __future__ import annotations``: these dataclasses cross Temporal.
"""

from dataclasses import dataclass, field
from typing import Any

CATEGORIES = ("marketing", "transactional")


class PolicyError(ValueError):
    """The policy file is malformed; the message names the key and the file."""


@dataclass
class EmailVariant:
    """One arm of an A/B test: a template and its share (weights are relative)."""

    name: str
    template: str
    weight: float = 1.0


@dataclass
class EmailStep:
    """One email of a campaign."""

    name: str
    template: str
    day: float = 0.0  # days after the campaign starts (onboarding, win-back, ...)
    days_before_end: float = 0.0  # days before the trial ends (trial reminders)
    skip_if: str | None = None  # activation fact that makes this step pointless
    category: str = "marketing"  # marketing (caps, quiet hours, unsubscribe) | transactional
    # The campaign variables this step gives its template, with sample values for previews
    # (`lifecycle templates check` fails a template that uses a variable its steps don't give).
    vars: dict[str, Any] = field(default_factory=dict)
    # A/B test: variants replace `template` (assigned per customer by hash); `holdout` is the
    # share of customers who get no email at all, so lift can be measured.
    variants: list[EmailVariant] = field(default_factory=list)
    holdout: float = 0.0


def _variants(raw: Any, where: str) -> list[EmailVariant]:
    if not isinstance(raw, list):
        raise PolicyError(f"{where}: expected a list of {{name, template, weight}}")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise PolicyError(f"{where}[{i}]: expected a table with name, template, weight")
        unknown = set(item) - {"name", "template", "weight"}
        if unknown:
            raise PolicyError(f"{where}[{i}]: unknown key(s) {sorted(unknown)}")
        for key in ("name", "template"):
            if not isinstance(item.get(key), str) or not item[key]:
                raise PolicyError(f"{where}[{i}].{key}: required text")
        weight = item.get("weight", 1.0)
        if not isinstance(weight, int | float) or weight <= 0:
            raise PolicyError(f"{where}[{i}].weight: must be a positive number")
        if item["name"] == "holdout":
            raise PolicyError(f"{where}[{i}].name: 'holdout' is reserved for the holdout group")
        out.append(EmailVariant(name=item["name"], template=item["template"], weight=float(weight)))
    names = [v.name for v in out]
    if len(names) != len(set(names)):
        raise PolicyError(f"{where}: variant names must be unique, got {names}")
    return out


def parse_steps(raw: list[dict[str, Any]], where: str) -> list[EmailStep]:
    steps = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise PolicyError(f"{where}[{i}]: expected a table with name and template")
        unknown = set(item) - {f for f in EmailStep.__dataclass_fields__}
        if unknown:
            raise PolicyError(f"{where}[{i}]: unknown key(s) {sorted(unknown)}")
        for key in ("name", "template"):
            if not isinstance(item.get(key), str) or not item[key]:
                raise PolicyError(f"{where}[{i}].{key}: required text")
        item = dict(item)
        variants_raw = item.pop("variants", [])
        if not isinstance(item.get("vars", {}), dict):
            raise PolicyError(f"{where}[{i}].vars: expected a table of variable = sample value")
        step = EmailStep(**item, variants=_variants(variants_raw, f"{where}[{i}].variants"))
        if step.category not in CATEGORIES:
            raise PolicyError(f"{where}[{i}].category: expected one of {CATEGORIES}")
        if not 0 <= step.holdout < 1:
            raise PolicyError(f"{where}[{i}].holdout: expected a share from 0 up to (not incl.) 1")
        if step.holdout and step.category != "marketing":
            raise PolicyError(f"{where}[{i}].holdout: only marketing steps may hold customers out")
        if step.day < 0 or step.days_before_end < 0:
            raise PolicyError(f"{where}[{i}]: day and days_before_end must not be negative")
        steps.append(step)
    names = [s.name for s in steps]
    if len(names) != len(set(names)):
        raise PolicyError(f"{where}: step names must be unique, got {names}")
    return steps


def parse_one_step(raw: Any, where: str) -> EmailStep | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: expected a table with name and template")
    try:
        return parse_steps([raw], where)[0]
    except PolicyError as exc:  # one table, not a list: name its keys as written
        raise PolicyError(str(exc).replace(f"{where}[0]", where)) from None


def table(raw: Any, where: str, known: set[str] | frozenset[str]) -> dict[str, Any]:
    """A policy section: a table holding only ``known`` keys (else the refusal names them)."""
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: expected a table")
    if unknown := set(raw) - known:
        raise PolicyError(f"{where}: unknown key(s) {sorted(unknown)}; expected {sorted(known)}")
    return raw


def stage_list(raw: Any, where: str) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        raise PolicyError(f"{where}: expected a list of names")
    return list(raw)


def number(raw: dict[str, Any], key: str, default: float, where: str, *, minimum: float = 0) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise PolicyError(f"{where}.{key}: expected a number of at least {minimum:g}, got {value!r}")
    return float(value)
