"""Accounts, domains and aliases: ``/api/accounts``, ``/api/domains``, ``/api/aliases``.

Everything goes through the directory (which hashes passwords and checks addresses) or the
store's update call. Answers: 201 with ``Location`` for a creation, 204 for a deletion, 404 for
a path naming nothing, 409 for a conflict (exists already, still in use, your own account),
422 for a request the directory refuses (a domain that is not local, a short password).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from protocols.http.messages import HttpError, Request, Response, json_response, no_content
from protocols.http.router import Param, RouteTable
from protocols.http.schemas import ref
from stalwart_py.directory import normalize
from stalwart_py.store import Account, Alias, AlreadyExists, Domain, NotFound, StoreError

routes = RouteTable()

ADDRESS = Param("address", "the account's address, e.g. alice@example.com")
DOMAIN = Param("name", "the domain name")
ALIAS = Param("address", "the alias: local@domain, or @domain for the catch-all")


def account_json(account: Account) -> dict[str, Any]:
    return {
        "address": account.address,
        "admin": account.is_admin,
        "quota-bytes": account.quota_bytes,
        "quota-messages": account.quota_messages,
        "used-bytes": account.used_bytes,
        "used-messages": account.used_messages,
        "created": account.created,
        "disabled": account.disabled,
    }


def domain_json(domain: Domain) -> dict[str, Any]:
    return {"name": domain.name, "created": domain.created}


def alias_json(alias: Alias) -> dict[str, Any]:
    return {"address": alias.address, "targets": list(alias.targets)}


def refused(exc: StoreError) -> HttpError:
    """A store refusal as an answer: 409 for a conflict, 422 for anything else it refuses."""
    status = 409 if isinstance(exc, AlreadyExists) else 422
    return HttpError(status, str(exc))


def created(path: str, body: dict[str, Any]) -> Response:
    return json_response(201, body, [("Location", path)])


# -- accounts ---------------------------------------------------------------------------------


@routes.get(
    "/api/accounts",
    tag="accounts",
    summary="List the accounts",
    responses={200: ("every account", ref("AccountList"))},
)
async def list_accounts(request: Request) -> Response:
    accounts = await request.session.server.store.list_accounts()
    return json_response(200, {"accounts": [account_json(a) for a in accounts]})


@routes.post(
    "/api/accounts",
    tag="accounts",
    summary="Create an account (its domain must be local)",
    body=ref("NewAccount"),
    responses={
        201: ("created", ref("Account")),
        409: ("the account exists", ref("Error")),
        422: ("refused: not a local domain, a password too short", ref("Error")),
    },
)
async def create_account(request: Request) -> Response:
    data = request.data
    try:
        account = await request.session.server.directory.add_account(
            data["address"],
            data["password"],
            is_admin=data.get("admin", False),
            quota_bytes=_limit(data.get("quota-bytes")),
            quota_messages=_limit(data.get("quota-messages")),
        )
    except StoreError as exc:
        raise refused(exc) from None
    request.session.log.info("account %s created by %s", account.address, _who(request))
    return created(f"/api/accounts/{quote(account.address, safe='@')}", account_json(account))


@routes.get(
    "/api/accounts/{address}",
    tag="accounts",
    params=(ADDRESS,),
    summary="Read an account",
    responses={200: ("the account", ref("Account"))},
)
async def get_account(request: Request) -> Response:
    return json_response(200, account_json(await _account(request)))


@routes.patch(
    "/api/accounts/{address}",
    tag="accounts",
    params=(ADDRESS,),
    summary="Change an account's password, quotas, administrator right or disabled state",
    body=ref("AccountUpdate"),
    responses={
        200: ("the account as changed", ref("Account")),
        409: (
            "an administrator cannot take away their own right or disable themselves",
            ref("Error"),
        ),
        422: ("refused: a password too short", ref("Error")),
    },
)
async def update_account(request: Request) -> Response:
    account = await _account(request)
    data = request.data
    session = request.session
    if data.get("admin") is False and _is_self(request, account):
        raise HttpError(409, "you cannot take away your own administrator right")
    if data.get("disabled") is True and _is_self(request, account):
        raise HttpError(409, "you cannot disable your own account")
    changes: dict[str, Any] = {}
    if "admin" in data:
        changes["is_admin"] = data["admin"]
    if "disabled" in data:
        changes["disabled"] = data["disabled"]
    for key, name in (("quota-bytes", "quota_bytes"), ("quota-messages", "quota_messages")):
        if key in data:
            changes[name] = _limit(data[key])
    try:
        if "password" in data:
            account = await session.server.directory.set_password(account.address, data["password"])
        if changes:
            account = await session.server.store.update_account(account.address, **changes)
    except NotFound:
        raise HttpError(404, f"no account {account.address}") from None
    except StoreError as exc:
        raise refused(exc) from None
    changed = ", ".join(k for k in data) or "nothing"
    session.log.info("account %s changed (%s) by %s", account.address, changed, _who(request))
    return json_response(200, account_json(account))


@routes.delete(
    "/api/accounts/{address}",
    tag="accounts",
    params=(ADDRESS,),
    summary="Delete an account with its mailboxes, messages and scripts",
    responses={
        204: ("deleted", None),
        409: ("an administrator cannot delete their own account", ref("Error")),
    },
)
async def delete_account(request: Request) -> Response:
    account = await _account(request)
    if _is_self(request, account):
        raise HttpError(409, "you cannot delete your own account")
    try:
        await request.session.server.directory.delete_account(account.address)
    except NotFound:
        raise HttpError(404, f"no account {account.address}") from None
    request.session.log.info("account %s deleted by %s", account.address, _who(request))
    return no_content()


async def _account(request: Request) -> Account:
    address = normalize(request.params["address"])
    account = await request.session.server.store.get_account(address)
    if account is None:
        raise HttpError(404, f"no account {address}")
    return account


def _is_self(request: Request, account: Account) -> bool:
    return request.account is not None and request.account.id == account.id


def _who(request: Request) -> str:
    return request.account.address if request.account is not None else "?"


def _limit(value: float | None) -> int | None:
    return None if value is None else int(value)


# -- domains ----------------------------------------------------------------------------------


@routes.get(
    "/api/domains",
    tag="domains",
    summary="List the local domains",
    responses={200: ("every local domain", ref("DomainList"))},
)
async def list_domains(request: Request) -> Response:
    domains = await request.session.server.directory.list_domains()
    return json_response(200, {"domains": [domain_json(d) for d in domains]})


@routes.post(
    "/api/domains",
    tag="domains",
    summary="Add a local domain",
    body=ref("NewDomain"),
    responses={
        201: ("added", ref("Domain")),
        409: ("the domain exists", ref("Error")),
        422: ("refused: not a valid domain name", ref("Error")),
    },
)
async def create_domain(request: Request) -> Response:
    try:
        domain = await request.session.server.directory.add_domain(request.data["name"])
    except StoreError as exc:
        raise refused(exc) from None
    request.session.log.info("domain %s added by %s", domain.name, _who(request))
    return created(f"/api/domains/{quote(domain.name)}", domain_json(domain))


@routes.delete(
    "/api/domains/{name}",
    tag="domains",
    params=(DOMAIN,),
    summary="Remove a local domain with its aliases (it must have no accounts left)",
    responses={204: ("removed", None), 409: ("it still has accounts", ref("Error"))},
)
async def delete_domain(request: Request) -> Response:
    name = normalize(request.params["name"])
    try:
        await request.session.server.directory.delete_domain(name)
    except NotFound:
        raise HttpError(404, f"no local domain {name}") from None
    except StoreError as exc:
        raise HttpError(409, str(exc)) from None
    request.session.log.info("domain %s removed by %s", name, _who(request))
    return no_content()


# -- aliases ----------------------------------------------------------------------------------


@routes.get(
    "/api/aliases",
    tag="aliases",
    summary="List the aliases",
    responses={200: ("every alias", ref("AliasList"))},
)
async def list_aliases(request: Request) -> Response:
    aliases = await request.session.server.store.list_aliases()
    return json_response(200, {"aliases": [alias_json(a) for a in aliases]})


@routes.post(
    "/api/aliases",
    tag="aliases",
    summary="Create an alias, or add targets to an existing one",
    body=ref("NewAlias"),
    responses={
        200: ("targets added to the alias", ref("Alias")),
        201: ("created", ref("Alias")),
        422: ("refused: not a local domain, not an address", ref("Error")),
    },
)
async def create_alias(request: Request) -> Response:
    directory = request.session.server.directory
    address = normalize(request.data["address"])
    existed = await request.session.server.store.get_alias(address) is not None
    try:
        alias = await directory.add_alias(address, request.data["targets"])
    except StoreError as exc:
        raise refused(exc) from None
    request.session.log.info("alias %s -> %s by %s", alias.address, alias.targets, _who(request))
    if existed:
        return json_response(200, alias_json(alias))
    return created(f"/api/aliases/{quote(alias.address, safe='@')}", alias_json(alias))


@routes.get(
    "/api/aliases/{address}",
    tag="aliases",
    params=(ALIAS,),
    summary="Read an alias",
    responses={200: ("the alias", ref("Alias"))},
)
async def get_alias(request: Request) -> Response:
    address = normalize(request.params["address"])
    alias = await request.session.server.store.get_alias(address)
    if alias is None:
        raise HttpError(404, f"no alias {address}")
    return json_response(200, alias_json(alias))


@routes.delete(
    "/api/aliases/{address}",
    tag="aliases",
    params=(ALIAS,),
    query=(Param("target", "remove only this target (repeatable); without it, the whole alias"),),
    summary="Delete an alias, or some of its targets",
    responses={204: ("deleted", None)},
)
async def delete_alias(request: Request) -> Response:
    address = normalize(request.params["address"])
    targets = request.query.get("target", [])
    try:
        await request.session.server.directory.delete_alias(address, targets)
    except NotFound as exc:
        raise HttpError(404, str(exc)) from None
    what = ", ".join(targets) if targets else "all targets"
    request.session.log.info("alias %s: removed %s by %s", address, what, _who(request))
    return no_content()
