"""The running server: listeners (status, disable, enable), reload, the effective settings.

Disabling a listener is Momentum's ``config set esmtp_listener listen :25 enable false`` at run
time: its sockets stay bound, new connections hear the protocol's refusal (SMTP 421, IMAP
BYE, HTTP 503), sessions already open go on. It lasts until enabled again, the next reload
(the file says which listeners run; the report lists those ``re-enabled``) or the server stops;
the configuration file is not changed.

Disabling the listener a request came through would cut off the API that could enable it
again: that answers 409 unless the request says ``?force=true`` (the way back is then a
reload, ``stalwart-py listener enable ID`` on the server's machine, or a restart).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from protocols.http.messages import HttpError, Request, Response, json_response
from protocols.http.router import Param, RouteTable
from protocols.http.schemas import ref
from stalwart_py.config import ConfigError, explain_json
from stalwart_py.listeners import ApplyError, ListenerRegistry

if TYPE_CHECKING:
    from stalwart_py.context import ServerContext

routes = RouteTable()

LISTENER = Param("id", "the listener's id, as in [server.listener.<id>]")


def _registry(request: Request) -> ListenerRegistry:
    registry = request.session.server.listeners
    if registry is None:
        raise HttpError(503, "the listener registry is not running")
    return registry


def _listener(request: Request) -> dict[str, Any]:
    lid = request.params["id"]
    for status in _registry(request).status():
        if status["id"] == lid:
            return status
    raise HttpError(404, f"no running listener {lid}")


@routes.get(
    "/api/listeners",
    tag="listeners",
    summary="List the running listeners with their bound addresses, TLS, load and state",
    responses={200: ("every running listener", ref("ListenerList"))},
)
async def list_listeners(request: Request) -> Response:
    return json_response(200, {"listeners": _registry(request).status()})


@routes.get(
    "/api/listeners/{id}",
    tag="listeners",
    params=(LISTENER,),
    summary="Read one listener's state",
    responses={200: ("the listener", ref("Listener"))},
)
async def get_listener(request: Request) -> Response:
    return json_response(200, _listener(request))


async def _suspend(request: Request, suspended: bool) -> Response:
    lid = _listener(request)["id"]
    force = suspended and _force(request)  # checked whichever listener it names
    if suspended and lid == request.session.listener and not force:
        raise HttpError(
            409,
            f"this request came through listener {lid}: disabling it would leave this API "
            "unreachable through it; use ?force=true to do so anyway (then a reload, "
            f"`stalwart-py listener enable {lid}` or a restart brings it back)",
        )
    _registry(request).set_suspended(lid, suspended)
    who = request.account.address if request.account else "?"
    state = "disabled" if suspended else "enabled"
    request.session.log.info("listener %s %s by %s", lid, state, who)
    return json_response(200, _listener(request))


def _force(request: Request) -> bool:
    value = request.query_value("force")
    if value not in (None, "true", "false"):
        raise HttpError(400, "force: expected true or false")
    return value == "true"


@routes.post(
    "/api/listeners/{id}/disable",
    tag="listeners",
    params=(LISTENER,),
    query=(
        Param(
            "force",
            "true: disable it even when this request came through it",
            {"type": "boolean", "default": False},
        ),
    ),
    summary="Suspend a listener until enabled again or the next reload: new connections are "
    "refused, open sessions go on",
    responses={
        200: ("the listener, now disabled", ref("Listener")),
        409: ("the request came through this listener, without force=true", ref("Error")),
    },
)
async def disable_listener(request: Request) -> Response:
    return await _suspend(request, True)


@routes.post(
    "/api/listeners/{id}/enable",
    tag="listeners",
    params=(LISTENER,),
    summary="Resume a suspended listener",
    responses={200: ("the listener, now enabled", ref("Listener"))},
)
async def enable_listener(request: Request) -> Response:
    return await _suspend(request, False)


@routes.post(
    "/api/reload",
    tag="server",
    summary="Re-read the configuration file and apply it",
    responses={
        200: ("applied; what changed", ref("ReloadReport")),
        422: ("the file is invalid or cannot be applied; nothing changed", ref("ReloadFailure")),
        503: ("this server cannot reload", ref("Error")),
    },
)
async def reload(request: Request) -> Response:
    session = request.session
    who = request.account.address if request.account else "?"
    applied, body = await run_reload(session.server, session.log, who)
    return json_response(200 if applied else 422, body)


async def run_reload(
    server: ServerContext, log: logging.LoggerAdapter[logging.Logger], who: str
) -> tuple[bool, dict[str, Any]]:
    """Reload the configuration file, as ``POST /api/reload`` and the administrator's reload
    page do: whether it was applied, and the answer's body (what changed, or the errors with
    ``nothing changed``). HttpError 503 when this server cannot reload."""
    if server.reload is None:
        raise HttpError(503, "this server cannot reload")
    log.info("reload asked by %s", who)
    try:
        report = await server.reload()
    except ConfigError as exc:
        return False, _failure("the configuration is invalid", [str(i) for i in exc.issues])
    except ApplyError as exc:
        return False, _failure("the configuration cannot be applied", exc.problems)
    changes = report.as_dict()
    return True, {"changed": any(changes.values()), **changes}


def _failure(error: str, problems: list[str]) -> dict[str, Any]:
    return {"error": f"{error}; nothing changed", "errors": problems, "changed": False}


@routes.get(
    "/api/config/effective",
    tag="server",
    summary="Every listener's effective settings and where each value came from",
    responses={200: ("as check-config --explain shows it", ref("EffectiveConfig"))},
)
async def effective_config(request: Request) -> Response:
    return json_response(200, explain_json(request.session.server.config))
