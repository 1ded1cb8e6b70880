"""Transport-level compression: raw DEFLATE (RFC 1951) both ways, as IMAP COMPRESS=DEFLATE
(RFC 4978) asks, and as any other protocol that negotiates it may use.

RFC 4978 section 3: after the server's ``OK``, each direction is one raw deflate stream (no
zlib or gzip header, ``wbits = -15``) that lives as long as the connection. It sits under the
protocol and over TLS: a ``Connection`` inflates what its byte stream delivers (plain TCP, or
TLS records already decrypted, behind a PROXY header or not) and deflates what it sends.

Every send ends with a sync flush (``Z_SYNC_FLUSH``): the peer can inflate each response
completely at once, so neither side ever waits for bytes the other is still holding back.

Reads stay bounded: the inflater is given at most ``FEED_CHUNK`` compressed bytes at a time
and asked for at most the number of plaintext bytes the reader can take, so a decompression
bomb (a 150 MB line in 150 KB of deflate) is inflated chunk by chunk, and discarded chunk by
chunk by the line reader, never whole. Corrupt input is ``CorruptStream``: the connection
cannot be read any further.
"""

from __future__ import annotations

import zlib

from stalwart_py.connection import CorruptStream

# Compressed bytes handed to the inflater at once: what it does not consume (because its
# output limit was reached) stays in its ``unconsumed_tail``, so this bounds that copy too.
FEED_CHUNK = 16 * 1024
# zlib's default level: Dovecot's default too (imap_compress_deflate_level = 6).
DEFAULT_LEVEL = 6

__all__ = ["DEFAULT_LEVEL", "FEED_CHUNK", "CorruptStream", "Deflate"]


class Deflate:
    """The two raw deflate streams of one connection: ``compress`` what is sent, ``inflate``
    what is received. Not thread-safe; a connection uses it from its event loop only, and a
    ``compress`` call is synchronous, so two tasks sending on one connection never interleave
    inside the deflate stream."""

    def __init__(self, level: int = DEFAULT_LEVEL) -> None:
        # memLevel 8 and a 32 KiB window: what every client expects (RFC 4978 section 4 lets
        # either side use a smaller window; the inflater must accept the full one).
        self._deflater = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
        self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        self._maybe_pending = False  # the last inflate filled its output: more may be inside
        self.ended = False  # the peer finished its stream (a final block): nothing follows
        self.sent_plain = 0
        self.sent_compressed = 0
        self.received_plain = 0

    def compress(self, data: bytes) -> bytes:
        """``data`` deflated and sync-flushed: the peer can inflate all of it at once."""
        out = self._deflater.compress(data) + self._deflater.flush(zlib.Z_SYNC_FLUSH)
        self.sent_plain += len(data)
        self.sent_compressed += len(out)
        return out

    def inflate(self, raw: bytearray, out: bytearray, limit: int) -> int:
        """Move compressed bytes from the front of ``raw`` into the inflater and append at
        most ``limit`` plaintext bytes to ``out``; return how many were appended (0 when
        ``raw`` holds no complete piece of data yet). Raises ``CorruptStream``."""
        inflater = self._inflater
        produced = 0
        while produced < limit and not self.ended:
            data = inflater.unconsumed_tail
            if not data:
                if raw:
                    data = bytes(raw[:FEED_CHUNK])
                    del raw[:FEED_CHUNK]
                elif not self._maybe_pending:
                    break
            wanted = limit - produced
            try:
                chunk = inflater.decompress(data, wanted)
            except zlib.error as exc:
                raise CorruptStream(f"corrupt compressed data: {exc}") from None
            # An output that filled the space given may have left bytes inside zlib (the rest
            # of a long match) even when all input was consumed: ask again before waiting.
            self._maybe_pending = len(chunk) == wanted
            if inflater.eof:
                self.ended = True
            out += chunk
            produced += len(chunk)
            if not chunk and not inflater.unconsumed_tail and not raw:
                break
        self.received_plain += produced
        return produced
