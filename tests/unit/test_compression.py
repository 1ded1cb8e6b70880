"""Raw DEFLATE under a Connection (RFC 4978): round trips, sync flushes, bounded inflation of
a decompression bomb, corrupt input, and the end of the client's stream."""

from __future__ import annotations

import logging
import os
import threading
import zlib
from typing import Any

import pytest

from stalwart_py.compression import FEED_CHUNK, Deflate
from stalwart_py.connection import (
    INFLATE_CHUNK,
    ConnectionClosed,
    CorruptStream,
    LineTooLong,
)
from tests.unit.test_connection import make_connection

pytestmark = pytest.mark.anyio


def client_deflater() -> zlib._Compress:
    return zlib.compressobj(9, zlib.DEFLATED, -15)


def deflated(data: bytes) -> bytes:
    compressor = client_deflater()
    return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)


def bomb(megabytes: int, tail: bytes = b"", compressor: Any = None) -> bytes:
    """``megabytes`` MiB of "A" with ``tail`` after them, as about 1 KB of deflate per MiB,
    continuing ``compressor``'s stream (made with ``rle_deflater``) or starting one. With
    run-length matching and a sync flush after each MiB, every MiB after the second deflates
    to the same bytes, so the bomb is built by repetition instead of compressing 150 MB."""
    compressor = compressor or rle_deflater()
    block = b"A" * (1024 * 1024)
    parts = [compressor.compress(block) + compressor.flush(zlib.Z_SYNC_FLUSH) for _ in range(3)]
    assert parts[1] == parts[2]
    end = compressor.compress(tail) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return parts[0] + parts[1] * (megabytes - 1) + end


def rle_deflater() -> Any:
    return zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_RLE)


def test_each_send_is_complete_for_the_peer():
    """A sync flush after each send: the peer inflates every response in full at once, and
    the stream goes on (one deflate stream for the whole connection)."""
    ours = Deflate()
    inflater = zlib.decompressobj(-15)
    for reply in (b"* OK hello\r\n", b"a1 OK done\r\n" * 50, b"x"):
        wire = ours.compress(reply)
        assert wire.endswith(b"\x00\x00\xff\xff")  # the empty stored block of a sync flush
        assert inflater.decompress(wire) == reply
    assert ours.sent_plain == 12 + 600 + 1 and ours.sent_compressed < ours.sent_plain


def test_inflation_is_bounded_by_the_caller():
    bomb = deflated(b"a" * (20 * 1024 * 1024))
    assert len(bomb) < 25 * 1024
    raw, out = bytearray(bomb), bytearray()
    ours = Deflate()
    total = 0
    while True:
        produced = ours.inflate(raw, out, 4096)
        assert len(out) == produced <= 4096
        if not produced:
            break
        total += produced
        out.clear()
    assert total == 20 * 1024 * 1024 and not raw


def test_output_held_back_by_a_full_buffer_comes_out_without_more_input():
    """zlib can keep the rest of a long match inside when the output space runs out exactly;
    the next call must get it even though no compressed byte is left to feed."""
    data = os.urandom(100) * 50
    raw, out = bytearray(deflated(data)), bytearray()
    ours = Deflate()
    while ours.inflate(raw, out, 100):
        pass
    assert bytes(out) == data


def test_compressed_input_arriving_byte_by_byte():
    wire = deflated(b"a1 NOOP\r\n")
    raw, out = bytearray(), bytearray()
    ours = Deflate()
    for byte in wire:
        raw.append(byte)
        ours.inflate(raw, out, INFLATE_CHUNK)
    assert bytes(out) == b"a1 NOOP\r\n"


def test_corrupt_input_is_corrupt_stream():
    with pytest.raises(CorruptStream):
        Deflate().inflate(bytearray(b"\xff" * 64), bytearray(), 1024)
    assert issubclass(CorruptStream, ConnectionClosed)  # sessions end as on a closed peer


async def test_connection_reads_lines_through_compression():
    conn, peer = await make_connection()
    peer.sendall(b"plain\r\n")
    assert await conn.readline(100) == b"plain\r\n"
    await conn.send(b"+ OK\r\n")
    conn.start_compression()
    assert conn.compressed
    compressor = client_deflater()
    peer.sendall(compressor.compress(b"a1 NOOP\r\na2 ") + compressor.flush(zlib.Z_SYNC_FLUSH))
    assert await conn.readline(100) == b"a1 NOOP\r\n"
    peer.sendall(compressor.compress(b"LOGOUT\r\n") + compressor.flush(zlib.Z_SYNC_FLUSH))
    assert await conn.readline(100) == b"a2 LOGOUT\r\n"
    literal = os.urandom(300_000)  # incompressible: more than the socket buffers hold
    wire = compressor.compress(literal) + compressor.flush(zlib.Z_SYNC_FLUSH)
    writer = threading.Thread(target=peer.sendall, args=(wire,))
    writer.start()
    assert await conn.receive_exactly(len(literal)) == literal
    writer.join()
    await conn.send(b"* BYE\r\n")
    inflater = zlib.decompressobj(-15)
    received = peer.recv(1000)
    assert received.startswith(b"+ OK\r\n")
    assert inflater.decompress(received[6:]) == b"* BYE\r\n"


async def test_a_decompression_bomb_is_discarded_chunk_by_chunk():
    """150 MB of one line in about 150 KB of deflate: the line reader gives up at its limit
    and discards the rest as it is inflated; the plaintext buffer never holds more than the
    limit and one inflated chunk."""
    conn, peer = await make_connection()
    conn.start_compression()
    size = 150 * 1024 * 1024
    wire = bomb(150, b"\r\na1 NOOP\r\n")
    assert len(wire) < 160 * 1024
    writer = threading.Thread(target=peer.sendall, args=(wire,))
    writer.start()
    largest = 0
    original = conn._inflate

    def watched() -> bool:
        nonlocal largest
        result = original()
        largest = max(largest, len(conn._buffer))
        return result

    conn._inflate = watched  # type: ignore[method-assign]
    with pytest.raises(LineTooLong):
        await conn.readline(8192)
    assert await conn.readline(8192) == b"a1 NOOP\r\n"
    writer.join()
    assert largest <= 8192 + INFLATE_CHUNK
    assert conn._deflate is not None and conn._deflate.received_plain >= size


async def test_corrupt_input_ends_the_connection_with_a_log_line(caplog):
    conn, peer = await make_connection()
    conn.start_compression()
    peer.sendall(deflated(b"a1 NOOP\r\n"))
    assert await conn.readline(100) == b"a1 NOOP\r\n"
    peer.sendall(b"\xff" * 32)
    with caplog.at_level(logging.WARNING), pytest.raises(CorruptStream):
        await conn.readline(100)
    assert "corrupt compressed data" in caplog.text
    transport = conn._stream.transport
    assert transport is not None and transport.is_closing()  # the server closed it


async def test_the_client_ending_its_stream_is_connection_closed():
    conn, peer = await make_connection()
    conn.start_compression()
    compressor = client_deflater()
    peer.sendall(compressor.compress(b"a1 LOGOUT\r\n") + compressor.flush(zlib.Z_FINISH))
    assert await conn.readline(100) == b"a1 LOGOUT\r\n"
    with pytest.raises(ConnectionClosed):
        await conn.readline(100)


async def test_empty_flush_blocks_do_not_renew_the_idle_timeout():
    """A client that sends only empty sync-flush blocks sends no command: the idle timeout
    still ends its wait."""
    conn, peer = await make_connection(idle_timeout=0.3)
    conn.start_compression()
    compressor = client_deflater()
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(0.05):
            peer.sendall(compressor.flush(zlib.Z_SYNC_FLUSH))

    thread = threading.Thread(target=trickle)
    thread.start()
    try:
        from stalwart_py.connection import ReadTimeout

        with pytest.raises(ReadTimeout):
            await conn.readline(100)
    finally:
        stop.set()
        thread.join()


def test_feed_chunk_is_small():
    assert FEED_CHUNK <= INFLATE_CHUNK
