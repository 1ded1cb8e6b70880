"""``Connection``: one client connection as a protocol sees it.

A buffered reader and writer over a ``transport.ClientStream``. Every read is bounded (a
line limit, an exact count) and has a timeout (the listener's ``idle-timeout`` unless the
caller gives one), so a client can neither make the server buffer without bound nor hold a
session forever. Stream failures of every kind surface as one exception, ``ConnectionClosed``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from stalwart_py.config import ListenerSettings
from stalwart_py.config.types import IPAddress
from stalwart_py.transport import ClientStream, StreamClosed, StreamTimeout

if TYPE_CHECKING:
    from stalwart_py.context import ServerContext

RECEIVE_SIZE = 65536
# Reads answered from the buffer in a row before the session yields to the event loop, so a
# client that pipelines thousands of commands cannot keep the others waiting.
YIELD_EVERY = 64


class ConnectionClosed(Exception):
    """The client went away (or the stream broke): nothing more can be read or sent."""


class ReadTimeout(TimeoutError):
    """No complete line or block arrived within the timeout."""


class LineTooLong(ValueError):
    """A line exceeded the limit. It has been discarded, up to and including its end of line,
    so the session can answer with an error and go on reading the next line."""


@dataclass(frozen=True, slots=True)
class Address:
    """An endpoint of a connection: an IP address and port, or a Unix-domain socket."""

    host: str  # the IP address, or the socket path for a Unix socket ("" when unnamed)
    port: int  # 0 for a Unix socket
    ip: IPAddress | None  # None for a Unix socket

    @property
    def is_unix(self) -> bool:
        return self.ip is None

    @classmethod
    def from_sockaddr(cls, family: int, sockaddr: Any) -> Address:
        if family == socket.AF_UNIX:
            path = sockaddr.decode() if isinstance(sockaddr, bytes) else (sockaddr or "")
            return cls(path, 0, None)
        ip = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        return cls(str(ip), sockaddr[1], ip)

    @classmethod
    def from_ip(cls, ip: IPAddress, port: int) -> Address:
        return cls(str(ip), port, ip)

    def __str__(self) -> str:
        if self.ip is None:
            return f"unix:{self.host}" if self.host else "unix"
        return f"[{self.host}]:{self.port}" if self.ip.version == 6 else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class TLSInfo:
    """The negotiated TLS session of a connection."""

    version: str  # "TLSv1.3"
    cipher: str
    server_name: str | None  # the SNI the client asked for


@dataclass(frozen=True, slots=True)
class ListenerView:
    """The listener a connection arrived on, with the settings in force for its peer."""

    id: str
    protocol: str
    settings: ListenerSettings
    scope: tuple[str, ...]  # the key paths of the peer scopes that matched, most general first


class Connection:
    """A client connection, handed to ``Protocol.handle``. See the module docstring."""

    def __init__(
        self,
        stream: ClientStream,
        *,
        raw_socket: socket.socket | None,
        peer: Address,
        local: Address,
        listener: ListenerView,
        server: ServerContext,
        session_id: str,
    ) -> None:
        self._stream = stream
        self._buffer = stream.buffer  # the stream appends what arrives; we take from the front
        self._scanned = 0  # bytes of the buffer already searched for an end of line
        self._discarding = False  # inside an over-long line: skip to its end
        self._unyielded = 0
        self.raw_socket = raw_socket
        self.peer = peer
        self.local = local
        self.listener = listener
        self.server = server
        self.session_id = session_id
        self.tls: TLSInfo | None = None
        self.log = logging.LoggerAdapter(
            logging.getLogger(f"stalwart_py.{listener.protocol}"), {"session": session_id}
        )

    @property
    def settings(self) -> Any:
        """The protocol's own settings (its ``<protocol>.*`` table) for this connection."""
        return self.listener.settings.protocol

    @property
    def draining(self) -> bool:
        """True once the server is stopping: a good moment to end the session politely."""
        return self.server.draining.is_set()

    # -- reading ------------------------------------------------------------------------

    async def readline(self, limit: int, *, timeout: float | None = None) -> bytes:
        """The next line, up to and including ``\\n``, of at most ``limit`` bytes.

        Raises LineTooLong (the line is discarded), ReadTimeout, or ConnectionClosed (also
        when the stream ends in the middle of a line).
        """
        buffer = self._buffer
        while True:
            if self._discarding:
                end = buffer.find(b"\n")
                if end < 0:
                    buffer.clear()
                else:
                    del buffer[: end + 1]
                    self._discarding = False
                    self._scanned = 0
                    continue
            else:
                end = buffer.find(b"\n", self._scanned)
                if end >= 0:
                    self._scanned = 0
                    line = bytes(buffer[: end + 1])
                    del buffer[: end + 1]
                    await self._taken()
                    if len(line) > limit:
                        raise LineTooLong(f"line of {len(line)} bytes, the limit is {limit}")
                    return line
                if len(buffer) >= limit:
                    buffer.clear()
                    self._scanned = 0
                    self._discarding = True
                    raise LineTooLong(f"line longer than {limit} bytes")
                self._scanned = len(buffer)
            await self._fill(timeout)

    async def receive_exactly(self, count: int, *, timeout: float | None = None) -> bytes:
        """Exactly ``count`` bytes (the caller bounds ``count``)."""
        while len(self._buffer) < count:
            await self._fill(timeout)
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        self._scanned = 0
        await self._taken()
        return data

    async def receive(
        self, max_bytes: int = RECEIVE_SIZE, *, timeout: float | None = None
    ) -> bytes:
        """Whatever is available, at least one byte and at most ``max_bytes``."""
        if not self._buffer:
            await self._fill(timeout)
        data = bytes(self._buffer[:max_bytes])
        del self._buffer[:max_bytes]
        self._scanned = 0
        await self._taken()
        return data

    def buffered(self) -> int:
        """How many received bytes wait in the buffer (pipelined input)."""
        return len(self._buffer)

    async def peek(self, count: int, *, timeout: float | None = None) -> bytes:
        """The next ``count`` bytes (fewer at the end of the stream), without consuming them."""
        try:
            while len(self._buffer) < count:
                await self._fill(timeout)
        except ConnectionClosed:
            if not self._buffer:
                raise
        return bytes(self._buffer[:count])

    async def _fill(self, timeout: float | None) -> None:
        limit = self.listener.settings.idle_timeout if timeout is None else timeout
        self._unyielded = 0
        try:
            await self._stream.wait_for_data(limit)
        except StreamTimeout:
            raise ReadTimeout(f"no data for {limit:g} seconds") from None
        except StreamClosed as exc:
            raise ConnectionClosed(str(exc)) from None

    async def _taken(self) -> None:
        """Bytes left the buffer: let the stream read again, and now and then let others run."""
        self._stream.consumed()
        self._unyielded += 1
        if self._unyielded >= YIELD_EVERY:
            self._unyielded = 0
            await anyio.lowlevel.checkpoint()

    # -- writing ------------------------------------------------------------------------

    async def send(self, data: bytes, *, timeout: float | None = None) -> None:
        """Send ``data``; a client that stops reading for the idle timeout is cut off."""
        limit = self.listener.settings.idle_timeout if timeout is None else timeout
        try:
            self._stream.write(data)
            await self._stream.drain(limit)
        except StreamTimeout:
            raise ConnectionClosed(f"client did not read for {limit:g} seconds") from None
        except StreamClosed as exc:
            raise ConnectionClosed(str(exc)) from None

    def send_eof(self) -> None:
        """Half-close: no more data from us (plain TCP only; a no-op over TLS)."""
        transport = self._stream.transport
        if transport is not None and transport.can_write_eof() and not transport.is_closing():
            transport.write_eof()

    # -- TLS ----------------------------------------------------------------------------

    async def start_tls(self, context: ssl.SSLContext | None = None) -> None:
        """Perform the server side of a TLS handshake (STARTTLS, or implicit TLS).

        Bytes the client sent after the command that asked for TLS, and before the handshake,
        are discarded: they were not protected and must not be read as if they had been
        (the STARTTLS command injection of CVE-2011-0411).
        """
        if self._buffer:
            self.log.warning("discarded %d bytes sent before the TLS handshake", len(self._buffer))
            self._buffer.clear()
            self._scanned = 0
            self._discarding = False
        settings = self.listener.settings
        if context is None:
            context = self.server.tls.server_context(settings.tls, settings.hostname)
        stream = self._stream
        if stream.closing:
            raise ConnectionClosed("connection closed before the TLS handshake")
        loop = asyncio.get_running_loop()
        try:
            transport = await loop.start_tls(
                stream.transport,
                stream,
                context,
                server_side=True,
                ssl_handshake_timeout=settings.tls.handshake_timeout,
            )
        except (TimeoutError, OSError, ssl.SSLError, ConnectionError, RuntimeError) as exc:
            raise ConnectionClosed(f"TLS handshake failed: {exc or type(exc).__name__}") from None
        if transport is None:
            raise ConnectionClosed("TLS handshake failed: connection closed")
        stream.transport = transport
        ssl_object: ssl.SSLObject = transport.get_extra_info("ssl_object")
        cipher = ssl_object.cipher()
        self.tls = TLSInfo(
            version=ssl_object.version() or "",
            cipher=cipher[0] if cipher else "",
            server_name=getattr(ssl_object, "sni", None),
        )

    async def aclose(self) -> None:
        """Close after what was sent has been handed to the kernel (TLS: with close_notify)."""
        transport = self._stream.transport
        if transport is not None and not transport.is_closing():
            transport.close()
