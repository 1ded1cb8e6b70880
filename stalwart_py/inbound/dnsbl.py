"""DNS blocklists and allowlists (RFC 5782): is this client address, or this domain, listed?

An IPv4 address is asked as its octets reversed under the zone (``192.0.2.99`` in
``zen.spamhaus.org``: ``99.2.0.192.zen.spamhaus.org``), an IPv6 address as its 32 nibbles
reversed (RFC 5782 2.4), a domain as itself under the zone (``example.com.dbl.spamhaus.org``).
An A record says "listed"; NXDOMAIN (or no A record) says "not listed".

Only answers in 127.0.0.0/8 count (RFC 5782 2.1): a resolver that rewrites NXDOMAIN into an
advertising address must not make every client "listed". Lists answer some 127/8 codes to say
the query itself was refused; Spamhaus documents 127.255.255.252 (a typo in the zone name),
.254 (queried through a public or open resolver) and .255 (too many queries). Those are logged
at WARNING (the operator has to act: use another resolver, or a Data Query Service key) and
never count as a listing, so a list that blocks our resolver does not block all our mail.

Every zone is asked at once, through the one resolver (its cache and timeout); a DNS failure
is logged and counts as "not listed": a list we cannot reach refuses nobody. On a hit, the
zone's TXT record for the same name (the list's reason, often a URL) is fetched for the reply.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import anyio

from stalwart_py.resolver import DnsError, NameNotFound, Resolver

log = logging.getLogger("stalwart_py.inbound")

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
# 127.255.255.252-255: "your query was refused", not "listed" (Spamhaus's return codes).
ERROR_CODES = ipaddress.ip_network("127.255.255.252/30")
MAX_REASON = 200


@dataclass(frozen=True, slots=True)
class Listing:
    """A name found in a zone: the zone, what was asked, the A answers and the TXT reason."""

    zone: str
    subject: str  # the IP address or domain asked about
    codes: tuple[str, ...]
    reason: str | None = None

    def describe(self) -> str:
        """For a reply and the header comment: ``<subject> listed by <zone> (<codes>)``."""
        text = f"{self.subject} listed by {self.zone} ({', '.join(self.codes)})"
        return f"{text}: {self.reason}" if self.reason else text


def reversed_name(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """The query label sequence of RFC 5782 2.1 and 2.4, without the zone."""
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        ip = mapped
    if ip.version == 4:
        return ".".join(reversed(str(ip).split(".")))
    return ".".join(reversed(ip.exploded.replace(":", "")))


async def lookup_ip(
    resolver: Resolver,
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
    zones: Sequence[str],
) -> list[Listing]:
    """The zones listing ``ip``, in the order of ``zones``."""
    return await _lookup_all(resolver, reversed_name(ip), str(ip), zones)


async def lookup_domain(resolver: Resolver, domain: str, zones: Sequence[str]) -> list[Listing]:
    """The zones listing ``domain`` (RFC 5782 2.3: a domain-based list)."""
    domain = domain.lower().rstrip(".")
    if not domain or domain.startswith("[") or "." not in domain:
        return []  # an address literal or a bare name: nothing a domain list can hold
    return await _lookup_all(resolver, domain, domain, zones)


async def _lookup_all(
    resolver: Resolver, prefix: str, subject: str, zones: Sequence[str]
) -> list[Listing]:
    if len(zones) == 1:  # no task group for one query: it costs more than a cached answer
        listing = await _lookup(resolver, prefix, subject, zones[0])
        return [listing] if listing is not None else []
    found: list[Listing | None] = [None] * len(zones)

    async def one(index: int, zone: str) -> None:
        found[index] = await _lookup(resolver, prefix, subject, zone)

    async with anyio.create_task_group() as group:
        for index, zone in enumerate(zones):
            group.start_soon(one, index, zone)
    return [listing for listing in found if listing is not None]


async def _lookup(resolver: Resolver, prefix: str, subject: str, zone: str) -> Listing | None:
    name = f"{prefix}.{zone.rstrip('.')}"
    try:
        answers = await resolver.lookup(name, "A")
    except NameNotFound:
        return None  # not listed
    except DnsError as error:  # a failure refuses nobody either
        log.info("DNSBL %s: no answer for %s (%s): not counted", zone, subject, error)
        return None
    codes: list[str] = []
    for answer in answers:
        try:
            address = ipaddress.ip_address(answer)
        except ValueError:
            continue
        if address.version != 4 or address not in LOOPBACK:
            log.warning(
                "DNSBL %s answered %s for %s: outside 127.0.0.0/8, ignored", zone, answer, subject
            )
        elif address in ERROR_CODES:
            log.warning(
                "DNSBL %s answered %s for %s: the list refused the query (a typo in the zone, "
                "a public resolver, or too many queries), not a listing",
                zone,
                answer,
                subject,
            )
        else:
            codes.append(answer)
    if not codes:
        return None
    reason = None
    try:
        texts = await resolver.lookup(name, "TXT")
    except DnsError:
        texts = []
    if texts:
        reason = " ".join(texts[0].split())[:MAX_REASON]
    return Listing(zone.rstrip("."), subject, tuple(sorted(codes)), reason)
