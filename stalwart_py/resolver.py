"""The one DNS resolver of the server: outbound MX routing, SPF, DKIM, DMARC, DNSBLs all ask it.

It is dnspython's asynchronous stub resolver, on ``[resolver] nameservers`` (empty: the
system's, from /etc/resolv.conf), with a cache of its own in front, because dnspython's cache
keeps neither negative answers nor a bound we choose:

- A positive answer is kept for its TTL (the smallest TTL along a CNAME chain), at most
  ``max-ttl``.
- A negative answer (NXDOMAIN, or NODATA: the name exists without records of that type) is kept
  for the negative TTL of RFC 2308 section 5: the smaller of the SOA record's TTL and its
  MINIMUM field, from the authority section of the answer, at most ``max-negative-ttl``. An
  answer without an SOA is not cached (RFC 2308 says such answers SHOULD NOT be).
- Failures (SERVFAIL, REFUSED, timeouts) are never cached: the next message asks again.
- The cache holds at most ``cache-size`` entries, the least recently used going first, so a
  stranger sending from a million random domains cannot grow it.
- Concurrent lookups of the same (name, type) share one query.

Answers come back as text, the same for every caller: an A or AAAA record as its address, MX
as ``"10 mx.example."``, PTR as ``"host.example."``, TXT (and the obsolete SPF type 99) as the
record's character-strings joined with nothing between them (RFC 7208 section 3.3, RFC 6376
section 3.6.2.2), one string per record. ``[]`` is NODATA; NXDOMAIN raises ``NameNotFound``;
a failure to get any answer raises ``DnsTemporaryError``; a name that cannot be put in a query
(an empty label, a label over 63 octets, a name over 255) raises ``InvalidName``.

DNSSEC (for DANE, RFC 7672). This is a stub resolver: it does not validate signatures itself.
Every query sets the AD bit (RFC 6840 5.7), asking the name server to say whether it validated
the answer; ``lookup_authenticated``, ``mx_authenticated`` and ``tlsa`` return that AD flag.
The flag is only as good as the path to the server that sets it: it is trusted because the
nameservers are the ones the administrator configured (``[resolver] nameservers``, or
/etc/resolv.conf), which must be a validating resolver on loopback or a trusted network (RFC
7672 section 2.1: "a trustworthy channel"). A resolver that does not validate never sets it, so
DANE is then simply not used.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from stalwart_py.metrics import Metrics

# dnspython is imported by the first lookup (``Resolver._query``), not by every start: it was
# ~60 ms of a start's imports, and a server that only serves IMAP never asks DNS.
if TYPE_CHECKING:
    import dns.asyncresolver
    import dns.message

    from stalwart_py.config.schema import ResolverSettings

log = logging.getLogger("stalwart_py.resolver")


class DnsError(Exception):
    """A lookup that gave no records; the subclass says why."""


class DnsTemporaryError(DnsError):
    """No usable answer now (SERVFAIL, REFUSED, a timeout, no name server answered): a later
    try may succeed, so callers defer (SMTP 4xx, SPF/DKIM/DMARC ``temperror``)."""


class NameNotFound(DnsError):
    """NXDOMAIN: the name does not exist (RFC 1035 RCODE 3)."""


class InvalidName(DnsError):
    """The name cannot be asked: an empty label, a label over 63 or a name over 255 octets, or
    characters that IDNA cannot encode."""


@dataclass(frozen=True, slots=True)
class _Entry:
    expires: float  # time.monotonic()
    records: tuple[str, ...] | None  # None: NXDOMAIN
    authenticated: bool = False  # the answer came with the AD bit (DNSSEC-validated)


@dataclass(frozen=True, slots=True)
class Tlsa:
    """One TLSA record (RFC 6698 2.1): how a server's certificate is to be matched."""

    usage: int  # 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE
    selector: int  # 0 the full certificate, 1 its SubjectPublicKeyInfo
    matching: int  # 0 the data itself, 1 its SHA-256, 2 its SHA-512
    data: bytes


class Resolver:
    """An asynchronous, caching DNS stub resolver; one per server (``ServerContext.resolver``).

    ``nameservers``: ``(address, port)`` pairs or ``"address"`` strings; empty for the
    system's. ``timeout`` is the wait for one try at one server, ``attempts`` how many tries a
    lookup makes in all before it is a ``DnsTemporaryError``.
    """

    def __init__(
        self,
        nameservers: Iterable[tuple[str, int] | str] = (),
        *,
        timeout: float = 5.0,
        attempts: int = 2,
        cache_size: int = 10_000,
        max_ttl: float = 86400.0,
        max_negative_ttl: float = 3600.0,
        metrics: Metrics | None = None,
    ) -> None:
        self._cache: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._pending: dict[tuple[str, str], _Pending] = {}
        self.hits = 0  # answers given from the cache, for tests and metrics
        self.misses = 0
        self._lookups = (metrics or Metrics()).counter(
            "stalwart_dns_lookups",
            "DNS lookups by outcome: cached (no query), answered, not_found (NXDOMAIN), "
            "failed (SERVFAIL, timeout, no server)",
            ["result"],
        )
        self.configure(
            nameservers,
            timeout=timeout,
            attempts=attempts,
            cache_size=cache_size,
            max_ttl=max_ttl,
            max_negative_ttl=max_negative_ttl,
        )

    @classmethod
    def from_settings(cls, settings: ResolverSettings, metrics: Metrics | None = None) -> Resolver:
        """A resolver for ``[resolver]``."""
        return cls(
            settings.nameservers,
            metrics=metrics,
            timeout=settings.timeout,
            attempts=settings.attempts,
            cache_size=settings.cache_size,
            max_ttl=settings.max_ttl,
            max_negative_ttl=settings.max_negative_ttl,
        )

    def apply(self, settings: ResolverSettings) -> None:
        """(Re)apply ``[resolver]``, on reload; what is cached stays unless the servers
        changed (other servers may give other answers)."""
        self.configure(
            settings.nameservers,
            timeout=settings.timeout,
            attempts=settings.attempts,
            cache_size=settings.cache_size,
            max_ttl=settings.max_ttl,
            max_negative_ttl=settings.max_negative_ttl,
        )

    def configure(
        self,
        nameservers: Iterable[tuple[str, int] | str],
        *,
        timeout: float,
        attempts: int,
        cache_size: int,
        max_ttl: float,
        max_negative_ttl: float,
    ) -> None:
        servers = tuple(_server(entry) for entry in nameservers)
        if servers != getattr(self, "nameservers", None):
            self._cache.clear()
        self.nameservers = servers
        self.timeout = timeout
        self.attempts = attempts
        self.cache_size = cache_size
        self.max_ttl = max_ttl
        self.max_negative_ttl = max_negative_ttl
        self._stub: dns.asyncresolver.Resolver | None = None  # made by the first query
        while len(self._cache) > cache_size:
            self._cache.popitem(last=False)

    # -- lookups ----------------------------------------------------------------------------

    async def lookup(self, name: str, rdtype: str) -> list[str]:
        """The records of type ``rdtype`` at ``name``, as text (see the module docstring)."""
        records, _ = await self.lookup_authenticated(name, rdtype)
        return records

    async def lookup_authenticated(self, name: str, rdtype: str) -> tuple[list[str], bool]:
        """``lookup``, and whether the name server said it validated the answer (the AD bit;
        see the module docstring for why it is trusted). NXDOMAIN still raises."""
        key = (name.lower().rstrip("."), rdtype.upper())
        entry = self._cache.get(key)
        if entry is not None:
            if entry.expires > time.monotonic():
                self._cache.move_to_end(key)
                self.hits += 1
                self._lookups.labels("cached").inc()
                return _answer(key, entry.records), entry.authenticated
            del self._cache[key]
        while (pending := self._pending.get(key)) is not None:
            # Someone is asking already: wait for their answer; if they were cancelled
            # before it came, ask ourselves.
            await pending.done.wait()
            if pending.finished:
                return _answer(key, pending.result()), pending.authenticated
        pending = self._pending[key] = _Pending()
        self.misses += 1
        try:
            records, ttl, authenticated = await self._query(*key)
            pending.records = records
            pending.authenticated = authenticated
            pending.finished = True
            self._lookups.labels("answered" if records is not None else "not_found").inc()
        except DnsError as exc:
            pending.error = exc
            pending.finished = True
            self._lookups.labels(
                "failed" if isinstance(exc, DnsTemporaryError) else "not_found"
            ).inc()
            raise
        finally:
            pending.done.set()
            del self._pending[key]
        if ttl > 0 and self.cache_size > 0:
            self._cache[key] = _Entry(time.monotonic() + ttl, records, authenticated)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return _answer(key, records), authenticated

    async def txt(self, name: str) -> list[str]:
        """TXT records, each one's strings joined."""
        return await self.lookup(name, "TXT")

    async def a(self, name: str) -> list[str]:
        return await self.lookup(name, "A")

    async def aaaa(self, name: str) -> list[str]:
        return await self.lookup(name, "AAAA")

    async def mx(self, name: str) -> list[tuple[int, str]]:
        """(preference, exchange) pairs, the exchange lowercased without its final dot
        (``""`` for the null MX of RFC 7505, ``0 .``); in the order the server gave them."""
        found = []
        for text in await self.lookup(name, "MX"):
            preference, _, exchange = text.partition(" ")
            found.append((int(preference), exchange.lower().rstrip(".")))
        return found

    async def mx_authenticated(self, name: str) -> bool:
        """Whether the MX answer for ``name`` (records or their absence) was DNSSEC-validated:
        RFC 7672 2.2.1 uses DANE only for MX hosts learned from a secure answer."""
        _, authenticated = await self.lookup_authenticated(name, "MX")
        return authenticated

    async def tlsa(self, name: str) -> tuple[list[Tlsa], bool]:
        """The TLSA records at ``name`` (``_25._tcp.<host>``, RFC 7672 2.2), and whether the
        answer was authenticated (AD). Records that do not parse are left out."""
        texts, authenticated = await self.lookup_authenticated(name, "TLSA")
        records = []
        for text in texts:
            fields = text.split()
            try:
                usage, selector, matching = (int(f) for f in fields[:3])
                data = bytes.fromhex("".join(fields[3:]))
            except ValueError:
                continue
            records.append(Tlsa(usage, selector, matching, data))
        return records, authenticated

    async def ptr(self, ip: str) -> list[str]:
        """The PTR names of an IPv4 or IPv6 address (its in-addr.arpa / ip6.arpa name),
        lowercased without the final dot."""
        import dns.reversename

        reverse = dns.reversename.from_address(str(ipaddress.ip_address(ip)))
        return [name.lower().rstrip(".") for name in await self.lookup(reverse.to_text(), "PTR")]

    def clear(self) -> None:
        self._cache.clear()

    # -- the query --------------------------------------------------------------------------

    async def _query(self, name: str, rdtype: str) -> tuple[tuple[str, ...] | None, float, bool]:
        """(records or None for NXDOMAIN, seconds to cache it, the AD bit)."""
        import dns.exception
        import dns.name
        import dns.rdatatype
        import dns.resolver

        if self._stub is None:
            self._stub = _stub_resolver(self.nameservers, self.timeout, self.attempts)
        try:
            qname = dns.name.from_text(name or ".")
            answer = await self._stub.resolve(qname, rdtype, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN as exc:
            responses = list(exc.responses().values())
            return None, self._negative_ttl(responses), _authenticated(responses)
        except (
            dns.name.EmptyLabel,
            dns.name.LabelTooLong,
            dns.name.NameTooLong,
            dns.name.IDNAException,  # a name with characters IDNA cannot encode
        ) as exc:
            raise InvalidName(f"{name}: {_describe(exc)}") from None
        except dns.rdatatype.UnknownRdatatype:
            raise ValueError(f"unknown record type {rdtype}") from None
        except (dns.resolver.LifetimeTimeout, dns.exception.Timeout):
            raise DnsTemporaryError(f"{rdtype} {name}: timed out") from None
        except dns.resolver.NoNameservers:
            raise DnsTemporaryError(
                f"{rdtype} {name}: no name server answered (SERVFAIL or REFUSED)"
            ) from None
        except dns.exception.DNSException as exc:
            raise DnsTemporaryError(f"{rdtype} {name}: {_describe(exc)}") from None
        authenticated = _authenticated([answer.response])
        if answer.rrset is None:
            return (), self._negative_ttl([answer.response]), authenticated
        records = tuple(_text(rdata) for rdata in answer.rrset)
        ttl = min(answer.chaining_result.minimum_ttl, answer.rrset.ttl)
        return records, min(float(ttl), self.max_ttl), authenticated

    def _negative_ttl(self, responses: Iterable[dns.message.Message]) -> float:
        """RFC 2308 section 5: min(SOA TTL, SOA MINIMUM) from the authority section; 0 (do
        not cache) without an SOA."""
        import dns.rdatatype

        ttls = [
            min(rrset.ttl, rrset[0].minimum)
            for response in responses
            for rrset in response.authority
            if rrset.rdtype == dns.rdatatype.SOA and len(rrset)
        ]
        return min(float(min(ttls)), self.max_negative_ttl) if ttls else 0.0


class _Pending:
    """A query in flight, which lookups of the same key wait on."""

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.records: tuple[str, ...] | None = None
        self.error: DnsError | None = None
        self.authenticated = False
        self.finished = False  # False when done: the asker was cancelled

    def result(self) -> tuple[str, ...] | None:
        if self.error is not None:
            raise type(self.error)(*self.error.args)
        return self.records


def _answer(key: tuple[str, str], records: tuple[str, ...] | None) -> list[str]:
    if records is None:
        raise NameNotFound(f"{key[1]} {key[0]}: no such domain (NXDOMAIN)")
    return list(records)


def _authenticated(responses: Iterable[dns.message.Message]) -> bool:
    import dns.flags

    responses = list(responses)
    return bool(responses) and all(r.flags & dns.flags.AD for r in responses)


def _text(rdata: object) -> str:
    strings = getattr(rdata, "strings", None)
    if strings is not None:  # TXT, SPF: the strings of one record, joined (RFC 7208 3.3)
        return b"".join(strings).decode("utf-8", errors="replace")
    address = getattr(rdata, "address", None)
    if isinstance(address, str):  # A, AAAA
        return address
    return rdata.to_text()  # type: ignore[attr-defined]


def _server(entry: tuple[str, int] | str) -> tuple[str, int]:
    if isinstance(entry, str):
        return (str(ipaddress.ip_address(entry)), 53)
    address, port = entry
    return (str(ipaddress.ip_address(address)), int(port))


def _stub_resolver(
    servers: Sequence[tuple[str, int]], timeout: float, attempts: int
) -> dns.asyncresolver.Resolver:
    import dns.asyncresolver
    import dns.flags
    import dns.nameserver
    import dns.resolver

    if servers:
        stub = dns.asyncresolver.Resolver(configure=False)
        stub.nameservers = [dns.nameserver.Do53Nameserver(a, p) for a, p in servers]
    else:
        try:
            stub = dns.asyncresolver.Resolver(configure=True)
        except dns.resolver.NoResolverConfiguration:
            log.warning("no name servers in /etc/resolv.conf: asking 127.0.0.1")
            stub = dns.asyncresolver.Resolver(configure=False)
            stub.nameservers = ["127.0.0.1"]
    stub.cache = None  # ours is in front
    stub.search = []  # every name we ask is absolute
    # One try at one server waits `timeout`; dnspython goes round the servers again until
    # the lifetime is spent, so the lifetime is what bounds the attempts.
    stub.timeout = timeout
    stub.lifetime = timeout * attempts
    stub.use_edns(0, 0, 1232)  # larger UDP answers (SPF and DKIM TXT); TC falls back to TCP
    # RFC 6840 5.7: AD in a query asks a validating server to report validation in the answer
    # (without DO, so answers stay small: we do not validate signatures ourselves).
    stub.flags = dns.flags.RD | dns.flags.AD
    return stub


def _describe(exc: Exception) -> str:
    return str(exc) or exc.__class__.__name__
