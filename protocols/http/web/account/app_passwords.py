"""``/account/app-passwords``: passwords the server generates for one mail client each,
limited to some mail protocols, shown once, revocable (``stalwart_py.app_passwords``; the
same directory calls as the API's ``/api/accounts/{address}/app-passwords``)."""

from __future__ import annotations

from protocols.http.messages import Response
from protocols.http.web import render
from protocols.http.web.pages import PageTable, WebRequest, sentence
from stalwart_py import app_passwords
from stalwart_py.store import NotFound, StoreError

pages = PageTable()

LABELS = {
    "imap": "IMAP (reading mail)",
    "smtp": "SMTP (sending mail)",
    "pop3": "POP3 (downloading mail)",
    "managesieve": "ManageSieve (filters)",
}


async def _page(web: WebRequest, *, status: int = 200, **context: object) -> Response:
    listed = await web.server.directory.list_app_passwords(web.account.address)
    context.setdefault("error", "")
    context.setdefault("created", None)
    context.setdefault("name", "")
    return web.render(
        "account/app_passwords.html",
        status=status,
        title="App passwords",
        listed=listed,
        protocols=[(p, LABELS[p]) for p in app_passwords.PROTOCOLS],
        max_name=app_passwords.MAX_NAME_LENGTH,
        revoked=web.query("done") == "revoked",
        **context,
    )


@pages.page("/account/app-passwords", methods=("GET", "POST"))
async def app_passwords_page(web: WebRequest) -> Response:
    if web.method == "GET":
        return await _page(web)
    name = web.field("name")
    try:
        record, password = await web.server.directory.add_app_password(
            web.account.address, name, web.fields("protocol")
        )
    except StoreError as exc:
        return await _page(web, status=422, error=sentence(str(exc)), name=name)
    web.log.info(
        "app password <%s> (id %d, %s) created for %s on the web pages",
        record.name,
        record.id,
        ",".join(record.protocols),
        web.account.address,
    )
    return await _page(web, created=(record, password))


@pages.page("/account/app-passwords/revoke", methods=("POST",))
async def revoke(web: WebRequest) -> Response:
    raw = web.field("id")
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        return await _page(web, status=422, error="No such app password.")
    try:
        await web.server.directory.revoke_app_password(web.account.address, int(raw))
    except NotFound:
        return await _page(web, status=422, error="No such app password.")
    web.log.info("app password %s of %s revoked on the web pages", raw, web.account.address)
    return render.redirect("/account/app-passwords?done=revoked")
