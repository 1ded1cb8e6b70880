"""``/admin/aliases``: the aliases (``local@domain``, or ``@domain`` for a domain's catch-all)
with their targets; add one (or targets to one); remove one.

The same calls as ``/api/aliases``: ``Directory.add_alias`` (the alias's domain local, each
target an address) and ``Directory.delete_alias``.
"""

from __future__ import annotations

import re

from protocols.http.messages import HttpError, Response
from protocols.http.web import render
from protocols.http.web.admin.common import page_number, paged
from protocols.http.web.pages import Level, PageTable, WebRequest, sentence
from stalwart_py.directory import normalize
from stalwart_py.store import NotFound, StoreError

pages = PageTable()

MAX_TARGETS = 100
DONE = {"added": "The alias is saved.", "removed": "The alias is removed."}


async def _list(web: WebRequest, *, status: int = 200, **context: object) -> Response:
    aliases = await web.server.store.list_aliases()
    context.setdefault("error", "")
    context.setdefault("form", {"address": "", "targets": ""})
    return web.render(
        "admin/aliases.html",
        status=status,
        title="Aliases",
        listing=paged(aliases, page_number(web), "/admin/aliases?"),
        done=DONE.get(web.query("done"), ""),
        **context,
    )


@pages.page("/admin/aliases", methods=("GET", "POST"), level=Level.ADMIN)
async def aliases(web: WebRequest) -> Response:
    if web.method == "GET":
        return await _list(web)
    address, text = web.field("address").strip(), web.field("targets")
    # one target a line, or separated by commas or spaces
    targets = [t for t in re.split(r"[\s,;]+", text) if t]
    try:
        if not targets:
            raise ValueError("Give at least one target address.")
        if len(targets) > MAX_TARGETS:
            raise ValueError(f"At most {MAX_TARGETS} targets at once.")
        alias = await web.server.directory.add_alias(normalize(address), targets)
    except (ValueError, StoreError) as exc:
        form = {"address": address, "targets": text}
        return await _list(web, status=422, error=sentence(str(exc)), form=form)
    web.log.info(
        "alias %s -> %s by %s on the web pages", alias.address, alias.targets, web.account.address
    )
    return render.redirect("/admin/aliases?done=added")


@pages.page("/admin/aliases/{address}/remove", methods=("POST",), level=Level.ADMIN)
async def remove(web: WebRequest) -> Response:
    address = normalize(web.params["address"])
    try:
        await web.server.directory.delete_alias(address, [])
    except NotFound:
        raise HttpError(404, f"There is no alias {address}.") from None
    web.log.info("alias %s removed by %s on the web pages", address, web.account.address)
    return render.redirect("/admin/aliases?done=removed")
