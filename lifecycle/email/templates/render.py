"""Rendering email templates: sandboxed Jinja2, files overridden by published versions.

A template is ``templates/email/<name>.j2``. It extends ``_layout.j2`` and fills the
blocks ``subject``, ``preheader`` (optional), ``html_body`` and ``text_body``. The layout
renders the HTML or the text part depending on ``render_mode`` and adds the footer (postal
address, unsubscribe link). The subject is rendered from its block alone.

Rendering is sandboxed (:class:`jinja2.sandbox.SandboxedEnvironment`: a template cannot
reach Python internals) with :class:`jinja2.StrictUndefined` (a missing variable is an
error, never an empty string in a customer's inbox). CSS in ``<style>`` is inlined by
``css-inline`` so the HTML survives mail clients.

A version published in the database (``versions.py``, newest published wins) overrides
the file of the same name; the version used is recorded on every message.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import css_inline
from jinja2 import BaseLoader, StrictUndefined, TemplateNotFound, TemplateSyntaxError, pass_context
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from lifecycle.contracts import catalog
from lifecycle.email.amounts import local_date, local_datetime

if TYPE_CHECKING:
    from lifecycle.email.templates.versions import Published

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
    "card_update_url": "the signed, expiring link to the card-update page (/billing/card)",
    "category": "marketing or transactional",
    "campaign": "the campaign's name",
    "step": "the step's name",
    "is_test": "true for `lifecycle templates send-test`",
    "plan": "the customer's plan: code, name, price (e.g. $19; in the customer's currency, or US$19)",
    "prices_note": "for a customer who pays in another currency than the catalog's: says prices marked US$ are list prices",
    "sender_postal_address": "same as postal_address",
    "render_mode": "html or text (the layout uses it)",
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


def plan_vars(code: str | None, price: str | None = None) -> dict[str, Any]:
    """The ``plan`` variable: code, name and monthly price of the customer's plan (a
    customer whose Stripe price maps to no tier: "your plan", no price). ``price``: the
    monthly price as this customer reads it (their currency); default the catalog's."""
    if not code:
        return {"code": "", "name": "your plan", "price": ""}
    try:
        plan = catalog.get_plan(code)
    except (KeyError, ValueError, LookupError):
        return {"code": code, "name": code, "price": ""}
    return {"code": plan.code, "name": plan.name, "price": price or plan.monthly_price}


def _customer_zone(context: Context) -> str | None:
    customer = context.get("customer")
    return customer.get("timezone") if isinstance(customer, Mapping) else None


@pass_context
def _local_date(context: Context, value: Any) -> str:
    """``{{ suspend_at | local_date }}``: the day in the recipient's time zone."""
    return local_date(value, _customer_zone(context))


@pass_context
def _local_datetime(context: Context, value: Any) -> str:
    """``{{ at | local_datetime }}``: date and time on the recipient's clock."""
    return local_datetime(value, _customer_zone(context))


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


def make_env(loader: BaseLoader, *, html: bool) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=loader,
        undefined=StrictUndefined,
        autoescape=html,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters["local_date"] = _local_date
    env.filters["local_datetime"] = _local_datetime
    return env


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
        self._html = make_env(loader, html=True)
        self._text = make_env(loader, html=False)

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
