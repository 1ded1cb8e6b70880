"""Connection reading rules: bounded lines, discard and recover, exact reads, timeouts."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from types import SimpleNamespace

import anyio
import anyio.lowlevel
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


async def test_a_busy_client_moves_one_read_deadline_and_a_shorter_wait_still_times_out():
    """The read timer is lazy: a thousand commands leave no thousand cancelled timers on the
    loop, and a wait with a shorter timeout than the armed timer's still ends on time."""
    conn, peer = await make_connection(idle_timeout=30.0)
    loop = asyncio.get_running_loop()
    scheduled = len(loop._scheduled)  # type: ignore[attr-defined]
    for n in range(1000):
        peer.sendall(b"NOOP %d\r\n" % n)
        assert await conn.readline(100) == b"NOOP %d\r\n" % n
    assert len(loop._scheduled) <= scheduled + 1  # type: ignore[attr-defined]
    started = time.monotonic()
    with pytest.raises(ReadTimeout):
        await conn.readline(100, timeout=0.1)  # the armed timer is ~30 s away
    assert time.monotonic() - started < 5
    peer.close()
    with pytest.raises(ConnectionClosed):
        await conn.readline(100)
    await conn.aclose()
    await anyio.lowlevel.checkpoint()  # connection_lost runs from the loop's next turn
    assert conn._stream._read_timer is None  # a closed stream keeps no timer alive


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


async def test_an_exact_read_far_larger_than_the_buffer():
    """An IMAP literal of megabytes: reading must go on while the read waits (it stopped at
    the high-water mark and never resumed: the 400 KB APPEND that hung)."""
    conn, peer = await make_connection()
    size = 5 * HIGH_WATER + 17
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    writer = threading.Thread(target=peer.sendall, args=(data + b"after\n",))
    writer.start()
    with anyio.fail_after(10):
        assert await conn.receive_exactly(size) == data
        assert await conn.readline(100) == b"after\n"
    writer.join()
    assert conn._stream.buffer == b""


async def test_a_deadline_bounds_a_trickle_that_each_timeout_would_allow():
    """One byte at a time, each well within the idle timeout: the deadline still ends it."""
    conn, peer = await make_connection(idle_timeout=5.0)
    conn.listener = ListenerView(
        "test", "probe", ListenerSettings(idle_timeout=5.0, command_timeout=0.3), ()
    )
    deadline = conn.deadline()

    async def trickle() -> None:
        for byte in b"NOOP NOOP NOOP\r\n":
            peer.send(bytes([byte]))
            await anyio.sleep(0.05)  # ok: the slow client under test

    async with anyio.create_task_group() as group:
        group.start_soon(trickle)
        with pytest.raises(ReadTimeout, match="did not finish in time"):
            await conn.readline(100, deadline=deadline)
        group.cancel_scope.cancel()


async def test_allow_for_moves_a_deadline_at_the_minimum_data_rate():
    conn, _ = await make_connection()
    conn.listener = ListenerView(
        "test", "probe", ListenerSettings(command_timeout=10.0, min_data_rate=1000), ()
    )
    assert conn.allow_for(100.0, 5000) == 105.0
    assert 10.0 <= conn.deadline(2000) - time.monotonic() <= 12.1


async def test_half_close_after_the_peer_reset_is_quiet():
    """HTTP half-closes after its answer; a TCP peer already gone (reset) made shutdown()
    fail with ENOTCONN, and a traceback was logged."""
    listening = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listening.getsockname())
    ours, _ = listening.accept()
    listening.close()
    loop = asyncio.get_running_loop()
    _, stream = await loop.connect_accepted_socket(ClientStream, ours)
    conn = Connection(
        stream,
        raw_socket=ours,
        peer=Address("", 0, None),
        local=Address("", 0, None),
        listener=ListenerView("test", "probe", ListenerSettings(), ()),
        server=SimpleNamespace(draining=anyio.Event()),
        session_id="t",
    )
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()  # a reset (on loopback, delivered at once); the event loop has not seen it
    conn.send_eof()  # no exception
