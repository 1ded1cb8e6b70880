"""``/account/filters``: vacation reply, forwarding and "from X into folder Y" rules made
into a Sieve script (``sieve_rules``), and ``/account/filters/script``, the active script
itself in an editor that reports errors by line and column.

Scripts are stored as ManageSieve stores them (``Store.put_script`` and
``set_active_script``): the form writes the script ``sieve_rules.SCRIPT_NAME`` and makes it
the active one; the editor writes the active script (that one when none is active). A script
uploaded over ManageSieve stays stored when the form makes its own active, and the page says
so before. Every script is checked as ManageSieve checks an upload (``parse_script``, and
``check_upload`` for include loops) before it is stored.
"""

from __future__ import annotations

from protocols.http.messages import Response
from protocols.http.web import render
from protocols.http.web.account.sieve_rules import SCRIPT_NAME, Filters, check, generate
from protocols.http.web.pages import PageTable, WebRequest
from stalwart_py.sieve import Limits, SieveSyntaxError, parse_script
from stalwart_py.sieve.include import check_upload

pages = PageTable()
MAX_SCRIPT_SIZE = 256 * 1024  # as ManageSieve's default managesieve.max-script-size
BLANK_RULES = 2  # empty rule rows offered after the existing ones


async def _save(web: WebRequest, name: str, text: str) -> None:
    """Check ``text`` as ManageSieve checks an upload, store it as ``name`` and make it the
    active script; SieveSyntaxError with the line and column when it is not valid."""
    store, account_id = web.server.store, web.account.id
    script = parse_script(text, max_size=MAX_SCRIPT_SIZE)
    await check_upload(
        store,
        account_id,
        name,
        script,
        lambda body: parse_script(body, max_size=MAX_SCRIPT_SIZE),
        Limits().max_include_depth,
    )
    await store.put_script(account_id, name, text)
    await store.set_active_script(account_id, name)


def _from_form(web: WebRequest) -> Filters:
    senders, folders = web.fields("rule-from"), web.fields("rule-folder")
    rules = [
        (sender.strip(), folder.strip())
        for sender, folder in zip(senders, folders, strict=False)
        if sender.strip() or folder.strip()
    ]
    return Filters(
        vacation=web.field("vacation") == "on",
        subject=web.field("subject").strip(),
        body=web.field("body"),
        start=web.field("start").strip(),
        end=web.field("end").strip(),
        forward=web.field("forward").strip(),
        keep_copy=web.field("keep-copy") == "on",
        rules=rules,
    )


@pages.page("/account/filters", methods=("GET", "POST"))
async def filters(web: WebRequest) -> Response:
    active = await web.server.store.active_script(web.account.id)
    ours = Filters.from_script(active.body) if active and active.name == SCRIPT_NAME else None
    context = {
        "title": "Mail filters",
        "other": active.name if active and active.name != SCRIPT_NAME else "",
        "edited": active is not None
        and active.name == SCRIPT_NAME
        and (ours is None or not ours.matches(active.body)),
        "done": web.query("done") == "saved",
        "blank": BLANK_RULES,
    }
    if web.method == "GET":
        return web.render("account/filters.html", filters=ours or Filters(), errors=[], **context)
    wanted = _from_form(web)
    errors = check(wanted, web.account.address)
    if not errors:
        try:
            await _save(web, SCRIPT_NAME, generate(wanted))
        except SieveSyntaxError as exc:  # a bug of the generator: say it, keep the old script
            web.log.error("web: the filters page made a script that does not parse: %s", exc)
            errors = [f"These settings could not be made into a script ({exc})."]
    if errors:
        return web.render(
            "account/filters.html", status=422, filters=wanted, errors=errors, **context
        )
    web.log.info("web: %s saved its mail filters", web.account.address)
    return render.redirect("/account/filters?done=saved")


@pages.page("/account/filters/script", methods=("GET", "POST"))
async def script(web: WebRequest) -> Response:
    store = web.server.store
    active = await store.active_script(web.account.id)
    name = active.name if active is not None else SCRIPT_NAME
    context = {"title": "Filter script (Sieve)", "name": name, "done": web.query("done")}
    if web.method == "GET":
        text = active.body if active is not None else ""
        return web.render("account/script.html", text=text, error=None, **context)
    text = web.field("script")
    if not text.strip():
        await store.set_active_script(web.account.id, None)
        web.log.info("web: %s turned its filters off", web.account.address)
        return render.redirect("/account/filters/script?done=off")
    try:
        await _save(web, name, text)
    except SieveSyntaxError as exc:
        return web.render("account/script.html", status=422, text=text, error=exc, **context)
    web.log.info("web: %s saved its filter script %r", web.account.address, name)
    return render.redirect("/account/filters/script?done=saved")
