"""``GET /api/dns/{domain}``: the DNS records a hosted domain needs (``stalwart-py dns records``)
and, with ``check=true``, what DNS says of each (``stalwart-py dns check``): for the admin web
page to come. Unlike the command, the ports are the ones the running listeners are bound to.
The records are checked at once, side by side, so an unreachable resolver costs one timeout,
not one per record."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from protocols.http.messages import HttpError, Request, Response, json_response
from protocols.http.router import Param, RouteTable
from protocols.http.schemas import ref
from stalwart_py import clients, dns_records, names
from stalwart_py.queue.dkim import signer_of

if TYPE_CHECKING:
    from stalwart_py.context import ServerContext

routes = RouteTable()

DOMAIN = Param("domain", "a domain the server hosts")
CHECK = Param(
    "check",
    "true: also ask DNS for each record (ok, missing, different) and check FCrDNS",
    {"type": "boolean", "default": False},
)


@routes.get(
    "/api/dns/{domain}",
    tag="dns",
    params=(DOMAIN,),
    query=(CHECK,),
    summary="The DNS records a hosted domain needs, optionally checked against DNS",
    responses={
        200: ("the records (and with check=true, what DNS says)", ref("DnsReport")),
        400: ("check is not true or false", ref("Error")),
        404: ("not a domain the server hosts", ref("Error")),
    },
)
async def dns_records_of(request: Request) -> Response:
    server = request.session.server
    check = request.query_value("check")
    if check not in (None, "true", "false"):
        raise HttpError(400, "check: expected true or false")
    try:
        domain = names.domain(request.params["domain"])
    except ValueError:
        raise HttpError(404, "not a domain the server hosts") from None
    if not await server.directory.is_local_domain(domain):
        raise HttpError(404, f"{domain} is not a domain the server hosts")
    return json_response(200, await dns_report(server, domain, check=check == "true"))


async def dns_report(server: ServerContext, domain: str, *, check: bool) -> dict[str, Any]:
    """The records ``domain`` (a local domain, A-label form) needs, as ``/api/dns/{domain}``
    answers them (and the administrator's domain page shows them): with ``check``, what DNS
    says of each and of the host's reverse name."""
    config = server.config
    keys = (await signer_of(server.store, config.dkim)).keys().get(domain, [])
    found = clients.endpoints(config, server.listeners)
    wanted = dns_records.records(domain, config, found, keys)
    body: dict[str, Any] = {
        "domain": domain,
        "hostname": config.hostname,
        "zone": dns_records.zone_text(domain, wanted),
        "records": [record.as_json() for record in wanted],
    }
    if check:
        checks: list[dns_records.Check | None] = [None] * len(wanted)
        reverse: list[dns_records.ReverseCheck] = []

        async def one(index: int) -> None:
            checks[index] = await dns_records.check_record(
                server.resolver, wanted[index], config.hostname
            )

        async def ptr() -> None:
            reverse.extend(await dns_records.check_reverse(server.resolver, config.hostname))

        async with anyio.create_task_group() as group:
            for index in range(len(wanted)):
                group.start_soon(one, index)
            group.start_soon(ptr)
        done = [c for c in checks if c is not None]
        body["records"] = [c.as_json() for c in done]
        body["reverse"] = [r.as_json() for r in reverse]
        body["ok"] = all(c.status == "ok" for c in (*done, *reverse))
    return body
