"""An account's app passwords: ``/api/accounts/{address}/app-passwords``.

An administrator may manage any account's, an account its own (``Access.ACCOUNT``), each
signing in with their own password: an app password is never accepted here. The generated
password is in the creation's answer and nowhere else, never in the log
(``stalwart_py.app_passwords``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from protocols.http.handlers.directory import ADDRESS, created, refused
from protocols.http.messages import HttpError, Request, Response, json_response, no_content
from protocols.http.router import Access, Param, RouteTable
from protocols.http.schemas import ref
from stalwart_py.directory import normalize
from stalwart_py.store import AppPassword, NotFound, StoreError

routes = RouteTable()

APP_PASSWORD = Param("id", "the app password's id", {"type": "integer", "minimum": 0})


def app_password_json(app_password: AppPassword) -> dict[str, Any]:
    return {
        "id": app_password.id,
        "name": app_password.name,
        "protocols": list(app_password.protocols),
        "created": app_password.created,
    }


def managed_address(request: Request) -> str:
    """The account of the path, when the signed-in account may manage it (itself, or any
    account for an administrator); 403 otherwise, decided before any lookup, so that it
    tells a non-administrator nothing of other accounts. Also for two-factor sign-in."""
    address = normalize(request.params["address"])
    me = request.account
    if me is None or not (me.is_admin or me.address == address):
        raise HttpError(403, "only an administrator may manage another account's sign-in")
    return address


@routes.get(
    "/api/accounts/{address}/app-passwords",
    tag="accounts",
    access=Access.ACCOUNT,
    params=(ADDRESS,),
    summary="List an account's app passwords (never the passwords)",
    responses={200: ("the app passwords", ref("AppPasswordList"))},
)
async def list_app_passwords(request: Request) -> Response:
    try:
        listed = await request.session.server.directory.list_app_passwords(managed_address(request))
    except NotFound as exc:
        raise HttpError(404, str(exc)) from None
    return json_response(200, {"app-passwords": [app_password_json(a) for a in listed]})


@routes.post(
    "/api/accounts/{address}/app-passwords",
    tag="accounts",
    access=Access.ACCOUNT,
    params=(ADDRESS,),
    summary="Generate an app password for some mail protocols; the answer shows it once",
    body=ref("NewAppPassword"),
    responses={
        201: ("created", ref("CreatedAppPassword")),
        409: ("the account has an app password of that name", ref("Error")),
        422: ("refused: the name, or too many app passwords", ref("Error")),
    },
)
async def create_app_password(request: Request) -> Response:
    address = managed_address(request)
    data = request.data
    directory = request.session.server.directory
    try:
        record, password = await directory.add_app_password(
            address, data["name"], data["protocols"]
        )
    except NotFound as exc:
        raise HttpError(404, str(exc)) from None
    except StoreError as exc:
        raise refused(exc) from None
    request.session.log.info(
        "app password <%s> (id %d, %s) created for %s by %s",
        record.name,
        record.id,
        ",".join(record.protocols),
        address,
        request.account.address if request.account else "?",
    )
    path = f"/api/accounts/{quote(address, safe='@')}/app-passwords/{record.id}"
    return created(path, {**app_password_json(record), "password": password})


@routes.delete(
    "/api/accounts/{address}/app-passwords/{id}",
    tag="accounts",
    access=Access.ACCOUNT,
    params=(ADDRESS, APP_PASSWORD),
    summary="Revoke an app password, at once in every worker",
    responses={204: ("revoked", None)},
)
async def revoke_app_password(request: Request) -> Response:
    address = managed_address(request)
    raw = request.params["id"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise HttpError(404, f"no app password {raw[:30]!r}")
    try:
        await request.session.server.directory.revoke_app_password(address, int(raw))
    except NotFound as exc:
        raise HttpError(404, str(exc)) from None
    request.session.log.info(
        "app password %s of %s revoked by %s",
        raw,
        address,
        request.account.address if request.account else "?",
    )
    return no_content()
