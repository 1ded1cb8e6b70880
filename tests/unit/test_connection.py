"""Connection reading rules: bounded lines, discard and recover, exact reads, timeouts."""

from __future__ import annotations

import asyncio
import socket
import threading
from types import SimpleNamespace

import anyio
import pytest

from stalwart_py.config import ListenerSettings
from stalwart_py.connection import (
    Address,
    Connection,
    ConnectionClosed,
    LineTooLong,
    ListenerView,
    ReadTimeout,
)
from stalwart_py.transport import HIGH_WATER, ClientStream

pytestmark = pytest.mark.anyio


async def make_connection(idle_timeout: float = 5.0) -> tuple[Connection, socket.socket]:
    ours, theirs = socket.socketpair()
    loop = asyncio.get_running_loop()
    _, stream = await loop.connect_accepted_socket(ClientStream, ours)
    settings = ListenerSettings(idle_timeout=idle_timeout)
    conn = Connection(
        stream,
        raw_socket=ours,
        peer=Address("", 0, None),
        local=Address("", 0, None),
        listener=ListenerView("test", "probe", settings, ()),
        server=SimpleNamespace(draining=anyio.Event()),
        session_id="t",
    )
    return conn, theirs


async def test_lines_arrive_whole_across_chunks():
    conn, peer = await make_connection()
    peer.sendall(b"HEL")
    peer.sendall(b"O x\r\nNOOP\r\npartial")
    assert await conn.readline(100) == b"HELO x\r\n"
    assert await conn.readline(100) == b"NOOP\r\n"
    peer.sendall(b" line\n")
    assert await conn.readline(100) == b"partial line\n"


async def test_a_long_line_is_discarded_up_to_its_end():
    conn, peer = await make_connection()
    peer.sendall(b"a" * 300)
    with pytest.raises(LineTooLong):
        await conn.readline(100)
    peer.sendall(b"b" * 300 + b"\r\nnext\r\n")
    assert await conn.readline(100) == b"next\r\n"
    peer.sendall(b"c" * 150 + b"\r\nafter\r\n")  # complete but too long: also discarded
    with pytest.raises(LineTooLong):
        await conn.readline(100)
    assert await conn.readline(100) == b"after\r\n"


async def test_exact_reads_and_peek():
    conn, peer = await make_connection()
    peer.sendall(b"0123456789rest\n")
    assert await conn.peek(3) == b"012"
    assert await conn.receive_exactly(10) == b"0123456789"
    assert await conn.readline(100) == b"rest\n"


async def test_end_of_stream_mid_line_is_connection_closed():
    conn, peer = await make_connection()
    peer.sendall(b"no newline")
    peer.close()
    with pytest.raises(ConnectionClosed):
        await conn.readline(100)


async def test_idle_timeout_and_per_call_timeout():
    conn, peer = await make_connection(idle_timeout=0.05)
    with pytest.raises(ReadTimeout):
        await conn.readline(100)
    with pytest.raises(ReadTimeout):
        await conn.receive_exactly(5, timeout=0.05)
    peer.sendall(b"late\n")
    assert await conn.readline(100) == b"late\n"


async def test_send_to_a_closed_peer_is_connection_closed():
    conn, peer = await make_connection()
    peer.close()

    async def flood() -> None:
        for _ in range(100):
            await conn.send(b"x" * 65536)

    with pytest.raises(ConnectionClosed):
        await flood()


async def test_a_flood_of_input_is_read_with_backpressure():
    conn, peer = await make_connection()
    line = b"x" * 1023 + b"\n"
    total = 8 * 1024 * 1024
    writer = threading.Thread(target=peer.sendall, args=(line * (total // len(line)),))
    writer.start()
    received = largest = 0
    while received < total:
        largest = max(largest, conn.buffered())
        received += len(await conn.readline(2048))
    writer.join()
    assert received == total
    # Reading stops at the high water; one more read of the transport (up to 256 KiB) may land.
    assert largest <= HIGH_WATER + 256 * 1024


async def test_the_peer_half_closing_after_its_last_line():
    conn, peer = await make_connection()
    peer.sendall(b"QUIT\r\n")
    peer.shutdown(socket.SHUT_WR)
    assert await conn.readline(100) == b"QUIT\r\n"
    await conn.send(b"221 bye\r\n")  # replies still go out after the client's EOF
    with pytest.raises(ConnectionClosed):
        await conn.readline(100)
    assert peer.recv(100) == b"221 bye\r\n"
