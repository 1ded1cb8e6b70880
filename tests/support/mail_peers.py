"""The world outside, on loopback: an authoritative DNS server and receiving SMTP servers.

``ZoneServer`` answers UDP DNS queries from a dict of records (dnspython does the wire
format); ``Peer`` is an aiosmtpd server that records what it receives and can be told to
refuse recipients, answer DATA with given replies (or none: ``stall_data``), offer STARTTLS,
or require AUTH; ``SilentServer`` accepts connections and never answers. They run on the event
loop of whoever starts them (a test's, or a ``background_loop`` thread's).
"""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio.from_thread
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.rrset
from aiosmtpd.smtp import SMTP, AuthResult

WAIT = 20.0


class ZoneServer(asyncio.DatagramProtocol):
    """``records``: name -> [(type, text)], e.g. ``{"example.test": [("MX", "10 mx.test.")]}``.
    A name with no records of the asked type answers NODATA; an unknown name NXDOMAIN; a
    name in ``servfail`` SERVFAIL; a name in ``timeout`` (or a (name, type) pair in
    ``timeout_types``) no answer at all, so the asker times out. A CNAME is followed to the
    records of its target when those are here too, as a recursive resolver's answer does.
    Answers carry ``ttl``; with ``negative_ttl`` set, NXDOMAIN and NODATA answers carry an SOA
    with that TTL and MINIMUM (RFC 2308: what lets a resolver cache them).

    DNSSEC, as a validating resolver reports it: answers about a name in ``authenticated``
    (records, NODATA or NXDOMAIN alike) carry the AD bit when the query asked for it with AD
    or DO (RFC 6840 5.7), as if validated; every other answer is "insecure" (no AD). TLSA
    records are given like any other: ``("TLSA", "3 1 1 <hex>")``."""

    def __init__(self, records: dict[str, list[tuple[str, str]]] | None = None) -> None:
        self.records: dict[str, list[tuple[str, str]]] = dict(records or {})
        self.servfail: set[str] = set()
        self.timeout: set[str] = set()
        self.timeout_types: set[tuple[str, str]] = set()
        self.authenticated: set[str] = set()
        self.ttl = 60
        self.negative_ttl: int | None = None
        self.queries: list[tuple[str, str]] = []
        self.port = 0
        self._transport: asyncio.DatagramTransport | None = None

    def add(self, name: str, rdtype: str, text: str) -> None:
        self.records.setdefault(name.lower().rstrip("."), []).append((rdtype, text))

    async def start(self, host: str = "127.0.0.1") -> int:
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(host, 0))
        self.port = self._transport.get_extra_info("sockname")[1]
        return self.port

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def connection_made(self, transport: Any) -> None:
        self._transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        question = query.question[0]
        name = _key(question.name)
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        if name in self.timeout or (name, rdtype) in self.timeout_types:
            return
        if name in self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif name not in self.records:
            response.set_rcode(dns.rcode.NXDOMAIN)
        else:
            owner = question.name
            for _ in range(8):  # a CNAME chain, as far as this zone has it
                texts = [text for kind, text in self.records.get(name, ()) if kind == rdtype]
                alias = [text for kind, text in self.records.get(name, ()) if kind == "CNAME"]
                if texts or not alias or rdtype == "CNAME":
                    break
                cname = dns.rrset.from_text(owner, self.ttl, "IN", "CNAME", alias[0])
                response.answer.append(cname)
                owner = dns.name.from_text(alias[0])
                name = _key(owner)
            if texts:
                response.answer.append(dns.rrset.from_text(owner, self.ttl, "IN", rdtype, *texts))
        asked = query.flags & dns.flags.AD or query.ednsflags & dns.flags.DO
        if asked and _key(question.name) in self.authenticated:
            response.flags |= dns.flags.AD
        if not response.answer and self.negative_ttl is not None:
            soa = f"ns.test. hostmaster.test. 1 3600 600 86400 {self.negative_ttl}"
            response.authority.append(
                dns.rrset.from_text("test.", self.negative_ttl, "IN", "SOA", soa)
            )
        assert self._transport is not None
        self._transport.sendto(response.to_wire(), addr)


def _key(name: dns.name.Name) -> str:
    """A name as ``records`` has it: its labels as written (no zone-file escapes, so that a
    label may hold a space or a ``%``), lowercased, without the final dot."""
    return ".".join(label.decode("utf-8", "replace") for label in name.labels if label).lower()


def dkim_key_lookup(zone_port: int) -> Callable[..., bytes]:
    """dkimpy's DNS hook (``dnsfunc``), asking the test's zone server on ``zone_port``."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = zone_port

    def lookup(name: bytes, timeout: int = 5) -> bytes:
        answer = resolver.resolve(name.decode().rstrip("."), "TXT", lifetime=timeout)
        return b"".join(answer[0].strings)

    return lookup


@contextmanager
def smtp_sink(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """Postfix's smtp-sink (C, from Debian's postfix package) accepting every message on
    127.0.0.1:``port``: a receiving peer for benchmarks that is never the bottleneck."""
    privileges = ["-u", "nobody"] if os.geteuid() == 0 else []  # it refuses to run as root
    sink = subprocess.Popen(
        ["smtp-sink", *privileges, f"127.0.0.1:{port}", "1000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield sink
    finally:
        sink.terminate()
        sink.wait()


def txt_text(value: str) -> str:
    """A TXT value in zone-file form: strings of at most 255 characters."""
    return " ".join(f'"{value[i : i + 250]}"' for i in range(0, len(value), 250))


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    mail_options: list[str]
    connection: int  # 1 for the peer's first connection, 2 for the next, ...
    tls: bool
    login: str | None


@dataclass
class Peer:
    """A receiving SMTP server (aiosmtpd) that records every message."""

    name: str = "mx.remote.test"
    refuse: dict[str, str] = field(default_factory=dict)  # recipient -> RCPT reply
    data_replies: list[str] = field(default_factory=list)  # replies to DATA's end, in turn
    pipelining: bool = True
    tls_context: ssl.SSLContext | None = None
    credentials: tuple[str, str] | None = None  # require AUTH with these
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    open_connections: int = 0
    most_open: int = 0  # the most connections open at once
    port: int = 0
    stall_data: bool = False  # do not answer the end of DATA until this is false again
    stalled: int = 0  # messages held by stall_data so far

    def __post_init__(self) -> None:
        self._sessions: dict[int, int] = {}
        self._keep: list[Any] = []
        self._server: asyncio.base_events.Server | None = None
        self._arrived = threading.Condition()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def _protocol(self) -> SMTP:
        self.connections += 1
        return _CountingSMTP(
            self,
            hostname=self.name,
            tls_context=self.tls_context,
            enable_SMTPUTF8=True,
            auth_required=self.credentials is not None,
            authenticator=self._authenticate if self.credentials else None,
        )

    def _authenticate(self, server, session, envelope, mechanism, data) -> AuthResult:
        ok = (data.login.decode(), data.password.decode()) == self.credentials
        return AuthResult(success=ok, handled=False, auth_data=data.login.decode() if ok else None)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.pipelining:
            responses.insert(1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.stall_data:
            with self._arrived:
                self.stalled += 1
                self._arrived.notify_all()
            # Hang until the test lets go; the flag is set from another thread, where an
            # asyncio.Event of this loop cannot be set.
            while self.stall_data:  # noqa: ASYNC110
                await asyncio.sleep(0.05)  # ok: polling a flag set from the test's thread
            return "451 4.3.0 Too late"
        if self.data_replies:
            reply = self.data_replies.pop(0)
            if not reply.startswith("2"):
                return reply
        connection = self._sessions.setdefault(id(session), len(self._sessions) + 1)
        self._keep.append(session)
        with self._arrived:
            self.received.append(
                Received(
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    envelope.original_content or envelope.content,
                    list(envelope.mail_options),
                    connection,
                    session.ssl is not None,
                    session.auth_data if session.authenticated else None,
                )
            )
            self._arrived.notify_all()
        return "250 2.0.0 OK queued"

    def wait_stalled(self, timeout: float = WAIT) -> None:
        """From another thread: until a message is held by ``stall_data``."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: self.stalled > 0, timeout):
                raise TimeoutError(f"{self.name}: no message reached DATA")

    def wait_for(self, count: int, timeout: float = WAIT) -> list[Received]:
        """From another thread: until ``count`` messages have arrived."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.received) >= count, timeout):
                raise TimeoutError(f"{self.name}: {len(self.received)} of {count} messages")
        return list(self.received)


class _CountingSMTP(SMTP):
    def __init__(self, peer: Peer, **options: Any) -> None:
        super().__init__(peer, **options)
        self._peer = peer

    def connection_made(self, transport: Any) -> None:
        self._peer.open_connections += 1
        self._peer.most_open = max(self._peer.most_open, self._peer.open_connections)
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._peer.open_connections -= 1
        super().connection_lost(exc)


class SilentServer:
    """A receiving server that accepts connections and never says a word (no greeting): a
    stalled peer, for the client's timeouts. What the client sends is read and dropped; a
    connection is held until the client closes it or ``stop()``."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await asyncio.start_server(self._hold, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            while await reader.read(4096):
                pass
        except ConnectionError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.close()


@contextmanager
def background_loop() -> Iterator[anyio.from_thread.BlockingPortal]:
    """An event loop in a thread, for peers that must outlive an in-process server."""
    with anyio.from_thread.start_blocking_portal("asyncio") as portal:
        yield portal
