"""The flag a change watch waits on (``MailboxWatch``, ``AccountWatch``)."""

from __future__ import annotations

import asyncio

import anyio
import anyio.lowlevel


class Wakeup:
    """A level-triggered flag that tasks wait on: ``anyio.Event`` with a ``clear``, and without
    the deque of waiters asyncio's event keeps from birth (some 600 bytes): every selected
    IMAP session holds one for as long as it lives, and ten thousand sessions in IDLE hold ten
    thousand. A waiter is a future of the running loop (the engine runs on asyncio), made only
    while someone waits; cancelling the waiting task cancels its future alone."""

    __slots__ = ("_waiters", "is_set")

    def __init__(self) -> None:
        self.is_set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def set(self) -> None:
        self.is_set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self.is_set = False

    async def wait(self) -> None:
        """Until set (at once, after a checkpoint, when it is set already)."""
        if self.is_set:
            await anyio.lowlevel.checkpoint()
            return
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
                if not self._waiters:
                    self._waiters = None
