"""``/admin/listeners``: every running listener with its state and load, each with a button to
disable or enable it (``ListenerRegistry.set_suspended``, as ``/api/listeners/{id}/disable``);
and ``/admin/reload``: reload the configuration file, its errors shown on the page
(``run_reload``, the same as ``POST /api/reload``).

Disabling the listener that serves the page would cut this browser off (the way back is a
reload, ``stalwart-py listener enable`` on the server or a restart): it takes a confirmation
page first, as the API takes ``?force=true``.
"""

from __future__ import annotations

from typing import Any

from protocols.http.handlers.control import run_reload
from protocols.http.messages import HttpError, Response
from protocols.http.web import render
from protocols.http.web.admin.common import confirmation, confirmed
from protocols.http.web.pages import Level, PageTable, WebRequest
from stalwart_py.listeners import ListenerRegistry

pages = PageTable()


def _registry(web: WebRequest) -> ListenerRegistry:
    registry = web.server.listeners
    if registry is None:
        raise HttpError(503, "The listener registry is not running.")
    return registry


def _listener(web: WebRequest) -> dict[str, Any]:
    lid = web.params["id"]
    for status in _registry(web).status():
        if status["id"] == lid:
            return status
    raise HttpError(404, f"There is no running listener {lid}.")


@pages.page("/admin/listeners", level=Level.ADMIN)
async def listeners(web: WebRequest) -> Response:
    changed = web.query("changed")
    return web.render(
        "admin/listeners.html",
        title="Listeners",
        listeners=_registry(web).status(),
        serving=web.request.session.listener,
        changed=changed,
        state=web.query("state"),
    )


async def _set(web: WebRequest, suspended: bool) -> Response:
    lid = _listener(web)["id"]
    serving = web.request.session.listener
    if suspended and lid == serving and not confirmed(web):
        return confirmation(
            web,
            title=f"Disable {lid}, which serves this page?",
            action=f"/admin/listeners/{lid}/disable",
            back="/admin/listeners",
            question=(
                f"This page came through listener {lid}. Disabled, it refuses new connections, "
                "this browser's included: the way back is a reload, `stalwart-py listener "
                f"enable {lid}` on the server, another listener's pages, or a restart."
            ),
            button=f"Disable {lid}",
        )
    _registry(web).set_suspended(lid, suspended)
    state = "disabled" if suspended else "enabled"
    web.log.info("listener %s %s by %s on the web pages", lid, state, web.account.address)
    return render.redirect(f"/admin/listeners?changed={lid}&state={state}")


@pages.page("/admin/listeners/{id}/disable", methods=("POST",), level=Level.ADMIN)
async def disable(web: WebRequest) -> Response:
    return await _set(web, True)


@pages.page("/admin/listeners/{id}/enable", methods=("POST",), level=Level.ADMIN)
async def enable(web: WebRequest) -> Response:
    return await _set(web, False)


@pages.page("/admin/reload", methods=("GET", "POST"), level=Level.ADMIN)
async def reload(web: WebRequest) -> Response:
    if web.method == "GET":
        return web.render("admin/reload.html", title="Reload", result=None, applied=False)
    applied, result = await run_reload(web.server, web.log, web.account.address)
    return web.render(
        "admin/reload.html",
        status=200 if applied else 422,
        title="Reload",
        result=result,
        applied=applied,
    )
