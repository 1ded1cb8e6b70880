"""ManageSieve (RFC 5804): clients upload, list, activate, download and delete the Sieve
scripts the delivery pipeline runs.

``ManageSieve`` is the protocol plugin (``protocol = "managesieve"``, port 4190). The
connection loop here feeds the sans-IO parser (``parser.py``) and hands each command to the
session (``session.py``); it owns the socket: reads with timeouts, STARTTLS, the SASL
exchange, and closing. Settings (the ``managesieve.*`` table):

``max-scripts``        scripts per account (``NO (QUOTA/MAXSCRIPTS)`` past it)
``max-script-size``    bytes per script (``NO (QUOTA/MAXSIZE)``)
``max-line-length``    bytes of a command outside its literals
``max-bad-commands``   commands refused as malformed or unknown before ``BYE``
``auth.require-tls``   AUTHENTICATE only under TLS (STARTTLS or an implicit-TLS listener)
"""

from __future__ import annotations

import binascii
import contextlib
from dataclasses import dataclass, field
from typing import Annotated

from protocols.managesieve import responses
from protocols.managesieve.parser import NEED_DATA, BadLine, Line, Parser, String
from stalwart_py import sasl
from stalwart_py.config.types import Range, Size
from stalwart_py.plugin import Connection, ConnectionClosed, Protocol, ReadTimeout, Refusal


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """``managesieve.auth.*``."""

    require_tls: bool = True  # no AUTHENTICATE (and no SASL offered) before TLS


@dataclass(frozen=True, slots=True)
class ManageSieveSettings:
    """The ``managesieve.*`` table."""

    max_scripts: Annotated[int, Range(1, 100_000)] = 100  # scripts an account may keep
    max_script_size: Size = 256 * 1024  # bytes of one script
    max_line_length: Annotated[int, Range(512, 1 << 20)] = 8192  # a command outside literals
    max_bad_commands: Annotated[int, Range(1, 1000)] = 10  # malformed or unknown, before BYE
    auth: AuthSettings = field(default_factory=AuthSettings)


class ManageSieve(Protocol):
    name = "managesieve"
    api_versions = (2, 2)
    settings = ManageSieveSettings
    starttls = True

    async def handle(self, conn: Connection) -> None:
        await _Loop(conn).run()

    async def refuse(self, conn: Connection, reason: Refusal) -> None:
        await conn.send(responses.bye(reason.text, "TRYLATER"))


class _Loop:
    def __init__(self, conn: Connection) -> None:
        # The session brings the Sieve validator (and the regex engine): loaded on the first
        # connection, not at start (a start imports only what binding needs; bench/startup.py).
        from protocols.managesieve.session import Policy, Reply, Session

        self._reply = Reply
        self.conn = conn
        settings: ManageSieveSettings = conn.settings or ManageSieveSettings()
        self.settings = settings
        server = conn.server
        self.logins = server.metrics.counter(
            "stalwart_managesieve_logins", "ManageSieve authentications", ["listener", "result"]
        )
        self.parser = Parser(
            max_line=settings.max_line_length, max_literal=settings.max_script_size + 1024
        )
        self.session = Session(
            server.store,
            server.directory,
            Policy(settings.max_scripts, settings.max_script_size, settings.auth.require_tls),
            peer_ip=conn.peer.ip,
            tls=conn.tls is not None,
            on_login=self._login_result,
            log=conn.log,
        )
        self.bad_commands = 0

    def _login_result(self, result: str) -> None:
        self.logins.labels(self.conn.listener.id, result).inc()
        if result not in ("success", "failure", "throttled"):  # those the directory logs
            self.conn.log.info("authentication %s", result)

    async def run(self) -> None:
        conn = self.conn
        try:
            await conn.send(
                self.session.capabilities() + responses.ok("stalwart-py ManageSieve ready")
            )
            while True:
                if conn.draining:
                    await conn.send(responses.bye("Server shutting down", "TRYLATER"))
                    return
                event = await self._next_event()
                if isinstance(event, BadLine):
                    # An oversized script is a quota answer, not the client's mistake.
                    no = responses.no(event.reason, event.code)
                    reply = self._reply(no, bad=event.code is None)
                    if event.fatal:
                        conn.log.info("closing: %s", event.reason)
                        await conn.send(responses.bye(event.reason))
                        return
                else:
                    reply = await self.session.execute(event.items, self._exchange)
                if reply.bad:
                    self.bad_commands += 1
                    conn.log.info("bad command %d: %s", self.bad_commands, reply.data[:200])
                    if self.bad_commands >= self.settings.max_bad_commands:
                        await conn.send(responses.bye("Too many bad commands"))
                        return
                await conn.send(reply.data)
                if reply.close:
                    return
                if reply.start_tls:
                    await conn.start_tls()
                    self.session.tls = True
                    self.parser = Parser(
                        max_line=self.settings.max_line_length,
                        max_literal=self.settings.max_script_size + 1024,
                    )
                    await conn.send(self.session.capabilities() + responses.ok("TLS active"))
        except ReadTimeout:
            conn.log.info("idle timeout")
            await _quietly(conn, responses.bye("Disconnected for inactivity", "TRYLATER"))
        except ConnectionClosed:
            return

    async def _next_event(self) -> Line | BadLine:
        """The next command. Waiting for it may take the idle-timeout; once it has begun, it
        must arrive within the command-timeout plus its size at the min-data-rate."""
        deadline: float | None = None
        while True:
            event = self.parser.next_event()
            if event is not NEED_DATA:
                assert isinstance(event, Line | BadLine)
                return event
            data = await self.conn.receive(deadline=deadline)
            deadline = self.conn.allow_for(deadline or self.conn.deadline(), len(data))
            self.parser.receive_data(data)

    async def _exchange(self, challenge: bytes) -> bytes:
        """One SASL round: send the challenge as a base64 string, read the client's string."""
        encoded = binascii.b2a_base64(challenge, newline=False)
        await self.conn.send(responses.string(encoded) + b"\r\n")
        event = await self._next_event()
        if isinstance(event, BadLine) or len(event.items) != 1:
            raise sasl.SaslError("expected a SASL response (a string)")
        item = event.items[0]
        if not isinstance(item, String) or len(item.data) > sasl.MAX_ENCODED_RESPONSE:
            raise sasl.SaslError("expected a SASL response (a string of base64)")
        return sasl.decode_response(item.data)


async def _quietly(conn: Connection, data: bytes) -> None:
    with contextlib.suppress(ConnectionClosed):
        await conn.send(data)


__all__ = ["ManageSieve", "ManageSieveSettings"]
