"""Pages a customer opens from an email (no API key: a signed token authenticates them).

Every page is rendered through :func:`render_page` so they share one look, escape what
they are given, and answer errors as a readable page (never a stack trace). The page
modules (the unsubscribe confirmation in ``starter.api.email``; the billing pages in this
package) each own their routes.
"""

from __future__ import annotations

import html
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.responses import HTMLResponse

_STYLE = (
    "body{font-family:Helvetica,Arial,sans-serif;max-width:480px;margin:48px auto;"
    "padding:0 16px;color:#1f2933;line-height:1.5}"
    "h1{font-size:1.6em;line-height:1.25}"
    "button,.button{background:#3949ab;color:#fff;border:0;padding:12px 20px;border-radius:4px;"
    "font-size:16px;cursor:pointer;text-decoration:none;display:inline-block}"
    "button[disabled]{opacity:.6;cursor:default}"
    ".muted{color:#52606d;font-size:.9em}.error{color:#b00020}"
    "table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:4px 8px 4px 0;vertical-align:top}"
    "input,.field{width:100%;box-sizing:border-box;padding:10px;font-size:16px;"
    "border:1px solid #9aa5b1;border-radius:4px;margin:4px 0 12px}"
    "@media (max-width:400px){body{margin:24px auto}h1{font-size:1.35em}}"
)


def render_page(title: str, body: str, code: int = 200, *, head: str = "") -> HTMLResponse:
    """A whole page: ``title`` is escaped here; ``body`` (and ``head``) are HTML the caller
    built with every value it inserted escaped."""
    doc = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style>{head}</head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(doc, status_code=code, headers={"Cache-Control": "no-store"})


def error_page(message: str, code: int, title: str = "This link is not valid") -> HTMLResponse:
    """The page for a bad, expired or foreign token (or anything else the customer cannot fix)."""
    return render_page(title, f"<p>{html.escape(message)}</p>", code)


def parse_form(raw: bytes, max_fields: int = 8) -> dict[str, str]:
    """An urlencoded form's fields, the first value of each; {} for a body that is none."""
    try:
        form = parse_qs(raw.decode("ascii"), max_num_fields=max_fields, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {name: values[0] for name, values in form.items() if values}


def hidden_token(token: str) -> str:
    """The form field that carries a page's signed token: in the body, never in the form's
    action URL (a URL ends up in access logs, proxies and browser history)."""
    return f"<input type='hidden' name='token' value='{html.escape(token)}'>"


async def posted_token(request: Request, max_length: int) -> str | None:
    """The token a page's form posted in its body, else the link's own (query string:
    RFC 8058 one-click and older pages post to the link itself); None if neither fits."""
    token = parse_form(await request.body()).get("token") or request.query_params.get("token")
    return token if token and 3 <= len(token) <= max_length else None
