"""The checks marketers run (``lifecycle templates check``, and before every publish).

Every problem that would stop a template from reaching a customer correctly: it parses,
extends the layout and fills the required blocks; every variable it uses is standard or
declared; it renders with its sample data; its links are absolute.
"""

from __future__ import annotations

import html.parser
import re
from collections.abc import Iterable
from dataclasses import dataclass

from jinja2 import BaseLoader, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment

from lifecycle.contracts.policy import CampaignPolicy
from lifecycle.email.templates.render import (
    LAYOUT,
    LAYOUT_BLOCKS,
    REQUIRED_BLOCKS,
    STANDARD_VARS,
    SUFFIX,
    TemplateRenderError,
    TemplateSet,
    front_matter,
    make_env,
)
from lifecycle.email.templates.samples import TemplateUse, sample_vars, template_uses


@dataclass
class Problem:
    template: str
    message: str

    def __str__(self) -> str:
        return f"{self.template}: {self.message}"


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for key, value in attrs:
            if key in ("href", "src"):
                self.links.append(value or "")


def relative_links(html_text: str) -> list[str]:
    parser = _Links()
    parser.feed(html_text)
    return [
        link
        for link in parser.links
        if not re.match(r"(https?://[^/\s]+|mailto:|tel:)", link.strip(), re.I)
    ]


def _blocks_and_vars(env: SandboxedEnvironment, source: str) -> tuple[nodes.Template, set[str]]:
    ast = env.parse(source)
    return ast, set(meta.find_undeclared_variables(ast))


def check_templates(
    templates: TemplateSet,
    policy: CampaignPolicy | None,
    *,
    only: Iterable[str] | None = None,
) -> list[Problem]:
    """Every problem that would stop a template from reaching a customer correctly.

    Checks: it parses; it extends the layout and fills the required blocks; every
    variable it uses is standard or declared (``vars``) by every campaign step that uses
    it; it renders in both modes with the sample data; its links are absolute; every
    template a step names exists; the layout has its blocks, footer address and
    unsubscribe link.
    """
    problems: list[Problem] = []
    env = make_env(BaseLoader(), html=False)
    uses = template_uses(policy)

    # the layout
    try:
        layout_ast, layout_vars = _blocks_and_vars(env, templates.source(LAYOUT))
        blocks = {b.name for b in layout_ast.find_all(nodes.Block)}
        for b in LAYOUT_BLOCKS:
            if b not in blocks:
                problems.append(Problem(LAYOUT, f"the layout must have a {{% block {b} %}}"))
        for var in ("unsubscribe_url", "postal_address"):
            if var not in layout_vars:
                problems.append(Problem(LAYOUT, f"the footer must show {{{{ {var} }}}}"))
        for var in sorted(layout_vars - set(STANDARD_VARS)):
            problems.append(Problem(LAYOUT, f"uses {var!r}, which is not a standard variable"))
    except TemplateRenderError as exc:
        problems.append(Problem(LAYOUT, str(exc)))
    except TemplateSyntaxError as exc:
        problems.append(Problem(LAYOUT, f"line {exc.lineno}: {exc.message}"))

    for name in sorted(uses):
        if not templates.exists(name):
            where = ", ".join(f"{c}.{s.name}" for c, s in uses[name].steps)
            problems.append(Problem(name, f"named by {where} but there is no {name}{SUFFIX}"))

    names = templates.names() if only is None else list(only)
    for name in names:
        problems.extend(_check_one(templates, name, uses.get(name, TemplateUse()), policy, env))
    return problems


def _check_one(
    templates: TemplateSet,
    name: str,
    use: TemplateUse,
    policy: CampaignPolicy | None,
    env: SandboxedEnvironment,
) -> list[Problem]:
    out: list[Problem] = []
    try:
        source = templates.source(name)
        ast, used = _blocks_and_vars(env, source)
    except TemplateSyntaxError as exc:
        return [Problem(name, f"line {exc.lineno}: {exc.message}")]
    except TemplateRenderError as exc:
        return [Problem(name, str(exc))]
    extends = [n for n in ast.find_all(nodes.Extends)]
    if not any(isinstance(e.template, nodes.Const) and e.template.value == LAYOUT + SUFFIX for e in extends):
        out.append(Problem(name, f'must start with {{% extends "{LAYOUT}{SUFFIX}" %}}'))
    blocks = {b.name for b in ast.find_all(nodes.Block)}
    for b in REQUIRED_BLOCKS:
        if b not in blocks:
            out.append(Problem(name, f"has no {{% block {b} %}}"))
    try:
        own = front_matter(source)
    except TemplateRenderError as exc:
        return [Problem(name, str(exc))]
    declared = use.declared()
    for var in sorted(used - set(STANDARD_VARS) - set(own)):
        if declared is None:
            out.append(Problem(
                name, f"uses {var!r}, but no campaign step using it declares it "
                "(add it to the step's vars, or to a {#- vars -#} comment in the template)"
            ))
        elif var not in declared:
            missing = [f"{c}.{s.name}" for c, s in use.steps if var not in s.vars]
            out.append(
                Problem(name, f"uses {var!r}, not declared in vars of step(s) {', '.join(missing)}")
            )
    if out:
        return out
    try:
        rendered = templates.render(name, sample_vars(name, policy, declared=own))
    except TemplateRenderError as exc:
        return [Problem(name, f"does not render with its sample data: {exc}")]
    for link in relative_links(rendered.html):
        out.append(Problem(name, f"link {link!r} is not absolute (use https://...)"))
    if len(rendered.subject) > 200:
        out.append(Problem(name, f"subject is {len(rendered.subject)} characters (max 200)"))
    return out
