"""``/admin/domains``: the local domains; add one; one domain's page with its DNS records
(``/api/dns/{domain}``'s report, checked against DNS on request), its DKIM keys (a new one made
as ``stalwart-py dkim generate`` makes it) and its removal after a confirmation page.

The same calls as ``/api/domains``: ``Directory.add_domain`` and ``Directory.delete_domain``
(which refuses while accounts are left; the domain's aliases go with it).
"""

from __future__ import annotations

from protocols.http.handlers.dns import dns_report
from protocols.http.messages import HttpError, Response
from protocols.http.web import render
from protocols.http.web.admin.common import (
    confirmation,
    confirmed,
    page_number,
    paged,
    path_part,
)
from protocols.http.web.pages import Level, PageTable, WebRequest, sentence
from stalwart_py import names
from stalwart_py.queue.dkim import ALGORITHMS, generate_key, signer_of, zone_record
from stalwart_py.store import NotFound, StoreError

pages = PageTable()

DONE = {
    "added": "The domain is added. Publish the DNS records below.",
    "removed": "The domain is removed.",
    "dkim": "The DKIM key is made: mail from this domain is signed with it from now on. "
    "Publish its record (below).",
}


async def _list(web: WebRequest, *, status: int = 200, error: str = "", name: str = "") -> Response:
    domains = await web.server.directory.list_domains()
    return web.render(
        "admin/domains.html",
        status=status,
        title="Domains",
        listing=paged(domains, page_number(web), "/admin/domains?"),
        done=DONE.get(web.query("done"), ""),
        error=error,
        name=name,
    )


@pages.page("/admin/domains", methods=("GET", "POST"), level=Level.ADMIN)
async def domains(web: WebRequest) -> Response:
    if web.method == "GET":
        return await _list(web)
    name = web.field("name").strip()
    try:
        domain = await web.server.directory.add_domain(name)
    except (ValueError, StoreError) as exc:
        return await _list(web, status=422, error=sentence(str(exc)), name=name)
    web.log.info("domain %s added by %s on the web pages", domain.name, web.account.address)
    return render.redirect(f"/admin/domains/{path_part(domain.name)}?done=added")


async def _domain(web: WebRequest) -> str:
    try:
        name = names.domain(web.params["name"])
    except ValueError:
        raise HttpError(404, "The server hosts no such domain.") from None
    if not await web.server.directory.is_local_domain(name):
        raise HttpError(404, f"The server does not host {name}.")
    return name


async def _show(web: WebRequest, name: str, *, status: int = 200, error: str = "") -> Response:
    check = web.query("check") == "true"
    report = await dns_report(web.server, name, check=check)
    config = web.server.config
    keys = (await signer_of(web.server.store, config.dkim)).keys().get(name, [])
    return web.render(
        "admin/domain.html",
        status=status,
        title=name,
        name=name,
        link=path_part(name),
        report=report,
        checked=check,
        keys=[(key, zone_record(key)) for key in keys],
        algorithms=ALGORITHMS,
        done=DONE.get(web.query("done"), ""),
        error=error,
    )


@pages.page("/admin/domains/{name}", level=Level.ADMIN)
async def domain(web: WebRequest) -> Response:
    """The records to publish; ``?check=true`` asks DNS for each (a GET: it changes nothing)."""
    return await _show(web, await _domain(web))


@pages.page("/admin/domains/{name}/dkim", methods=("POST",), level=Level.ADMIN)
async def dkim(web: WebRequest) -> Response:
    name = await _domain(web)
    algorithm = web.field("algorithm", "rsa")
    selector = web.field("selector").strip() or None
    try:
        # in the store, so every node signs with it; made in a worker thread (RSA is slow)
        key = await generate_key(web.server.store, name, algorithm=algorithm, selector=selector)
    except (ValueError, StoreError) as exc:  # AlreadyExists: the selector is taken
        return await _show(web, name, status=422, error=sentence(str(exc)))
    web.log.info("DKIM key %s made for %s by %s", key.selector, name, web.account.address)
    return render.redirect(f"/admin/domains/{path_part(name)}?done=dkim")


@pages.page("/admin/domains/{name}/remove", methods=("GET", "POST"), level=Level.ADMIN)
async def remove(web: WebRequest) -> Response:
    """GET (or a POST without ``confirm=yes``): the confirmation page; its form removes."""
    name = await _domain(web)
    if not confirmed(web):
        return confirmation(
            web,
            title=f"Remove {name}?",
            action=f"/admin/domains/{path_part(name)}/remove",
            back=f"/admin/domains/{path_part(name)}",
            question=(
                f"Remove the domain {name} with its aliases? The server then refuses mail for "
                "it. A domain that still has accounts cannot be removed."
            ),
            button="Remove the domain",
        )
    try:
        await web.server.directory.delete_domain(name)
    except NotFound:
        raise HttpError(404, f"The server does not host {name}.") from None
    except StoreError as exc:
        return await _show(web, name, status=409, error=sentence(str(exc)))
    web.log.info("domain %s removed by %s on the web pages", name, web.account.address)
    return render.redirect("/admin/domains?done=removed")
