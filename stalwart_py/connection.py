"""``Connection``: one client connection as a protocol sees it.

A buffered reader and writer over a ``transport.ClientStream``. Every read is bounded (a
line limit, an exact count) and has a timeout (the listener's ``idle-timeout`` unless the
caller gives one), so a client can neither make the server buffer without bound nor hold a
session forever. Stream failures of every kind surface as one exception, ``ConnectionClosed``.

A timeout bounds each wait, so a client that sends one byte every few seconds would never
trip it. A *deadline* bounds the whole read: a command, once begun, must arrive whole by
``begin_command()``'s deadline (the listener's ``command-timeout``), and bulk data (a
literal, a DATA block, a script) by a deadline that ``allow_for`` moves on at the
listener's ``min-data-rate`` (Postfix's per-request deadline and minimum data rate).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import socket
import ssl
import time
from asyncio.sslproto import SSLProtocol
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from stalwart_py.config import ListenerSettings
from stalwart_py.config.types import IPAddress
from stalwart_py.transport import ClientStream, StreamClosed, StreamTimeout

if TYPE_CHECKING:
    from stalwart_py.compression import Deflate
    from stalwart_py.context import ServerContext

RECEIVE_SIZE = 65536
# With compression: the most plaintext one wait for data inflates into the buffer. The line
# reader discards an over-long line as it grows, so no read holds more than its own limit
# and this much, however well the client's data compresses.
INFLATE_CHUNK = 64 * 1024
# Reads answered from the buffer in a row before the session yields to the event loop, so a
# client that pipelines thousands of commands cannot keep the others waiting.
YIELD_EVERY = 64


class ConnectionClosed(Exception):
    """The client went away (or the stream broke): nothing more can be read or sent."""


class CorruptStream(ConnectionClosed):
    """The client's compressed stream (COMPRESS=DEFLATE) cannot be inflated: nothing more can
    be read from it, so the connection ends (the ``Connection`` has logged why)."""


class ReadTimeout(TimeoutError):
    """No complete line or block arrived within the timeout."""


class LineTooLong(ValueError):
    """A line exceeded the limit. It has been discarded, up to and including its end of line,
    so the session can answer with an error and go on reading the next line."""


@dataclass(frozen=True, slots=True)
class Address:
    """An endpoint of a connection: an IP address and port, a Unix-domain socket, or, behind
    a proxy that did not say (PROXY ``UNKNOWN``, a v2 ``LOCAL`` or non-TCP header), unknown."""

    host: str  # the IP address, or the socket path for a Unix socket ("" when unnamed)
    port: int  # 0 for a Unix socket
    ip: IPAddress | None  # None for a Unix socket and for an unknown client
    known: bool = True  # False: a proxy's client whose address it did not tell

    @property
    def is_unix(self) -> bool:
        return self.ip is None and self.known

    @classmethod
    def unknown(cls) -> Address:
        """A proxied client whose address the proxy did not tell: never the proxy's own
        address, which may be loopback and so trusted (a relay host)."""
        return cls("unknown", 0, None, known=False)

    @classmethod
    def from_sockaddr(cls, family: int, sockaddr: Any) -> Address:
        if family == socket.AF_UNIX:
            path = sockaddr.decode() if isinstance(sockaddr, bytes) else (sockaddr or "")
            return cls(path, 0, None)
        host, ip = _parse_ip(sockaddr[0])
        return cls(host, sockaddr[1], ip)

    @classmethod
    def from_ip(cls, ip: IPAddress, port: int) -> Address:
        return cls(str(ip), port, ip)

    def __str__(self) -> str:
        if not self.known:
            return "unknown"
        if self.ip is None:
            return f"unix:{self.host}" if self.host else "unix"
        return f"[{self.host}]:{self.port}" if self.ip.version == 6 else f"{self.host}:{self.port}"


@functools.lru_cache(maxsize=4096)
def _parse_ip(text: str) -> tuple[str, IPAddress]:
    """(canonical text, address) of a socket address's host (a scope id dropped). Every
    connection parses two (the peer's and ours) and they repeat: ours always, a client's
    for each of its connections. Raises ValueError as ``ip_address`` does."""
    ip = ipaddress.ip_address(text.split("%", 1)[0])
    return str(ip), ip


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
        self._deflate: Deflate | None = None  # COMPRESS=DEFLATE, once started
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

    async def begin_command(self, *, timeout: float | None = None) -> float:
        """Wait (``timeout``, by default the idle-timeout) until the client starts its next
        command; return the ``deadline()`` by which that command must have arrived whole.
        Raises ReadTimeout or ConnectionClosed."""
        if not self._buffer:
            await self._fill(timeout, None)
        return self.deadline()

    def deadline(self, size: int = 0) -> float:
        """For a read that begins now: the listener's ``command-timeout`` from now, and the
        time ``size`` bytes take at its ``min-data-rate`` on top (a ``time.monotonic()``)."""
        return self.allow_for(time.monotonic() + self.listener.settings.command_timeout, size)

    def allow_for(self, deadline: float, size: int) -> float:
        """``deadline`` moved on by the time ``size`` more bytes take at the listener's
        ``min-data-rate``: a literal, a message or a script may take as long as its size
        needs at that rate, and no longer."""
        return deadline + size / self.listener.settings.min_data_rate

    async def readline(
        self, limit: int, *, timeout: float | None = None, deadline: float | None = None
    ) -> bytes:
        """The next line, up to and including ``\\n``, of at most ``limit`` bytes.

        ``timeout`` bounds each wait for more bytes; ``deadline`` (``time.monotonic()``) the
        whole line. Raises LineTooLong (the line is discarded), ReadTimeout, or
        ConnectionClosed (also when the stream ends in the middle of a line).
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
            await self._fill(timeout, deadline)

    async def receive_exactly(
        self, count: int, *, timeout: float | None = None, deadline: float | None = None
    ) -> bytes:
        """Exactly ``count`` bytes (the caller bounds ``count``), which may be far more than
        the stream buffers: what has arrived is taken out of the buffer as it comes, so the
        stream keeps reading from the socket."""
        buffer = self._buffer
        if len(buffer) >= count:
            data = bytes(buffer[:count])
            del buffer[:count]
        else:
            # Chunks as they come, one join at the end: the stream buffer never holds more
            # than its high-water mark, and the data is copied once more, not per chunk.
            chunks = [buffer[:]]
            wanted = count - len(buffer)
            buffer.clear()
            while wanted:
                await self._fill(timeout, deadline)  # the buffer is empty: reading resumes
                chunk = buffer[:wanted]
                del buffer[: len(chunk)]
                chunks.append(chunk)
                wanted -= len(chunk)
            data = b"".join(chunks)
        self._scanned = 0
        await self._taken()
        return data

    async def receive(
        self,
        max_bytes: int = RECEIVE_SIZE,
        *,
        timeout: float | None = None,
        deadline: float | None = None,
    ) -> bytes:
        """Whatever is available, at least one byte and at most ``max_bytes``."""
        if not self._buffer:
            await self._fill(timeout, deadline)
        data = bytes(self._buffer[:max_bytes])
        del self._buffer[:max_bytes]
        self._scanned = 0
        await self._taken()
        return data

    def buffered(self) -> int:
        """How many received bytes wait in the buffer (pipelined input)."""
        return len(self._buffer)

    async def peek(
        self, count: int, *, timeout: float | None = None, deadline: float | None = None
    ) -> bytes:
        """The next ``count`` bytes (fewer at the end of the stream), without consuming them.
        ``count`` must stay below what the stream buffers (``transport.LOW_WATER``)."""
        try:
            while len(self._buffer) < count:
                await self._fill(timeout, deadline)
        except ConnectionClosed:
            if not self._buffer:
                raise
        return bytes(self._buffer[:count])

    async def _fill(self, timeout: float | None, deadline: float | None) -> None:
        """Until more bytes are in the buffer (plaintext: with compression, what the client
        sent is inflated into the buffer here, ``INFLATE_CHUNK`` at most per call)."""
        if self._deflate is not None and self._inflate():
            return
        limit = self.listener.settings.idle_timeout if timeout is None else timeout
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ReadTimeout("the client did not finish in time")
            if limit <= 0 or remaining < limit:
                limit = remaining
        # Compressed bytes may inflate to nothing (an empty flush block): the timeout is for
        # plaintext, so it is not renewed by them.
        until = time.monotonic() + limit if limit > 0 else None
        self._unyielded = 0
        while True:
            try:
                await self._stream.wait_for_data(limit)
            except StreamTimeout:
                if deadline is not None and time.monotonic() >= deadline:
                    raise ReadTimeout("the client did not finish in time") from None
                raise ReadTimeout(f"no data for {limit:g} seconds") from None
            except StreamClosed as exc:
                raise ConnectionClosed(str(exc)) from None
            if self._deflate is None or self._inflate():
                return
            if until is not None:
                left = until - time.monotonic()
                if left <= 0:
                    raise ReadTimeout(f"no data for {limit:g} seconds")
                limit = left

    def _inflate(self) -> bool:
        """Inflate what the stream has received into the buffer; True if plaintext came."""
        assert self._deflate is not None
        try:
            produced = self._deflate.inflate(self._stream.buffer, self._buffer, INFLATE_CHUNK)
        except CorruptStream as exc:
            self.log.warning("closing the connection: %s", exc)
            self._deflate.ended = True
            self._stream.buffer.clear()
            transport = self._stream.transport
            if transport is not None:
                transport.abort()
            raise
        self._stream.consumed()
        if not produced and self._deflate.ended:
            raise ConnectionClosed("the client ended its compressed stream")
        return produced > 0

    @property
    def compressed(self) -> bool:
        """COMPRESS=DEFLATE is active."""
        return self._deflate is not None

    def start_compression(self, level: int | None = None) -> None:
        """From now on both directions are raw DEFLATE streams (RFC 4978; see
        ``stalwart_py.compression``). Call it right after sending the reply that agrees to
        compression: every byte received from then on, including any already buffered, is
        compressed data. Works the same over TLS and behind a PROXY header."""
        from stalwart_py.compression import DEFAULT_LEVEL, Deflate

        if self._deflate is not None:
            raise RuntimeError("compression is already active")
        self._deflate = Deflate(DEFAULT_LEVEL if level is None else level)
        # The stream's buffer holds compressed bytes from now on; plaintext gets its own.
        self._buffer = bytearray()
        self._scanned = 0
        self._discarding = False

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
        if self._deflate is not None:
            data = self._deflate.compress(data)
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
            try:
                transport.write_eof()
            except OSError as exc:  # the peer is already gone (ENOTCONN): nothing to close
                self.log.debug("half-close after the peer left: %s", exc)

    # -- TLS ----------------------------------------------------------------------------

    async def start_tls(
        self, context: ssl.SSLContext | None = None, *, keep_buffered: bool = False
    ) -> None:
        """Perform the server side of a TLS handshake (STARTTLS, or implicit TLS).

        After STARTTLS, bytes the client sent after the command and before the handshake are
        discarded: they were not protected and must not be read as if they had been (the
        STARTTLS command injection of CVE-2011-0411). On an implicit-TLS listener
        (``keep_buffered``) they are the start of the handshake: a proxy writes its PROXY
        header and the client's ClientHello in one segment, so both arrive together.
        """
        if self._deflate is not None:
            raise RuntimeError("TLS cannot start inside a compressed stream")
        early = b""
        if self._buffer:
            if keep_buffered:
                early = bytes(self._buffer)
            else:
                self.log.warning(
                    "discarded %d bytes sent before the TLS handshake", len(self._buffer)
                )
            self._buffer.clear()
            self._scanned = 0
            self._discarding = False
        settings = self.listener.settings
        if context is None:
            context = self.server.tls.server_context(settings.tls, settings.hostname)
        stream = self._stream
        if stream.closing:
            raise ConnectionClosed("connection closed before the TLS handshake")
        try:
            transport = await _handshake(stream, context, early, settings.tls.handshake_timeout)
        except (TimeoutError, OSError, ssl.SSLError, ConnectionError, RuntimeError) as exc:
            raise ConnectionClosed(f"TLS handshake failed: {exc or type(exc).__name__}") from None
        if transport is None:
            raise ConnectionClosed("TLS handshake failed: connection closed")
        stream.transport = transport
        ssl_object: ssl.SSLObject = transport.get_extra_info("ssl_object")
        if ssl_object.selected_alpn_protocol() == "acme-tls/1":
            # RFC 8737 3: a TLS-ALPN-01 validation ends with the handshake
            raise ConnectionClosed("TLS-ALPN-01 validation handshake done")
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


async def _handshake(
    stream: ClientStream, context: ssl.SSLContext, early: bytes, timeout: float
) -> asyncio.Transport | None:
    """``loop.start_tls`` for the server side, able to begin with bytes already read.

    The same steps as ``asyncio.BaseEventLoop.start_tls``: the TLS protocol takes the
    transport's place, reading pauses until it is connected. ``early`` (bytes read before
    the handshake began) goes into the TLS protocol's buffer first, through its
    ``BufferedProtocol`` interface, exactly as if the socket had delivered it then.
    """
    loop = asyncio.get_running_loop()
    transport = stream.transport
    assert transport is not None
    waiter: asyncio.Future[None] = loop.create_future()
    tls = SSLProtocol(
        loop,
        stream,
        context,
        waiter,
        server_side=True,
        call_connection_made=False,
        ssl_handshake_timeout=timeout,
    )
    transport.pause_reading()
    transport.set_protocol(tls)

    def connected() -> None:
        tls.connection_made(transport)
        pending = memoryview(early)
        while pending and not transport.is_closing():
            buffer = tls.get_buffer(len(pending))
            size = min(len(buffer), len(pending))
            buffer[:size] = pending[:size]
            tls.buffer_updated(size)
            pending = pending[size:]

    made = loop.call_soon(connected)
    resumed = loop.call_soon(transport.resume_reading)
    try:
        await waiter
    except BaseException:
        transport.close()
        made.cancel()
        resumed.cancel()
        raise
    return tls._app_transport  # what loop.start_tls returns, too
