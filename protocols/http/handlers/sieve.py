"""The administrator's global Sieve scripts (RFC 6609 ``include :global``).

A global script is one of the server, not of an account: users include it with
``include :global "<name>"`` and cannot change it. It is checked as ManageSieve checks an
upload: a syntax error, an unknown extension or an include loop through other global scripts
is a 400 naming the line and column. The same scripts are reachable over ManageSieve, by an
administrator, as ``global/<name>``.
"""

from __future__ import annotations

import re
from typing import Any

from protocols.http.messages import HttpError, Request, Response, json_response, no_content
from protocols.http.router import Param, RouteTable
from protocols.http.schemas import ref
from stalwart_py.sieve import Limits, SieveSyntaxError, parse_script
from stalwart_py.sieve.include import check_upload
from stalwart_py.sieve.validate import GLOBAL_PREFIX, SCRIPT_NAME
from stalwart_py.store import NotFound

routes = RouteTable()

SIEVE_TYPE = "application/sieve"  # RFC 5804 section 7.1
MAX_SCRIPT_SIZE = 1 << 20  # as the interpreter's Limits.max_script_size
NAME = Param("name", "the global script's name (RFC 5804 1.6: no controls; here no '/')")
SCRIPT_BODY: dict[str, Any] = {
    "type": "object",
    "properties": {"script": {"type": "string", "description": "the Sieve script"}},
    "required": ["script"],
    "additionalProperties": False,
}
SCRIPT_LIST: dict[str, Any] = {
    "type": "object",
    "properties": {
        "scripts": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "size": {"type": "integer"}},
                "required": ["name", "size"],
            },
        }
    },
    "required": ["scripts"],
}
_LINE_BREAKS = re.compile(r"\r?\n")


def _name(request: Request) -> str:
    name = request.params["name"]
    if not SCRIPT_NAME.match(name):
        raise HttpError(404, f"no global script {name[:60]!r}")
    return name


@routes.get(
    "/api/sieve/global",
    tag="sieve",
    summary="List the global Sieve scripts (included with include :global)",
    responses={200: ("the global scripts", SCRIPT_LIST)},
)
async def list_global_scripts(request: Request) -> Response:
    scripts = await request.session.server.store.list_global_scripts()
    listing = [{"name": s.name, "size": len(s.body.encode("utf-8"))} for s in scripts]
    return json_response(200, {"scripts": listing})


@routes.get(
    "/api/sieve/global/{name}",
    tag="sieve",
    params=(NAME,),
    summary="Read a global Sieve script",
    responses={200: ("the script", None)},
    response_type=SIEVE_TYPE,
)
async def get_global_script(request: Request) -> Response:
    name = _name(request)
    script = await request.session.server.store.get_global_script(name)
    if script is None:
        raise HttpError(404, f"no global script {name!r}")
    return Response(200, script.body.encode("utf-8"), f"{SIEVE_TYPE}; charset=utf-8")


@routes.add(
    "PUT",
    "/api/sieve/global/{name}",
    tag="sieve",
    params=(NAME,),
    summary="Create or replace a global Sieve script, checked as ManageSieve checks one",
    body=SCRIPT_BODY,
    body_types=("application/json", SIEVE_TYPE),
    responses={
        204: ("stored", None),
        400: ("the script is not valid: the error names its line and column", ref("Error")),
    },
)
async def put_global_script(request: Request) -> Response:
    name = request.params["name"]
    if not SCRIPT_NAME.match(name):
        raise HttpError(400, f"invalid script name {name[:60]!r}")
    if request.content_type == SIEVE_TYPE:
        try:
            text = request.body.decode("utf-8")
        except UnicodeDecodeError:
            raise HttpError(400, "the script is not valid UTF-8") from None
    else:
        text = request.data["script"]
    store = request.session.server.store
    try:
        script = parse_script(text, max_size=MAX_SCRIPT_SIZE)
        await check_upload(
            store,
            None,
            GLOBAL_PREFIX + name,
            script,
            lambda body: parse_script(body, max_size=MAX_SCRIPT_SIZE),
            Limits().max_include_depth,
        )
    except SieveSyntaxError as exc:
        raise HttpError(400, _LINE_BREAKS.sub(" ", str(exc))) from None
    await store.put_global_script(name, text)
    who = request.account.address if request.account else "?"
    request.session.log.info("sieve: global script %r stored by %s", name, who)
    return no_content()


@routes.delete(
    "/api/sieve/global/{name}",
    tag="sieve",
    params=(NAME,),
    summary="Delete a global Sieve script (scripts that include it without :optional then fail)",
    responses={204: ("deleted", None)},
)
async def delete_global_script(request: Request) -> Response:
    name = _name(request)
    try:
        await request.session.server.store.delete_global_script(name)
    except NotFound:
        raise HttpError(404, f"no global script {name!r}") from None
    who = request.account.address if request.account else "?"
    request.session.log.info("sieve: global script %r deleted by %s", name, who)
    return no_content()
