"""``/admin/accounts``: the accounts, paged and searchable; add one; one account's page with
its quota, a new password and deletion (after a confirmation page).

The same calls as ``/api/accounts``: ``Directory.add_account`` (the address checked, the
domain local, the password's rules), ``Directory.set_password`` (which ends the account's web
sessions), ``Store.update_account`` for the quotas, ``Directory.delete_account``; and the same
refusal of deleting one's own account.
"""

from __future__ import annotations

from protocols.http.messages import HttpError, Response
from protocols.http.web import render, sessions
from protocols.http.web.admin.common import (
    base_link,
    confirmation,
    confirmed,
    optional_count,
    page_number,
    paged,
    path_part,
)
from protocols.http.web.pages import Level, PageTable, WebRequest, sentence
from stalwart_py.directory import normalize
from stalwart_py.store import Account, NotFound, StoreError

pages = PageTable()

MIB = 1024 * 1024
MAX_SEARCH = 200
DONE = {
    "created": "The account is created.",
    "quota": "The quota is saved.",
    "password": "The password is changed; the account's web sessions are ended.",
    "deleted": "The account is deleted.",
    "disabled": "The account is disabled: its logins are refused, its web sessions ended.",
    "enabled": "The account is enabled again.",
}


async def _list(web: WebRequest, *, status: int = 200, **context: object) -> Response:
    search = web.query("q")[:MAX_SEARCH].strip().lower()
    accounts = await web.server.store.list_accounts()
    if search:
        accounts = [a for a in accounts if search in a.address]
    context.setdefault("error", "")
    context.setdefault("form", {"address": "", "quota": ""})
    return web.render(
        "admin/accounts.html",
        status=status,
        title="Accounts",
        search=search,
        total=len(accounts),
        listing=paged(accounts, page_number(web), base_link("/admin/accounts", q=search)),
        min_length=web.server.directory.settings.min_password_length,
        done=DONE.get(web.query("done"), ""),
        mib=MIB,
        **context,
    )


@pages.page("/admin/accounts", methods=("GET", "POST"), level=Level.ADMIN)
async def accounts(web: WebRequest) -> Response:
    if web.method == "GET":
        return await _list(web)
    address, password = web.field("address").strip(), web.field("password")
    form = {"address": address, "quota": web.field("quota")}
    try:
        quota = optional_count(web.field("quota"), "Quota", MIB)
        if password != web.field("confirm"):
            raise ValueError("The password and its confirmation differ.")
        account = await web.server.directory.add_account(
            address, password, is_admin=web.field("admin") == "yes", quota_bytes=quota
        )
    except (ValueError, StoreError) as exc:
        return await _list(web, status=422, error=sentence(str(exc)), form=form)
    web.log.info("account %s created by %s on the web pages", account.address, web.account.address)
    return render.redirect(f"/admin/accounts/{path_part(account.address)}?done=created")


async def _account(web: WebRequest) -> Account:
    address = normalize(web.params["address"])
    account = await web.server.store.get_account(address)
    if account is None:
        raise HttpError(404, f"There is no account {address}.")
    return account


def _show(web: WebRequest, account: Account, *, status: int = 200, error: str = "") -> Response:
    return web.render(
        "admin/account.html",
        status=status,
        title=account.address,
        shown=account,
        link=path_part(account.address),
        error=error,
        done=DONE.get(web.query("done"), ""),
        min_length=web.server.directory.settings.min_password_length,
        mib=MIB,
        own=account.id == web.account.id,
    )


@pages.page("/admin/accounts/{address}", level=Level.ADMIN)
async def account(web: WebRequest) -> Response:
    return _show(web, await _account(web))


@pages.page("/admin/accounts/{address}/quota", methods=("POST",), level=Level.ADMIN)
async def quota(web: WebRequest) -> Response:
    shown = await _account(web)
    try:
        quota_bytes = optional_count(web.field("quota"), "Quota", MIB)
        quota_messages = optional_count(web.field("messages"), "Messages")
        await web.server.store.update_account(
            shown.address, quota_bytes=quota_bytes, quota_messages=quota_messages
        )
    except (ValueError, StoreError) as exc:
        return _show(web, shown, status=422, error=sentence(str(exc)))
    web.log.info("account %s: quota changed by %s", shown.address, web.account.address)
    return render.redirect(f"/admin/accounts/{path_part(shown.address)}?done=quota")


@pages.page("/admin/accounts/{address}/password", methods=("POST",), level=Level.ADMIN)
async def password(web: WebRequest) -> Response:
    shown = await _account(web)
    new = web.field("password")
    try:
        if new != web.field("confirm"):
            raise ValueError("The password and its confirmation differ.")
        await web.server.directory.set_password(shown.address, new)
    except (ValueError, StoreError) as exc:
        return _show(web, shown, status=422, error=sentence(str(exc)))
    web.log.info("account %s: password set by %s", shown.address, web.account.address)
    target = f"/admin/accounts/{path_part(shown.address)}?done=password"
    if shown.id != web.account.id:
        return render.redirect(target)
    # one's own: every session ended with the old hash, this one too; this browser gets a
    # new one (as /account/password does)
    changed = await web.server.store.get_account(shown.address) or shown
    cookie, _ = await sessions.begin(web.request, changed, pending=False)
    return render.redirect(target, [("Set-Cookie", cookie)])


@pages.page("/admin/accounts/{address}/disable", methods=("POST",), level=Level.ADMIN)
async def disable(web: WebRequest) -> Response:
    """Refuse every login of the account (``Store.update_account(disabled=True)``, as
    ``PATCH /api/accounts/{address}`` with ``disabled``); mail for it is still accepted."""
    return await _set_disabled(web, True)


@pages.page("/admin/accounts/{address}/enable", methods=("POST",), level=Level.ADMIN)
async def enable(web: WebRequest) -> Response:
    return await _set_disabled(web, False)


async def _set_disabled(web: WebRequest, disabled: bool) -> Response:
    shown = await _account(web)
    if disabled and shown.id == web.account.id:
        return _show(web, shown, status=409, error="You cannot disable your own account.")
    try:
        await web.server.store.update_account(shown.address, disabled=disabled)
    except NotFound:
        raise HttpError(404, f"There is no account {shown.address}.") from None
    state = "disabled" if disabled else "enabled"
    web.log.info("account %s %s by %s on the web pages", shown.address, state, web.account.address)
    return render.redirect(f"/admin/accounts/{path_part(shown.address)}?done={state}")


@pages.page("/admin/accounts/{address}/delete", methods=("GET", "POST"), level=Level.ADMIN)
async def delete(web: WebRequest) -> Response:
    """GET (or a POST without ``confirm=yes``): the confirmation page; its form deletes."""
    shown = await _account(web)
    if shown.id == web.account.id:
        return _show(web, shown, status=409, error="You cannot delete your own account.")
    if not confirmed(web):
        return confirmation(
            web,
            title=f"Delete {shown.address}?",
            action=f"/admin/accounts/{path_part(shown.address)}/delete",
            back=f"/admin/accounts/{path_part(shown.address)}",
            question=(
                f"Delete the account {shown.address} with all its mailboxes, messages and "
                "filters? This cannot be undone."
            ),
            button="Delete the account",
        )
    try:
        await web.server.directory.delete_account(shown.address)
    except NotFound:
        raise HttpError(404, f"There is no account {shown.address}.") from None
    web.log.info("account %s deleted by %s on the web pages", shown.address, web.account.address)
    return render.redirect("/admin/accounts?done=deleted")
