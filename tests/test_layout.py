"""The rooms keep their doors: what workflow code may import, and that the kernel never
imports the roles above it.

Workflow code runs in Temporal's sandbox and replays: it may import only what crosses
Temporal (``lifecycle.contracts``), other workflow modules, activity classes (for typed
activity references, inside ``imports_passed_through``), ``temporalio`` and the standard
library; never the services, the database, the settings or the starter.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW_MODULES = sorted((ROOT / "workflows").rglob("*.py"))
KERNEL_MODULES = sorted((ROOT / "lifecycle").rglob("*.py"))
ALLOWED_IN_WORKFLOWS = ("lifecycle.contracts", "workflows", "activities", "temporalio")


def _imports(path: Path, source: str | None = None) -> list[tuple[int, str]]:
    """Every module ``path`` imports (absolute names; relative imports resolved)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found: list[tuple[int, str]] = []
    text = path.read_text() if source is None else source
    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.append((node.lineno, ".".join([*base, *([node.module] if node.module else [])])))
            else:
                assert node.module is not None
                found.append((node.lineno, node.module))
    return found


def _within(name: str, roots: tuple[str, ...]) -> bool:
    return any(name == r or name.startswith(r + ".") for r in roots)


def _stdlib(name: str) -> bool:
    return name.split(".")[0] in sys.stdlib_module_names or name == "__future__"


@pytest.mark.parametrize("path", WORKFLOW_MODULES, ids=lambda p: p.name)
def test_workflow_code_imports_only_contracts_workflows_activities_temporalio_and_stdlib(path: Path) -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for line, name in _imports(path)
        if not (_within(name, ALLOWED_IN_WORKFLOWS) or _stdlib(name))
    ]
    assert bad == []


@pytest.mark.parametrize("path", KERNEL_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_kernel_never_imports_workflows_activities_or_the_starter(path: Path) -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for line, name in _imports(path)
        if _within(name, ("workflows", "activities", "starter"))
    ]
    assert bad == []


def test_the_rule_catches_what_it_forbids() -> None:
    """The checker itself: a forbidden import is found, an allowed one is not."""
    names = [n for _, n in _imports(
        ROOT / "workflows" / "probe.py",
        "import json\nfrom temporalio import workflow\nfrom lifecycle.contracts.ids import x\n"
        "from lifecycle.billing.service import y\nfrom starter.signals.send import z\nfrom . import patches\n",
    )]
    forbidden = [n for n in names if not (_within(n, ALLOWED_IN_WORKFLOWS) or _stdlib(n))]
    assert forbidden == ["lifecycle.billing.service", "starter.signals.send"]
    assert "workflows" in names  # the relative import resolved to the package


def test_every_patch_id_is_a_constant_of_workflows_patches() -> None:
    """``workflow.patched(...)`` takes a name from workflows/patches.py, never a literal."""
    from workflows import patches

    ids = {v for k, v in vars(patches).items() if k.isupper() and isinstance(v, str)}
    assert len(ids) == len([k for k in vars(patches) if k.isupper()])  # one constant per id
    for path in WORKFLOW_MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("patched", "deprecate_patch")
            ):
                arg = node.args[0]
                assert isinstance(arg, ast.Attribute) and isinstance(arg.value, ast.Name), (
                    f"{path.name}:{node.lineno}: patch id not from workflows.patches"
                )
                assert arg.value.id == "patches" and getattr(patches, arg.attr) in ids
