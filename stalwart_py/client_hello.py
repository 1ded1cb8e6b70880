"""What a TLS client offers in its ClientHello, read before OpenSSL answers it.

Python's ``ssl`` calls the SNI callback with the server name only; it does not say which
application protocols (ALPN, RFC 7301) the client offered. TLS-ALPN-01 (RFC 8737 3) needs
both: only a ClientHello that names the domain *and* offers ``acme-tls/1`` may be answered
with the validation certificate, and every other client (a mail client connecting to the
same name while the challenge is pending) must still get the real certificate.

So a listener's context creates ``HelloReadingSSLObject`` for each handshake (through
``SSLContext.sslobject_class``): before each step of the handshake it copies what is waiting
in the incoming memory BIO (read, then written back: the BIO is a FIFO that OpenSSL empties
at every step, so the copy sees every byte once, in order), until the ClientHello is whole.
By the time OpenSSL calls the SNI callback, ``offered_alpn`` says what the client offered.
The copy is made only while ``wants_client_hello`` on the context says it is needed (a
challenge is pending), so that other handshakes cost nothing.

ClientHello (RFC 8446 4.1.2, RFC 5246 7.4.1.2) inside handshake records (content type 22)::

    uint8 msg_type = 1; uint24 length;
    ProtocolVersion legacy_version; Random random[32];
    opaque legacy_session_id<0..32>; CipherSuite cipher_suites<2..2^16-2>;
    opaque legacy_compression_methods<1..2^8-1>; Extension extensions<8..2^16-1>;

and the ALPN extension (type 16) is ``ProtocolName protocol_name_list<2..2^16-1>``, each name
``opaque ProtocolName<1..2^8-1>``.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

HANDSHAKE = 22  # TLS record content type
CLIENT_HELLO = 1  # handshake message type
ALPN_EXTENSION = 16
# A ClientHello is a few hundred bytes (post-quantum key shares make it a few kilobytes); one
# larger than this is not read further, and counts as offering nothing.
MAX_HELLO = 32 * 1024


class _Reader:
    """A cursor over bytes; running past the end raises ValueError."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("truncated")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def number(self, width: int) -> int:
        return int.from_bytes(self.take(width), "big")

    def vector(self, length_width: int) -> bytes:
        return self.take(self.number(length_width))


def client_hello(data: bytes) -> bytes | None:
    """The ClientHello message body from the first bytes of a TLS stream: None while more
    bytes are needed, ``b""`` when the stream does not start with a ClientHello (or one larger
    than ``MAX_HELLO``). A ClientHello may span several records (RFC 8446 5.1)."""
    message = bytearray()
    pos = 0
    while pos <= MAX_HELLO:
        if len(data) < pos + 5:
            return None
        if data[pos] != HANDSHAKE:
            return b""
        length = int.from_bytes(data[pos + 3 : pos + 5], "big")
        if len(data) < pos + 5 + length:
            return None
        message += data[pos + 5 : pos + 5 + length]
        pos += 5 + length
        if len(message) >= 4:
            if message[0] != CLIENT_HELLO:
                return b""
            body_length = int.from_bytes(message[1:4], "big")
            if body_length > MAX_HELLO:
                return b""
            if len(message) >= 4 + body_length:
                return bytes(message[4 : 4 + body_length])
    return b""


def offered_alpn(body: bytes) -> tuple[str, ...]:
    """The ALPN protocol names a ClientHello body offers; none for a malformed one."""
    try:
        reader = _Reader(body)
        reader.take(2 + 32)  # legacy_version, random
        reader.vector(1)  # legacy_session_id
        reader.vector(2)  # cipher_suites
        reader.vector(1)  # legacy_compression_methods
        if reader.pos == len(body):
            return ()  # no extensions at all (an SSL 3.0-style hello)
        extensions = _Reader(reader.vector(2))
        while extensions.pos < len(extensions.data):
            kind = extensions.number(2)
            data = extensions.vector(2)
            if kind != ALPN_EXTENSION:
                continue
            names = _Reader(_Reader(data).vector(2))
            offered = []
            while names.pos < len(names.data):
                offered.append(names.vector(1).decode("ascii", "replace"))
            return tuple(offered)
    except ValueError:
        return ()
    return ()


class HelloReadingSSLObject(ssl.SSLObject):
    """An ``SSLObject`` that knows the ALPN names its client offered (``offered_alpn``),
    read from the ClientHello before OpenSSL processes it; see the module docstring."""

    offered_alpn: tuple[str, ...] = ()
    _incoming: ssl.MemoryBIO | None = None
    _hello: bytearray | None = None

    @classmethod
    def _create(  # type: ignore[override]  # ssl.SSLObject's private constructor
        cls,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: Any = None,
        session: Any = None,
        context: ssl.SSLContext | None = None,
    ) -> HelloReadingSSLObject:
        self = super()._create(  # type: ignore[misc]
            incoming,
            outgoing,
            server_side=server_side,
            server_hostname=server_hostname,
            session=session,
            context=context,
        )
        wanted: Callable[[], bool] | None = getattr(context, "wants_client_hello", None)
        if server_side and wanted is not None and wanted():
            self._incoming = incoming
            self._hello = bytearray()
        return self

    def do_handshake(self) -> None:
        hello = self._hello
        if hello is not None and self._incoming is not None and self._incoming.pending:
            # Copy what OpenSSL is about to read: read it out, put it back (see above).
            waiting = self._incoming.read()
            self._incoming.write(waiting)
            hello += waiting
            body = client_hello(bytes(hello))
            if body is not None:
                self.offered_alpn = offered_alpn(body)
                self._hello = None
                self._incoming = None
        super().do_handshake()
