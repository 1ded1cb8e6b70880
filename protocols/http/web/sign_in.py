"""Signing in and out: one form for both areas (``/account/sign-in?next=...``).

1. ``GET /account/sign-in`` shows the form, with a fresh double-submit CSRF cookie.
2. ``POST`` checks the address and the account's own password through ``Directory.login``:
   the same throttle, failure delay and ``login failed from ...`` line as every protocol
   (``mechanism=WEB``); app passwords are refused (they are for mail clients). Right, without
   two-factor sign-in: a session, and on to ``next``. Right, with it: a *pending* session
   (``sessions.PENDING_LIFETIME``), and on to step 3.
3. ``/account/sign-in/code`` takes a TOTP code or a recovery code, checked by
   ``Directory.second_factor`` (``TwoFactor.check``: no code twice, a recovery code once).
   Right: the pending session is replaced by a new one (a new token: whoever saw the first
   cookie has nothing), and on to ``next``.
4. ``POST /account/sign-out`` deletes the session and clears the cookie.

``next`` is only ever a path of these pages (``local_next``): a sign-in link cannot send the
browser to another site. Passwords and codes are never logged.
"""

from __future__ import annotations

import math
import secrets
from urllib.parse import quote

from protocols.http.messages import Response
from protocols.http.web import render, sessions
from protocols.http.web.pages import Level, PageTable, WebRequest
from stalwart_py.directory import AuthThrottled, normalize
from stalwart_py.sasl import AuthFailed
from stalwart_py.two_factor import TwoFactorRequired

pages = PageTable()

MECHANISM = "WEB"  # in the login lines of the log (and fail2ban's)
DEFAULT_NEXT = "/account/"
MAX_FIELD = 1024  # characters of an address, a password or a code considered


def local_next(target: str) -> str:
    """``next`` when it is a path of the web pages, else the account's overview. Refused: an
    absolute URL, a scheme-relative ``//host`` or ``/\\host`` (browsers read both as another
    site), anything with a control character, anything outside ``/account/`` and ``/admin/``."""
    if (
        target.startswith(("/account/", "/admin/"))
        and "\\" not in target
        and "//" not in target
        and target.isprintable()
        and len(target) <= 500
    ):
        return target
    return DEFAULT_NEXT


def _form(web: WebRequest, *, status: int = 200, error: str = "", address: str = "") -> Response:
    """The sign-in form, with the double-submit token in a cookie and in the form."""
    token = sessions.read_cookie(web.request, sessions.PRE_SESSION)
    if token is None or len(token) > 100:
        token = secrets.token_urlsafe(24)
    web.headers.append(
        (
            "Set-Cookie",
            sessions.set_cookie(
                web.request, sessions.PRE_SESSION, token, max_age=sessions.PRE_SESSION_LIFETIME
            ),
        )
    )
    return web.render(
        "sign_in.html",
        status=status,
        title="Sign in",
        csrf=token,
        account=None,
        error=error,
        address=address,
        next=local_next(web.query("next") or web.field("next")),
    )


def _throttled(exc: AuthThrottled) -> tuple[str, list[tuple[str, str]]]:
    seconds = max(1, math.ceil(exc.retry_after))
    return (
        f"Too many failed attempts from here: try again in {seconds} seconds.",
        [("Retry-After", str(seconds))],
    )


@pages.page("/account/sign-in", methods=("GET", "POST"), level=Level.PUBLIC)
async def sign_in(web: WebRequest) -> Response:
    session = web.session
    if web.method == "GET":
        if session is not None and not session.pending:
            return render.redirect(local_next(web.query("next")))
        return _form(web)
    address = web.field("address").strip()[:MAX_FIELD]
    password = web.field("password")[:MAX_FIELD]
    target = local_next(web.field("next"))
    request = web.request
    directory = web.server.directory
    try:
        account = await directory.login(
            address,
            password,
            request.session.peer.ip,
            mechanism=MECHANISM,
            log=request.session.log,
            two_step=True,
        )
    except TwoFactorRequired:
        found = await directory.store.get_account(normalize(address))
        if found is None:  # deleted in the meantime
            return _form(web, status=403, error="Wrong address or password.", address=address)
        cookie, _ = await sessions.begin(request, found, pending=True)
        web.log.info("web: password accepted for %s, asking for the second factor", found.address)
        code_page = f"/account/sign-in/code?next={quote(target, safe='/')}"
        return render.redirect(code_page, [("Set-Cookie", cookie)])
    except AuthThrottled as exc:
        message, headers = _throttled(exc)
        web.headers.extend(headers)
        return _form(web, status=429, error=message, address=address)
    except AuthFailed:
        return _form(web, status=403, error="Wrong address or password.", address=address)
    return await _signed_in(web, account, target)


async def _signed_in(web: WebRequest, account: object, target: str) -> Response:
    from stalwart_py.store import Account

    assert isinstance(account, Account)
    request = web.request
    if web.session is not None:  # a pending one, or another account's: replaced
        await request.session.server.store.delete_web_session(web.session.token_hash)
    cookie, _ = await sessions.begin(request, account, pending=False)
    web.log.info("web: %s signed in", account.address)
    return render.redirect(
        target,
        [
            ("Set-Cookie", cookie),
            ("Set-Cookie", sessions.clear_cookie(request, sessions.PRE_SESSION)),
        ],
    )


@pages.page("/account/sign-in/code", methods=("GET", "POST"), level=Level.PENDING)
async def second_factor(web: WebRequest) -> Response:
    session = web.session
    assert session is not None
    target = local_next(web.query("next") or web.field("next"))
    if not session.pending:
        return render.redirect(target)
    context = {"title": "Sign in: code", "next": target, "address": session.account.address}
    if web.method == "GET":
        return web.render("sign_in_code.html", error="", **context)
    code = web.field("code").strip()[:MAX_FIELD]
    request = web.request
    try:
        account = await web.server.directory.second_factor(
            session.account,
            code,
            request.session.peer.ip,
            mechanism=MECHANISM,
            log=request.session.log,
        )
    except AuthThrottled as exc:
        message, headers = _throttled(exc)
        web.headers.extend(headers)
        return web.render("sign_in_code.html", status=429, error=message, **context)
    except AuthFailed:
        error = "That code is not right (or was used already)."
        return web.render("sign_in_code.html", status=403, error=error, **context)
    return await _signed_in(web, account, target)


@pages.page("/account/sign-out", methods=("POST",), level=Level.PENDING)
async def sign_out(web: WebRequest) -> Response:
    session = web.session
    assert session is not None
    cookie = await sessions.end(web.request, session)
    web.log.info("web: %s signed out", session.account.address)
    return render.redirect("/account/sign-in", [("Set-Cookie", cookie)])
