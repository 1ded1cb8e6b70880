"""HTML out: the Jinja2 environment, the headers every page carries, and the static files.

Templates (``templates/``) are autoescaped: whatever a user typed, or an account's address,
is text in the page, never markup. No page has an inline script or style: the
Content-Security-Policy below forbids both, and the one stylesheet (``static/web.css``) is
served by the server itself.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jinja2

from protocols.http.messages import Response

HERE = Path(__file__).parent
HTML = "text/html; charset=utf-8"

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# On every answer of the web pages, errors and redirects included.
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Security-Policy", CSP),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
)
NO_STORE = ("Cache-Control", "no-store")
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt name fails the test, not the page
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    return env


def _when(value: float | None) -> str:
    """A time as the pages show it: UTC, to the minute."""
    import time

    if value is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(value))


def html(status: int, body: str, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(
        status, body.encode("utf-8"), HTML, [*SECURITY_HEADERS, NO_STORE, *(headers or [])]
    )


def render(
    template: str,
    *,
    status: int = 200,
    headers: list[tuple[str, str]] | None = None,
    **context: Any,
) -> Response:
    return html(status, environment().get_template(template).render(**context), headers)


def error_page(
    status: int, message: str, headers: list[tuple[str, str]] | None = None, **context: Any
) -> Response:
    """An error as a page (the API's errors are JSON; a browser gets words)."""
    titles = {
        400: "Bad request",
        403: "Forbidden",
        404: "Not found",
        405: "Method not allowed",
        413: "Too large",
        415: "Unsupported form",
        429: "Too many attempts",
        500: "Server error",
    }
    context.setdefault("account", None)
    context.setdefault("csrf", "")
    return render(
        "error.html",
        status=status,
        headers=headers,
        title=titles.get(status, "Error"),
        message=message,
        **context,
    )


def redirect(location: str, headers: list[tuple[str, str]] | None = None) -> Response:
    """303 See Other (RFC 9110 15.4.4): after a POST, the browser GETs ``location``."""
    return Response(
        303, b"", None, [*SECURITY_HEADERS, NO_STORE, ("Location", location), *(headers or [])]
    )


@functools.cache
def static_files() -> dict[str, tuple[bytes, str]]:
    """``name -> (body, media type)`` of ``static/``, read once."""
    files = {}
    for path in sorted((HERE / "static").iterdir()):
        kind = STATIC_TYPES.get(path.suffix)
        if kind is not None and path.is_file():
            files[path.name] = (path.read_bytes(), kind)
    return files


def static(name: str) -> Response | None:
    found = static_files().get(name)
    if found is None:
        return None
    body, kind = found
    # Cached for a while: the stylesheet changes with a release, not per request.
    return Response(200, body, kind, [*SECURITY_HEADERS, ("Cache-Control", "public, max-age=3600")])
