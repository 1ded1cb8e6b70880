"""Where a recipient's mail goes: this server, a smarthost, a fixed route, or the domain's MX.

MX resolution follows RFC 5321 section 5.1: the MX records of the domain, lowest preference
first (hosts of equal preference in random order, to spread the load); a domain with no MX
record but an address (A/AAAA) is its own mail exchanger (the "implicit MX"); a name that
does not exist is a permanent failure, and so is the null MX of RFC 7505 (``MX 0 .``), which
says the domain accepts no mail. DNS failures (timeouts, SERVFAIL) are transient.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass
from typing import Literal

from stalwart_py.config.schema import QueueSettings, RouteSettings, RouteTLS
from stalwart_py.resolver import DnsError, DnsTemporaryError, NameNotFound, Resolver

Kind = Literal["local", "mx", "route", "relay"]


@dataclass(frozen=True, slots=True)
class Destination:
    """What a worker delivers to over one connection: a domain's MX hosts or route, the
    smarthost (every remote domain shares it), or this server's own mailboxes."""

    kind: Kind
    name: str  # the domain; "relay" for the smarthost

    def __str__(self) -> str:
        return self.name if self.kind != "relay" else "relay"


@dataclass(frozen=True, slots=True)
class Host:
    """One host to try, with how to use TLS on it."""

    name: str  # a DNS name or an IP address
    port: int
    tls: RouteTLS
    user: str | None = None
    password: str | None = None


class RouteFailed(Exception):
    def __init__(self, status: str, text: str) -> None:
        super().__init__(text)
        self.status = status  # RFC 3463

    @property
    def permanent(self) -> bool:
        return self.status.startswith("5")


def make_resolver(settings: QueueSettings) -> Resolver:
    """A resolver on ``[queue.dns]``'s nameservers (the system's when none are given), for a
    queue run without a server; the server passes its one ``[resolver]`` instead."""
    return Resolver(settings.dns.nameservers, timeout=settings.dns.timeout, attempts=1)


class Router:
    def __init__(self, settings: QueueSettings, resolver: Resolver) -> None:
        self.settings = settings
        self.resolver = resolver

    def destination(self, domain: str, local: bool) -> Destination:
        if local:
            return Destination("local", domain)
        if self.settings.relay is not None:
            return Destination("relay", "relay")
        if domain in self.settings.route:
            return Destination("route", domain)
        return Destination("mx", domain)

    async def hosts(self, destination: Destination) -> list[Host]:
        """The hosts to try, in order; raises RouteFailed."""
        if destination.kind == "relay":
            assert self.settings.relay is not None
            return [_host(self.settings.relay, self.settings.relay.tls)]
        required = destination.name in self.settings.tls.require
        if destination.kind == "route":
            route = self.settings.route[destination.name]
            tls = "starttls" if required and route.tls in ("none", "opportunistic") else route.tls
            return [_host(route, tls)]
        tls = "starttls" if required else "opportunistic"
        return [
            Host(name, self.settings.port, tls) for name in await self.mx_hosts(destination.name)
        ]

    async def mx_hosts(self, domain: str) -> list[str]:
        """RFC 5321 5.1: the mail exchangers of ``domain``, most preferred first."""
        try:
            records = await self.resolver.mx(domain)
        except NameNotFound:
            raise RouteFailed("5.1.2", f"the domain {domain} does not exist") from None
        except DnsError as exc:
            raise RouteFailed("4.4.3", f"DNS lookup of MX {domain} failed: {exc}") from None
        if not records:
            return [domain]  # no MX: the domain is its own mail exchanger (implicit MX)
        if any(name == "" for _, name in records):
            raise RouteFailed("5.1.10", f"{domain} accepts no mail (null MX, RFC 7505)")
        random.shuffle(records)  # equal preferences in random order; sort is stable
        records.sort(key=lambda record: record[0])
        hosts: list[str] = []
        for _, name in records:
            if name not in hosts:
                hosts.append(name)
        return hosts

    async def addresses(self, host: str) -> list[str]:
        """The IPv4 then IPv6 addresses of ``host`` (an IP literal is its own address)."""
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            pass
        found: list[str] = []
        errors: list[str] = []
        for lookup in (self.resolver.a, self.resolver.aaaa):
            try:
                found += await lookup(host)
            except DnsTemporaryError as exc:
                errors.append(str(exc))
            except DnsError:  # no such name, or not one that can be asked
                continue
        if not found and errors:
            raise RouteFailed("4.4.3", f"DNS lookup of {host} failed: {errors[0]}")
        return found


def _host(route: RouteSettings, tls: RouteTLS) -> Host:
    return Host(route.host, route.port, tls, route.user, route.password)
