"""Email templates: sandboxed Jinja2 rendering, the checks marketers run, published versions.

A template is ``templates/email/<name>.j2``. It extends ``_layout.j2`` and fills the
blocks ``subject``, ``preheader`` (optional), ``html_body`` and ``text_body``. The layout
renders the HTML or the text part depending on ``render_mode`` and adds the footer (postal
address, unsubscribe link). The subject is rendered from its block alone.

Rendering is sandboxed (:class:`jinja2.sandbox.SandboxedEnvironment`: a template cannot
reach Python internals) with :class:`jinja2.StrictUndefined` (a missing variable is an
error, never an empty string in a customer's inbox). CSS in ``<style>`` is inlined by
``css-inline`` so the HTML survives mail clients.

A version published in the database (``template_versions``, newest published wins)
overrides the file of the same name; the version used is recorded on every message.
"""

from __future__ import annotations

import html.parser
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import css_inline
from jinja2 import BaseLoader, StrictUndefined, TemplateNotFound, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lifecycle.contracts import catalog
from lifecycle.contracts.policy import CampaignPolicy, EmailStep, email_steps
from lifecycle.models import TemplateVersion

LAYOUT = "_layout"
SUFFIX = ".j2"
REQUIRED_BLOCKS = ("subject", "html_body", "text_body")
LAYOUT_BLOCKS = ("subject", "preheader", "html_body", "text_body")
FILE_VERSION = "file"

# Variables the engine gives every email; everything else a step must declare in the policy.
STANDARD_VARS: dict[str, str] = {
    "customer": "the recipient: id, name, first_name, email, company, plan, plan_name, timezone",
    "company_name": "the sender's company (setting LIFECYCLE_EMAIL_COMPANY_NAME)",
    "postal_address": "the sender's postal address (setting LIFECYCLE_EMAIL_POSTAL_ADDRESS)",
    "app_url": "absolute base URL of the product (setting LIFECYCLE_EMAIL_APP_URL)",
    "unsubscribe_url": "the signed one-click unsubscribe link for this recipient",
    "category": "marketing or transactional",
    "campaign": "the campaign's name",
    "step": "the step's name",
    "is_test": "true for `lifecycle templates send-test`",
    "plan": "the customer's plan: code, name, price (e.g. $19)",
    "sender_postal_address": "same as postal_address",
    "render_mode": "html or text (the layout uses it)",
}

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


class TemplateRenderError(ValueError):
    """A template cannot be rendered with the data given; the message says where and why."""


@dataclass
class RenderedEmail:
    template: str
    subject: str
    preheader: str
    html: str
    text: str
    template_version: str = FILE_VERSION


@dataclass
class Published:
    """A template's source as published in the database."""

    name: str
    version: int
    source: str


def customer_vars(
    *,
    customer_id: str,
    email: str,
    name: str = "",
    company: str = "",
    plan: str = "",
    timezone: str = "UTC",
    stage: str = "",
) -> dict[str, Any]:
    """The ``customer`` variable for a real customer."""
    try:
        plan_name = catalog.get_plan(plan).name if plan else ""
    except (KeyError, ValueError, LookupError):
        plan_name = plan
    first = name.split()[0] if name.strip() else "there"
    return {
        "id": customer_id,
        "name": name,
        "first_name": first,
        "email": email,
        "company": company,
        "plan": plan,
        "plan_name": plan_name,
        "timezone": timezone,
        "stage": stage,
    }


def plan_vars(code: str) -> dict[str, Any]:
    """The ``plan`` variable: code, name and monthly price of the customer's plan."""
    try:
        plan = catalog.get_plan(code)
    except (KeyError, ValueError, LookupError):
        return {"code": code, "name": code, "price": ""}
    return {"code": plan.code, "name": plan.name, "price": plan.monthly_price}


_FRONT = re.compile(r"\{#-?\s*vars\b[^\n]*\n(.*?)-?#\}", re.S)  # first line: a free note


def front_matter(source: str) -> dict[str, Any]:
    """Variables a template declares itself, with sample values, in a ``{#- vars … -#}`` comment.

    For templates that campaigns send from code rather than from a policy step (the
    usage emails): the comment holds TOML, each key a variable and its value the sample
    used by ``check`` and ``preview`` (the rest of the first line is a free note)::

        {#- vars: what the campaign gives this email
        days_left = 3
        [usage]
        percent = 80
        -#}
    """
    m = _FRONT.search(source)
    if not m:
        return {}
    try:
        data = tomllib.loads(m.group(1))
    except tomllib.TOMLDecodeError as exc:
        raise TemplateRenderError(f"the {{#- vars … -#}} comment is not valid TOML: {exc}") from None
    return data


# --- loading ----------------------------------------------------------------------------


class _Loader(BaseLoader):
    """Files from ``templates/email`` unless a published database version overrides them."""

    def __init__(self, directory: Path, overrides: Mapping[str, str]) -> None:
        self.directory = directory
        self.overrides = dict(overrides)  # "welcome.j2" -> source

    def get_source(self, environment: Any, template: str) -> tuple[str, str | None, Any]:
        if template in self.overrides:
            return self.overrides[template], None, lambda: True
        path = self.directory / template
        if "/" in template or "\\" in template or template.startswith("."):
            raise TemplateNotFound(template)
        if not path.is_file():
            raise TemplateNotFound(template)
        mtime = path.stat().st_mtime
        return path.read_text(encoding="utf-8"), str(path), lambda: path.stat().st_mtime == mtime


def _env(loader: BaseLoader, *, html: bool) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=loader,
        undefined=StrictUndefined,
        autoescape=html,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


_INLINER = None


def inline_css(html_text: str) -> str:
    global _INLINER
    if _INLINER is None:  # a pure function object (no I/O): remote stylesheets are never loaded
        _INLINER = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)
    return _INLINER.inline(html_text)


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _tidy_text(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)) + "\n"


class TemplateSet:
    """The templates in force: files, overridden by published database versions."""

    def __init__(self, directory: Path, published: Iterable[Published] = ()) -> None:
        self.directory = Path(directory)
        self.published = {p.name: p for p in published}
        overrides = {p.name + SUFFIX: p.source for p in self.published.values()}
        loader = _Loader(self.directory, overrides)
        self._html = _env(loader, html=True)
        self._text = _env(loader, html=False)

    def names(self) -> list[str]:
        files = {p.stem for p in self.directory.glob("*" + SUFFIX) if not p.stem.startswith("_")}
        return sorted(files | {n for n in self.published if not n.startswith("_")})

    def exists(self, name: str) -> bool:
        return name in self.published or (self.directory / (name + SUFFIX)).is_file()

    def source(self, name: str) -> str:
        if name in self.published:
            return self.published[name].source
        path = self.directory / (name + SUFFIX)
        if not path.is_file():
            raise TemplateRenderError(f"template {name!r} not found in {self.directory}")
        return path.read_text(encoding="utf-8")

    def declared(self, name: str) -> dict[str, Any]:
        """The template's own ``{#- vars -#}`` declarations and samples."""
        try:
            return front_matter(self.source(name))
        except TemplateRenderError:
            return {}

    def version_label(self, name: str) -> str:
        """What is recorded on the message: ``file`` or ``v<N>``, plus the layout's if published."""
        label = f"v{self.published[name].version}" if name in self.published else FILE_VERSION
        if LAYOUT in self.published:
            label += f"+layout.v{self.published[LAYOUT].version}"
        return label

    def render(self, name: str, variables: Mapping[str, Any]) -> RenderedEmail:
        """Subject, preheader, inlined HTML and text of ``name`` with ``variables``."""
        filename = name + SUFFIX
        try:
            html_t = self._html.get_template(filename)
            text_t = self._text.get_template(filename)
            for block in REQUIRED_BLOCKS:
                if block not in text_t.blocks:
                    raise TemplateRenderError(f"{name}: block {block!r} is missing")
            text_ctx = dict(variables, render_mode="text")
            subject = _collapse("".join(text_t.blocks["subject"](text_t.new_context(text_ctx))))
            preheader = ""
            if "preheader" in text_t.blocks:
                preheader = _collapse(
                    "".join(text_t.blocks["preheader"](text_t.new_context(text_ctx)))
                )
            html_out = html_t.render(dict(variables, render_mode="html"))
            text_out = text_t.render(text_ctx)
        except TemplateNotFound as exc:
            raise TemplateRenderError(f"template {exc.name!r} not found in {self.directory}") from None
        except TemplateSyntaxError as exc:
            raise TemplateRenderError(
                f"{exc.name or name}: line {exc.lineno}: {exc.message}"
            ) from None
        except UndefinedError as exc:
            raise TemplateRenderError(f"{name}: {exc.message} (declare it or pass it)") from None
        except SecurityError as exc:
            raise TemplateRenderError(f"{name}: not allowed in a template: {exc}") from None
        except TemplateError as exc:
            raise TemplateRenderError(f"{name}: {exc}") from None
        if not subject:
            raise TemplateRenderError(f"{name}: the subject renders empty")
        return RenderedEmail(
            template=name,
            subject=subject,
            preheader=preheader,
            html=inline_css(html_out),
            text=_tidy_text(text_out),
            template_version=self.version_label(name),
        )


# --- published versions (the database) --------------------------------------------------


def load_published(session: Session, names: Iterable[str] | None = None) -> list[Published]:
    """The newest published version of each template (of ``names``, or all)."""
    newest = (
        select(TemplateVersion.name, func.max(TemplateVersion.version).label("v"))
        .where(TemplateVersion.published.is_(True))
        .group_by(TemplateVersion.name)
    )
    if names is not None:
        newest = newest.where(TemplateVersion.name.in_(list(names)))
    sub = newest.subquery()
    rows = session.scalars(
        select(TemplateVersion).join(
            sub, (TemplateVersion.name == sub.c.name) & (TemplateVersion.version == sub.c.v)
        )
    )
    return [Published(r.name, r.version, r.source or "") for r in rows if r.source]


def split_blocks(source: str) -> dict[str, str]:
    """The source of each top-level block, for the editor-friendly columns of a version."""
    out: dict[str, str] = {}
    for m in re.finditer(
        r"{%-?\s*block\s+(\w+)\s*-?%}(.*?){%-?\s*endblock(?:\s+\1)?\s*-?%}", source, re.S
    ):
        out.setdefault(m.group(1), m.group(2).strip())
    return out


def publish(session: Session, name: str, source: str, *, author: str = "") -> TemplateVersion:
    """Store ``source`` as the next version of ``name`` and publish it (callers check it first)."""
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,127}", name):
        raise ValueError(f"template name {name!r}: use letters, digits, _ and -")
    current = session.scalar(
        select(func.max(TemplateVersion.version)).where(TemplateVersion.name == name)
    )
    blocks = split_blocks(source)
    row = TemplateVersion(
        name=name,
        version=(current or 0) + 1,
        subject=blocks.get("subject", ""),
        preheader=blocks.get("preheader", ""),
        html=blocks.get("html_body", ""),
        text=blocks.get("text_body", ""),
        source=source,
        published=True,
        author=author,
    )
    session.add(row)
    session.flush()
    return row


def unpublish(session: Session, name: str) -> int:
    """Withdraw every published version of ``name``: the file is in force again."""
    rows = list(
        session.scalars(
            select(TemplateVersion).where(
                TemplateVersion.name == name, TemplateVersion.published.is_(True)
            )
        )
    )
    for r in rows:
        r.published = False
    return len(rows)


# --- checks -----------------------------------------------------------------------------


@dataclass
class Problem:
    template: str
    message: str

    def __str__(self) -> str:
        return f"{self.template}: {self.message}"


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
    env = _env(BaseLoader(), html=False)
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
