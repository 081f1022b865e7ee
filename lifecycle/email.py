"""Email rendering and providers.

Templates live in ``templates/email/<name>.j2``; each extends ``_layout.j2`` and fills
the blocks ``subject``, ``preheader``, ``html_body`` and ``text_body``. Rendering is
sandboxed (a template cannot reach Python internals) with strict undefined variables,
so a typo fails loudly instead of sending a blank.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from lifecycle.settings import Settings

LAYOUT = "_layout.j2"


class TemplateError(Exception):
    """A template is missing or broken; the message names it and the problem."""


@dataclass
class RenderedEmail:
    template: str
    subject: str
    preheader: str
    html: str
    text: str
    version: str = "file"


@dataclass
class OutgoingEmail:
    to_address: str
    from_address: str
    rendered: RenderedEmail
    headers: dict[str, str] = field(default_factory=dict)
    category: str = "marketing"
    campaign: str = ""
    step: str = ""
    message_key: str = ""


class TemplateRenderer:
    def __init__(self, templates_dir: Path) -> None:
        self.dir = templates_dir / "email"
        self.env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader(str(self.dir)),
            undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.dir.glob("*.j2") if not p.name.startswith("_"))

    def render(self, name: str, context: dict[str, Any]) -> RenderedEmail:
        try:
            template = self.env.get_template(f"{name}.j2")
            subject = self._block(template, "subject", context).strip()
            preheader = self._block(template, "preheader", context).strip()
            html = template.render({**context, "part": "html"})
            text = template.render({**context, "part": "text"}).strip() + "\n"
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(f"email template {name!r} not found in {self.dir} ({exc})") from None
        except jinja2.TemplateError as exc:
            where = f" line {exc.lineno}" if getattr(exc, "lineno", None) else ""
            raise TemplateError(f"email template {name!r}{where}: {exc}") from None
        if not subject:
            raise TemplateError(f"email template {name!r} has an empty subject")
        return RenderedEmail(template=name, subject=subject, preheader=preheader, html=html, text=text)

    @staticmethod
    def _block(template: jinja2.Template, block: str, context: dict[str, Any]) -> str:
        render = template.blocks.get(block)
        if render is None:
            return ""
        return "".join(render(template.new_context(context))).replace("\n", " ")


def unsubscribe_url(settings: Settings, customer_id: str) -> str:
    return f"{settings.public_url}/unsubscribe?customer={customer_id}"


class EmailProvider(Protocol):
    name: str

    def send(self, message: OutgoingEmail) -> str:
        """Deliver ``message``; return the provider's message id."""
        ...


class OutboxProvider:
    """The default: the message row in ``email_messages`` is the delivery."""

    name = "outbox"

    def send(self, message: OutgoingEmail) -> str:
        return f"outbox-{uuid.uuid4()}"


def make_provider(settings: Settings) -> EmailProvider:
    if settings.email_provider == "outbox":
        return OutboxProvider()
    raise NotImplementedError(f"email provider {settings.email_provider!r} is not available yet")
