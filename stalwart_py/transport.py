"""The byte pipe under a ``Connection``: an asyncio protocol with flow control both ways.

Why not anyio's socket streams: a mail session reads many short lines and sends many short
replies, and per call an anyio stream pauses and resumes reading (two epoll_ctl calls),
yields to the event loop on every send, and wants a cancel scope for a timeout. Here received
bytes go straight into the connection's buffer, a send is a transport write that waits only
when the kernel and the transport's buffer are full, and a timeout is one timer on the loop.

That timer is lazy for reads: a session waits for data at every command, and arming and
cancelling a loop timer each time (a TimerHandle, a heap push with Python comparisons, a
cancelled entry left in the heap until it is due or swept) cost more than the wait itself
on a short command. The stream keeps the read deadline and one timer that is armed when a
wait needs one sooner; when it fires it fails the wait whose deadline has passed, or re-arms
for the current deadline. So a client busy with commands moves a number, not a heap.

Flow control: when the client sends faster than the session reads, reading from the socket
stops at ``HIGH_WATER`` buffered bytes and starts again below ``LOW_WATER``, so a client can
never make the server buffer without bound. When the client reads slower than the session
sends, the transport tells us (``pause_writing``) and ``drain`` waits.

This runs on anyio's asyncio backend, as the whole server does; a wait here is an asyncio
future, which anyio's cancel scopes cancel like any other await.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024


class StreamClosed(Exception):
    """The peer closed the connection, or it broke."""


class StreamTimeout(TimeoutError):
    """Nothing happened within the time given."""


class ClientStream(asyncio.Protocol):
    """One accepted connection. ``on_connect`` is called with it once the transport exists."""

    def __init__(self, on_connect: Callable[[ClientStream], None] | None = None) -> None:
        self.on_connect = on_connect
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._read_waiter: asyncio.Future[None] | None = None
        self._read_deadline = math.inf  # loop time at which the read waiter times out
        self._read_timer: asyncio.TimerHandle | None = None  # fires at or before the deadline
        self._drain_waiter: asyncio.Future[None] | None = None
        # Looked up once: asyncio.get_running_loop() costs a getpid() system call per call
        # on Python 3.11, and a session waits for data on every line.
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._loop = asyncio.get_running_loop()
        if self.on_connect is not None:
            self.on_connect(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > HIGH_WATER and not self._reading_paused:
            self._reading_paused = True
            assert self.transport is not None
            self.transport.pause_reading()
        _wake(self._read_waiter)

    def eof_received(self) -> bool:
        self.eof = True
        _wake(self._read_waiter)
        # Keep a plain transport open: the session may still have replies to send. TLS
        # cannot half-close (asyncio warns when asked to, and closes anyway).
        return self.extra("ssl_object") is None

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc or StreamClosed("connection closed")
        if self._read_timer is not None:  # it would keep this stream alive until it fired
            self._read_timer.cancel()
            self._read_timer = None
        _wake(self._read_waiter)
        _wake(self._drain_waiter)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        _wake(self._drain_waiter)

    # -- what a Connection uses ---------------------------------------------------------

    @property
    def closing(self) -> bool:
        return self.transport is None or self.transport.is_closing() or self.error is not None

    def consumed(self) -> None:
        """The session took bytes from the buffer: read from the socket again if we stopped."""
        if self._reading_paused and len(self.buffer) < LOW_WATER and not self.closing:
            self._reading_paused = False
            assert self.transport is not None
            self.transport.resume_reading()

    async def wait_for_data(self, timeout: float) -> None:
        """Until more bytes arrive; StreamClosed at the end of the stream."""
        if self.eof:
            raise StreamClosed(str(self.error or "end of stream"))
        self.consumed()
        loop = self._loop or asyncio.get_running_loop()
        self._read_waiter = waiter = loop.create_future()
        try:
            if timeout > 0 and not math.isinf(timeout):
                self._read_deadline = deadline = loop.time() + timeout
                timer = self._read_timer
                if timer is None or timer.when() > deadline:
                    if timer is not None:
                        timer.cancel()
                    self._read_timer = loop.call_at(deadline, self._read_timer_fired)
            await waiter
        finally:
            self._read_waiter = None
            self._read_deadline = math.inf
        if self.eof and not self.buffer:
            raise StreamClosed(str(self.error or "end of stream"))

    def _read_timer_fired(self) -> None:
        """The read timer: fail the wait whose deadline has passed, re-arm for a later one,
        or, with nobody waiting, stay unarmed until a wait needs it."""
        self._read_timer = None
        waiter, deadline = self._read_waiter, self._read_deadline
        if waiter is None or waiter.done() or math.isinf(deadline):
            return
        loop = waiter.get_loop()
        if loop.time() >= deadline:
            waiter.set_exception(StreamTimeout())
        else:
            self._read_timer = loop.call_at(deadline, self._read_timer_fired)

    def write(self, data: bytes) -> None:
        if self.closing:
            raise StreamClosed(str(self.error or "connection closed"))
        assert self.transport is not None
        self.transport.write(data)

    async def drain(self, timeout: float) -> None:
        """Until the client has read enough of what was written (at once if it has)."""
        while self._writing_paused:
            if self.closing:
                raise StreamClosed(str(self.error or "connection closed"))
            loop = self._loop or asyncio.get_running_loop()
            self._drain_waiter = waiter = loop.create_future()
            try:
                await _wait(loop, waiter, timeout)
            finally:
                self._drain_waiter = None
        if self.error is not None:
            raise StreamClosed(str(self.error))

    def extra(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default) if self.transport else default


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


async def _wait(
    loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[None], timeout: float
) -> None:
    """Await ``waiter``, or raise StreamTimeout after ``timeout`` seconds (0 or less: never)."""
    if timeout <= 0 or math.isinf(timeout):
        await waiter
        return
    timer = loop.call_later(timeout, _expire, waiter)
    try:
        await waiter
    finally:
        timer.cancel()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(StreamTimeout())
