"""``/account/two-factor``: two-factor sign-in (TOTP, RFC 6238) enrolled from the page.

The same steps as the API's ``/api/accounts/{address}/totp`` (``stalwart_py.two_factor``):
*start* makes a secret, shown as a QR code (an SVG made here by segno, nothing fetched from
elsewhere) and as text until it is confirmed; *confirm* takes the app's current code, turns
two-factor sign-in on and shows the 10 recovery codes once; *disable* wants the account's
password again (a session left open on a shared computer must not be enough to turn it off).
Secrets and codes are never logged.
"""

from __future__ import annotations

import contextlib

import segno
from markupsafe import Markup

from protocols.http.messages import Response
from protocols.http.web import render
from protocols.http.web.account.password import current_password_ok
from protocols.http.web.pages import PageTable, WebRequest, sentence
from stalwart_py import totp
from stalwart_py.store import NotFound, StoreError

pages = PageTable()
PATH = "/account/two-factor"


def qr_svg(uri: str) -> Markup:
    """The ``otpauth://`` URI as an inline SVG QR code (presentation attributes only: no
    style for the Content-Security-Policy to refuse). segno's own markup, nothing of the
    user's unescaped: the URI is encoded in the modules, not written as text. ``omitsize``:
    a viewBox instead of a fixed width and height, so that the stylesheet's width scales the
    code; with a fixed size it was cut (265 px drawn in a 224 px box: no phone could read
    it, tests/browser/test_two_factor_flow.py scans it)."""
    qr = segno.make(uri, error="m")
    return Markup(qr.svg_inline(scale=5, dark="#000", light="#fff", omitsize=True))


async def _page(web: WebRequest, *, status: int = 200, **context: object) -> Response:
    state = await web.server.directory.two_factor.status(web.account.id)
    pending = state is not None and not state.enabled
    if pending and "qr" not in context:
        assert state is not None
        uri = totp.uri(state.secret, web.account.address, web.server.hostname)
        context.update(qr=qr_svg(uri), secret=state.secret)
    context.setdefault("qr", None)
    context.setdefault("secret", "")
    context.setdefault("error", "")
    context.setdefault("codes", [])
    return web.render(
        "account/two_factor.html",
        status=status,
        title="Two-factor sign-in",
        enabled=state is not None and state.enabled,
        pending=pending,
        left=state.recovery_codes_left if state is not None else 0,
        done=web.query("done"),
        **context,
    )


@pages.page(PATH, methods=("GET", "POST"))
async def two_factor(web: WebRequest) -> Response:
    if web.method == "GET":
        return await _page(web)
    action = web.field("action")
    account = web.account
    factor = web.server.directory.two_factor
    if action == "start":
        try:
            await factor.start(account.id, account.address, web.server.hostname)
        except StoreError as exc:
            return await _page(web, status=409, error=sentence(str(exc)))
        web.log.info("two-factor enrolment started for %s on the web pages", account.address)
        return await _page(web)
    if action == "confirm":
        try:
            codes = await factor.confirm(account.id, web.field("code").strip()[:64])
        except StoreError as exc:
            return await _page(web, status=422, error=sentence(str(exc)))
        web.log.info("two-factor sign-in enabled for %s on the web pages", account.address)
        return await _page(web, codes=codes)
    if action == "disable":
        error = await current_password_ok(web, web.field("password"))
        if error is not None:
            return await _page(web, status=422, error=error)
        with contextlib.suppress(NotFound):  # off already: what was asked
            await factor.disable(account.id)
        web.log.info("two-factor sign-in disabled for %s on the web pages", account.address)
        return render.redirect(f"{PATH}?done=disabled")
    return await _page(web, status=422, error="Unknown action.")
