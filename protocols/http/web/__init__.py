"""Web pages for the administrator (``/admin/``) and for every user (``/account/``).

Server-rendered HTML (Jinja2 templates, autoescaped) with a session cookie, matched by
``Application.dispatch`` before the API router, as the client-setup paths are, and not part of
the OpenAPI document. How a page is added, and the rules every page gets for free (sessions,
CSRF, headers, access levels): docs/web.md.

This module is what ``dispatch`` imports: it only says whether a path is the web pages'. The
pages themselves (and Jinja2) are loaded with the first request for one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from protocols.http.messages import Request
    from protocols.http.router import Handler

PREFIXES = ("/account/", "/admin/", "/static/")
ROOTS = ("/account", "/admin")


def match(request: Request) -> tuple[str, Handler] | None:
    """The handler of a web page's request, with its metrics label; None for the rest."""
    path = request.path
    if path in ROOTS or path.startswith(PREFIXES):
        from protocols.http.web.site import site

        return site().match(request)
    return None
