"""``/account/``: the account's address, what it uses of its quota, and its sessions (with
"sign out everywhere else")."""

from __future__ import annotations

from protocols.http.messages import Response
from protocols.http.web import render
from protocols.http.web.pages import PageTable, WebRequest

pages = PageTable()


def _share(used: int, limit: int | None) -> int | None:
    """Percent of ``limit`` used (for the bar), None without a limit."""
    if not limit:
        return None
    return min(100, round(100 * used / limit))


@pages.page("/account/")
async def overview(web: WebRequest) -> Response:
    account = web.account
    store = web.server.store
    fresh = await store.get_account(account.address) or account  # usage as of now
    listed = await store.list_web_sessions(account.id)
    two_factor = await web.server.directory.two_factor.status(account.id)
    return web.render(
        "account/overview.html",
        title="Your account",
        me=fresh,
        bytes_share=_share(fresh.used_bytes, fresh.quota_bytes),
        messages_share=_share(fresh.used_messages, fresh.quota_messages),
        sessions=listed,
        current=web.session.token_hash if web.session else "",
        two_factor=two_factor is not None and two_factor.enabled,
        done=web.query("done"),
    )


@pages.page("/account/sessions/end-others", methods=("POST",))
async def end_others(web: WebRequest) -> Response:
    """Sign out everywhere else: every session of the account but this one."""
    assert web.session is not None
    ended = await web.server.store.delete_web_sessions(web.account.id, keep=web.session.token_hash)
    web.log.info("web: %s ended %d other sessions", web.account.address, ended)
    return render.redirect("/account/?done=sessions")
