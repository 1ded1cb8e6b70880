"""``stalwart-py dns records DOMAIN`` and ``stalwart-py dns check DOMAIN``.

``records`` prints every record the domain needs in zone-file syntax (paste it into the zone,
or compare); ``check`` asks DNS, through the configured resolver (``[resolver]``), for each one
and says ok / missing / different, then checks FCrDNS of the server's addresses. ``check``
exits with status 1 when anything is not ok, so that it can guard a deployment script.
Both read the configuration and the store (the DKIM keys, the hosted domains);
the ports are the configured ones (see ``GET /api/dns/{domain}`` for a running server's).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

from stalwart_py import names
from stalwart_py.cli.common import store_command
from stalwart_py.config import Config
from stalwart_py.store import Store

# What the commands use is imported when one runs: every other command, ``serve`` included,
# builds this parser too, and the record code was ~20 ms of each start's imports.
if TYPE_CHECKING:
    from stalwart_py import clients, dns_records

Command = Callable[..., argparse.ArgumentParser]


def register(commands: argparse._SubParsersAction, command: Command) -> None:
    dns = commands.add_parser("dns", help="The DNS records of a hosted domain.")
    actions = dns.add_subparsers(dest="action", required=True, metavar="ACTION")
    records = command("records", "Print every DNS record DOMAIN needs, as a zone file.", actions)
    records.add_argument("domain")
    records.set_defaults(run=store_command(dns_records_command))
    check = command(
        "check", "Compare DNS with the records DOMAIN needs; exit 1 unless all are ok.", actions
    )
    check.add_argument("domain")
    check.set_defaults(run=_with_status(store_command(dns_check_command)))


def _with_status(
    command: Callable[[argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        args.failed = False
        status = command(args)
        return status or int(args.failed)

    return run


async def wanted_records(
    store: Store, config: Config, domain_text: str, found: list[clients.Endpoint]
) -> tuple[str, list[dns_records.Record]]:
    """The hosted domain's name and its records; ValueError when it is not hosted."""
    from stalwart_py import dns_records
    from stalwart_py.queue.dkim import signer_of

    domain = names.domain(domain_text.strip())
    if not await store.is_local_domain(domain):
        raise ValueError(f"{domain} is not a local domain (add it with: stalwart-py domain add)")
    keys = (await signer_of(store, config.dkim)).keys().get(domain, [])
    return domain, dns_records.records(domain, config, found, keys)


async def dns_records_command(store: Store, config: Config, args: argparse.Namespace) -> None:
    from stalwart_py import clients, dns_records

    domain, wanted = await wanted_records(store, config, args.domain, clients.endpoints(config))
    print(dns_records.zone_text(domain, wanted), end="")


async def dns_check_command(store: Store, config: Config, args: argparse.Namespace) -> None:
    from stalwart_py import clients, dns_records
    from stalwart_py.resolver import Resolver

    domain, wanted = await wanted_records(store, config, args.domain, clients.endpoints(config))
    resolver = Resolver.from_settings(config.resolver)
    report = await dns_records.check(resolver, domain, config, wanted)
    print(dns_records.report_text(report), end="")
    args.failed = not report.ok
