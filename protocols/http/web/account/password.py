"""``/account/password``: change the account's own password (the current one first).

The current password is checked by the directory's ``login`` (the shared throttle and its log
line: a stolen session cannot try passwords faster than a mail client can). The new one must
pass the directory's rules (``directory.min-password-length`` after SASLprep). A new password
ends every session of the account, this one included (sessions are bound to the password's
hash), so this browser gets a new session at once; the others are deleted.
"""

from __future__ import annotations

from protocols.http.messages import Response
from protocols.http.web import render, sessions
from protocols.http.web.pages import PageTable, WebRequest, sentence
from stalwart_py.directory import AuthThrottled
from stalwart_py.sasl import AuthFailed
from stalwart_py.store import StoreError
from stalwart_py.two_factor import TwoFactorRequired

pages = PageTable()

MAX_PASSWORD = 1024  # characters considered (the directory's rules decide the rest)


async def current_password_ok(web: WebRequest, password: str) -> str | None:
    """None when ``password`` is the signed-in account's own, else what to tell the user.
    Through ``Directory.login``: throttled and logged as any sign-in is."""
    request = web.request
    try:
        await web.server.directory.login(
            web.account.address,
            password[:MAX_PASSWORD],
            request.session.peer.ip,
            mechanism="WEB",
            log=request.session.log,
            two_step=True,
        )
    except TwoFactorRequired:
        return None  # right; the session already passed the second factor
    except AuthThrottled as exc:
        return f"Too many failed attempts: try again in {max(1, round(exc.retry_after))} seconds."
    except AuthFailed:
        return "The current password is not right."
    return None


@pages.page("/account/password", methods=("GET", "POST"))
async def password(web: WebRequest) -> Response:
    directory = web.server.directory
    context = {
        "title": "Change your password",
        "min_length": directory.settings.min_password_length,
        "done": web.query("done") == "changed",
    }
    if web.method == "GET":
        return web.render("account/password.html", error="", **context)
    current, new, confirm = web.field("current"), web.field("new"), web.field("confirm")
    error = await current_password_ok(web, current)
    if error is None and new != confirm:
        error = "The new password and its confirmation differ."
    if error is None and len(new) > MAX_PASSWORD:
        error = f"A password has at most {MAX_PASSWORD} characters here."
    if error is None:
        try:
            await directory.set_password(web.account.address, new)
        except StoreError as exc:
            error = sentence(str(exc))
    if error is not None:
        return web.render("account/password.html", status=422, error=error, **context)
    account = await web.server.store.get_account(web.account.address) or web.account
    cookie, fresh = await sessions.begin(web.request, account, pending=False)
    ended = await web.server.store.delete_web_sessions(account.id, keep=fresh.token_hash)
    web.log.info("web: %s changed its password (%d other sessions ended)", account.address, ended)
    return render.redirect("/account/password?done=changed", [("Set-Cookie", cookie)])
