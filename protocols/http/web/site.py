"""The site: every web page's request goes through ``Site.serve`` before its handler.

In order, for a request under ``/account/``, ``/admin/`` or ``/static/``:

1. ``http.web.enable`` false for this listener (or peer): 404.
2. Plain HTTP from a peer outside ``http.allow-plaintext-from``: a 403 page saying to use
   HTTPS, for every page, the sign-in form first (it must never invite a password in clear).
3. The page (404; under ``/admin/`` only for administrators, see ``_not_found``).
4. The session from the cookie (``sessions.current``) against the page's ``Level``: none on a
   page that wants one is a redirect to the sign-in form (``?next=`` the page); a pending
   session (password given, code not yet) opens only PENDING pages; an account that is not
   an administrator gets 403 on ADMIN pages. Then the method (405 with ``Allow``; HEAD is
   GET without the body), after the access check so that it tells strangers nothing.
5. A POST: the form is read (``application/x-www-form-urlencoded``, at most
   ``MAX_FORM_SIZE``), the ``Origin`` header, when sent, must name this host, and the form's
   ``csrf`` field must be the session's token (the sign-in form's: its double-submit cookie).
   A mismatch is a 403 and a WARNING line naming the page and the client; nothing is done.
6. The handler; every answer gets the security headers (``render.SECURITY_HEADERS``).
"""

from __future__ import annotations

import functools
from urllib.parse import parse_qs, quote

from protocols.http.auth import Authenticator
from protocols.http.messages import HttpError, Request, Response
from protocols.http.router import Handler
from protocols.http.web import render, sessions
from protocols.http.web.pages import Level, Page, PageTable, WebRequest
from stalwart_py.logs import client_address

MAX_FORM_SIZE = 2 * 1024 * 1024  # a raw Sieve script (at most 1 MiB) and the rest
MAX_FORM_FIELDS = 200
FORM_TYPE = "application/x-www-form-urlencoded"
SIGN_IN = "/account/sign-in"


def page_tables() -> tuple[PageTable, ...]:
    """Every module's pages. A new area adds its table here (docs/web.md)."""
    from protocols.http.web import account, admin, sign_in

    return (sign_in.pages, *account.TABLES, *admin.TABLES)


class Site:
    def __init__(self, tables: tuple[PageTable, ...]) -> None:
        self.pages: list[Page] = [page for table in tables for page in table.pages]
        self.auth = Authenticator()

    def match(self, request: Request) -> tuple[str, Handler]:
        path = request.path
        if path.startswith("/static/"):
            return "GET /static/{name}", self.serve_static
        for page in self.pages:
            if page.match(path) is not None:
                return f"{request.method} {page.template}", self.serve
        return "web unmatched", self.serve

    async def serve_static(self, request: Request) -> Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        if request.method not in ("GET", "HEAD"):
            return render.error_page(405, "Only GET here.", [("Allow", "GET, HEAD")])
        found = render.static(request.path.removeprefix("/static/"))
        return found if found is not None else render.error_page(404, "No such file.")

    def _refusal(self, request: Request) -> Response | None:
        if not request.session.settings.web.enable:
            return render.error_page(404, "The web pages are turned off here.")
        if not self.auth.plaintext_allowed(request):
            return render.error_page(
                403, "Use HTTPS: this server does not take passwords over plain HTTP from here."
            )
        return None

    async def serve(self, request: Request) -> Response:
        try:
            return await self._serve(request)
        except HttpError as exc:
            return render.error_page(exc.status, exc.message, exc.headers)
        except Exception:
            request.session.log.exception("web: %s %s failed", request.method, request.path)
            return render.error_page(500, "Something went wrong; the server log says more.")

    async def _serve(self, request: Request) -> Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        path = request.path
        if path in ("/account", "/admin"):
            return render.redirect(path + "/")
        found = [(page, params) for page in self.pages if (params := page.match(path)) is not None]
        if not found:
            return await self._not_found(request)
        method = "GET" if request.method == "HEAD" else request.method
        chosen = next(((p, params) for p, params in found if method in p.methods), None)
        # Access before the method: a 405 would tell others which admin pages exist.
        page, params = chosen or (max((p for p, _ in found), key=lambda p: p.level), {})
        session = await sessions.current(request)
        web = WebRequest(request, page, params, session)
        web.renderer = functools.partial(self._render, web)
        denied = self._access(web)
        if denied is not None:
            return denied
        if chosen is None:
            allow = sorted({m for page, _ in found for m in page.methods})
            allow += ["HEAD"] if "GET" in allow else []
            return render.error_page(
                405, f"{request.method} is not allowed here.", [("Allow", ", ".join(allow))]
            )
        if method == "POST":
            self._read_form(web)
            self._check_origin(web)
            self._check_csrf(web)
        response = await page.handler(web)
        response.headers.extend(web.headers)
        return response

    async def _not_found(self, request: Request) -> Response:
        """404, except under ``/admin/`` for anyone but an administrator, who gets what an
        existing page would give (the sign-in, or 403): which administrators' pages exist
        is not told to others."""
        if request.path.startswith("/admin/"):
            session = await sessions.current(request)
            probe = Page(request.path, ("GET",), Level.ADMIN, _no_handler)
            web = WebRequest(request, probe, {}, session)
            web.renderer = functools.partial(self._render, web)
            denied = self._access(web)
            if denied is not None:
                return denied
        return render.error_page(404, "There is no such page.")

    @staticmethod
    def _render(
        web: WebRequest, template: str, *, status: int = 200, **context: object
    ) -> Response:
        session = web.session
        context.setdefault("account", session.account if session and not session.pending else None)
        context.setdefault("csrf", session.csrf if session else "")
        context.setdefault("path", web.request.path)
        return render.render(template, status=status, **context)

    @staticmethod
    def _access(web: WebRequest) -> Response | None:
        level, session = web.page.level, web.session
        if level is Level.PUBLIC:
            return None
        if session is None or (session.pending and level > Level.PENDING):
            target = web.request.path
            return render.redirect(f"{SIGN_IN}?next={quote(target, safe='/')}")
        if level is Level.ADMIN and not session.account.is_admin:
            return web.render(
                "error.html",
                status=403,
                title="Forbidden",
                message="These pages are for administrators.",
            )
        return None

    @staticmethod
    def _read_form(web: WebRequest) -> None:
        request = web.request
        if request.content_type != FORM_TYPE and (request.body or request.content_type):
            raise HttpError(415, "Forms are sent as application/x-www-form-urlencoded.")
        if len(request.body) > MAX_FORM_SIZE:
            raise HttpError(413, f"A form has at most {MAX_FORM_SIZE // 1024} KiB.")
        try:
            web.form = parse_qs(
                request.body.decode("utf-8"),
                keep_blank_values=True,
                max_num_fields=MAX_FORM_FIELDS,
                errors="strict",
            )
        except (UnicodeDecodeError, ValueError):
            raise HttpError(400, "The form could not be read.") from None

    @staticmethod
    def _check_origin(web: WebRequest) -> None:
        """RFC 6454 7: a browser sends ``Origin`` with a POST; its host (and port) must be the
        Host the request was made to. The scheme is not compared: behind a proxy that ends
        TLS the browser's ``https`` arrives here as plain HTTP, and another site cannot take
        this host's name whatever the scheme. Absent: the CSRF token alone decides (older
        browsers, and clients that are not browsers)."""
        request = web.request
        origin = request.headers.get("origin")
        if origin is None:
            return
        scheme, sep, netloc = origin.partition("://")
        host = request.headers.get("host", "").strip().lower()
        if not sep or scheme not in ("http", "https") or not host or netloc.lower() != host:
            _refuse(web, f"Origin {origin[:100]!r} is not this site")

    @staticmethod
    def _check_csrf(web: WebRequest) -> None:
        sent = web.field("csrf")
        if web.session is not None and web.page.level is not Level.PUBLIC:
            expected: str | None = web.session.csrf
        else:
            expected = sessions.read_cookie(web.request, sessions.PRE_SESSION)
        if not sent or expected is None or not sessions.same(sent, expected):
            _refuse(web, "the form's CSRF token is missing or wrong")


async def _no_handler(web: WebRequest) -> Response:
    raise HttpError(404, "There is no such page.")


def _refuse(web: WebRequest, why: str) -> None:
    request = web.request
    request.session.log.warning(
        "web: refused POST %s from %s: %s",
        request.path,
        client_address(request.session.peer.ip),
        why,
    )
    raise HttpError(403, "This form is out of date or came from another site; reload the page.")


@functools.cache
def site() -> Site:
    return Site(page_tables())
