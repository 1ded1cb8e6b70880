"""What a page is: a path template, the methods it answers, who may see it, and a handler.

A module of pages makes a ``PageTable`` and decorates its handlers::

    pages = PageTable()

    @pages.page("/account/password", methods=("GET", "POST"))
    async def password(web: WebRequest) -> Response:
        if web.method == "POST":
            ...web.field("current")...
        return web.render("account/password.html", title="Password")

The site (``site.py``) has done everything else before the handler runs: HTTPS (or an allowed
plain-HTTP peer), the session and the access ``Level``, and for a POST the CSRF token and the
Origin, with the form already parsed. A handler never sees a request it should refuse.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from protocols.http.messages import HttpError, Request, Response, decode_segment

if TYPE_CHECKING:
    import logging

    from stalwart_py.context import ServerContext
    from stalwart_py.store import Account, WebSession


class Level(enum.IntEnum):
    """Who may see a page; each level includes the ones above it in this list."""

    PUBLIC = 0  # anyone (the sign-in form, the stylesheet)
    PENDING = 1  # a session past its password, maybe still waiting for the second factor
    ACCOUNT = 2  # a signed-in account, any
    ADMIN = 3  # a signed-in administrator; others get 403


PageHandler = Callable[["WebRequest"], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Page:
    template: str  # "/admin/accounts/{address}"
    methods: tuple[str, ...]
    level: Level
    handler: PageHandler

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.template.strip("/").split("/"))

    def match(self, path: str) -> dict[str, str] | None:
        """The path parameters when ``path`` is this page's, else None. A trailing slash is
        part of a template ("/account/" is the overview, "/account/password" a page)."""
        if path.endswith("/") != self.template.endswith("/"):
            return None
        parts = path.strip("/").split("/")
        if len(parts) != len(self.segments):
            return None
        params: dict[str, str] = {}
        for segment, part in zip(self.segments, parts, strict=True):
            if segment.startswith("{") and segment.endswith("}"):
                if not part:
                    return None
                try:
                    params[segment[1:-1]] = decode_segment(part)
                except UnicodeDecodeError:
                    return None
            elif segment != part:
                return None
        return params


class PageTable:
    """The pages of one module, registered by decorator."""

    def __init__(self) -> None:
        self.pages: list[Page] = []

    def page(
        self, template: str, *, methods: tuple[str, ...] = ("GET",), level: Level = Level.ACCOUNT
    ) -> Callable[[PageHandler], PageHandler]:
        def register(handler: PageHandler) -> PageHandler:
            self.pages.append(Page(template, methods, level, handler))
            return handler

        return register


@dataclass(eq=False)
class WebRequest:
    """A page's request, as its handler sees it: the HTTP request, who is signed in, the
    parsed form of a POST (its CSRF token checked), and how to answer."""

    request: Request
    page: Page
    params: dict[str, str]  # path parameters, decoded
    session: WebSession | None  # None on PUBLIC pages without one
    form: dict[str, list[str]] = field(default_factory=dict)
    # Headers the site adds to whatever the handler answers (a new session's cookie).
    headers: list[tuple[str, str]] = field(default_factory=list)
    # Set by the site: renders a template with the common context (``render.py``).
    renderer: Callable[..., Response] | None = None

    @property
    def method(self) -> str:
        return "GET" if self.request.method == "HEAD" else self.request.method

    @property
    def account(self) -> Account:
        """The signed-in account (pages of level ACCOUNT and ADMIN always have one)."""
        if self.session is None:
            raise HttpError(403, "not signed in")
        return self.session.account

    @property
    def server(self) -> ServerContext:
        return self.request.session.server

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        return self.request.session.log

    def field(self, name: str, default: str = "") -> str:
        """A form field's value (the last one when repeated); ``default`` when absent."""
        values = self.form.get(name)
        return values[-1] if values else default

    def fields(self, name: str) -> list[str]:
        """Every value of a repeated field (checkboxes of one name)."""
        return self.form.get(name, [])

    def query(self, name: str, default: str = "") -> str:
        return self.request.query_value(name) or default

    def render(self, template: str, *, status: int = 200, **context: Any) -> Response:
        """The template as an HTML page, with the common context: the account, its CSRF
        token (every form puts it in a hidden field ``csrf``), the current path."""
        assert self.renderer is not None
        return self.renderer(template, status=status, **context)


def sentence(text: str) -> str:
    """An error message of the core ("the password must ...") as a sentence for a page."""
    text = text.strip()
    if not text:
        return text
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")
