"""Work that must run exactly once at a time across the processes on one data directory.

The outbound queue (and, as they come, ACME renewal, report sending, cleanup) must not run in
two worker processes at once: two queue runners would both pick up a due message and deliver
it twice. Each such task runs under a *lease* named after it; every worker asks for it, one
gets it and runs the task, the others wait and take over when the holder goes.

On one machine the lease is an exclusive ``flock`` on ``<data-dir>/run/<name>.lease``. Its
expiry is the holder's end: the kernel releases the lock when the process exits or is
killed, however it dies, so a SIGKILLed holder hands over within one ``POLL`` and there is no
clock to trust or renew. (A holder that hangs while alive keeps it; the supervisor's restart
of a dead worker is what ends most such cases.) The lock is taken without blocking and
retried, because a blocking ``flock`` in a thread could not be cancelled at shutdown.

Work on what several nodes share runs once per cluster instead: the store offers a lease for
it (``Store.cluster_lease``; on PostgreSQL a session advisory lock, ``store/pg_lease.py``)
behind the same methods. Such a lease can be lost while its holder lives (its connection
cut), so ``run_singleton`` asks ``held()`` every ``CHECK`` and stops the work when it is gone,
then waits for the lease again.

The outbound queue uses this lease on SQLite only: on PostgreSQL every process of every node
runs its queue, kept apart by leases on the queue's rows (``store/sqlite_queue.py``); on
SQLite the rows are leased too, but one runner per data directory keeps a killed worker's
deliveries from waiting for their leases to lapse (the next holder ends them at its start).

A process that is not the holder still serves: its deliveries queue durably, and the store's
change notification (``QUEUE_CHANNEL``) wakes the holder's queue in whatever process it is.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import anyio

from stalwart_py.files import open_private, private_dir

log = logging.getLogger("stalwart_py.singleton")

POLL = 0.5  # seconds between attempts to take a lease another process holds
CHECK = 2.0  # seconds between a holder's checks that it still holds its lease
RUN_DIR = "run"  # under the data directory: leases, change-notification sockets


def run_dir(data_dir: Path) -> Path:
    """``<data-dir>/run``, made private when missing."""
    path = data_dir / RUN_DIR
    private_dir(path)
    return path


class Lease(Protocol):
    """Held by at most one process at a time."""

    def try_acquire(self) -> bool:
        """Take the lease if nobody holds it; True when this process holds it now."""
        ...

    def held(self) -> bool:
        """Whether this process still holds the lease it took."""
        ...

    def release(self) -> None: ...


class FileLease:
    """A lease as an exclusive ``flock`` (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = open_private(self.path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)  # who holds it, for a person looking
        self._fd = fd
        return True

    def held(self) -> bool:
        return self._fd is not None  # a flock is kept until the descriptor closes

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the lock
            self._fd = None

    def holder(self) -> int | None:
        """The pid written by the holder, when one holds it (for status and tests)."""
        try:
            text = self.path.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None


async def run_singleton(
    data_dir: Path,
    name: str,
    func: Callable[..., Awaitable[Any]],
    *,
    lease: Lease | None = None,
) -> None:
    """Wait for the lease ``name`` (``lease``, else the file lease of that name), then run
    ``func()`` while holding it, until cancelled (or until ``func`` returns); the lease is
    released either way. A lease lost meanwhile stops ``func``, and the wait begins again."""
    lease = lease or FileLease(run_dir(data_dir) / f"{name}.lease")
    while True:
        # In a thread: a networked lease waits on its database (a file lease is instant).
        while not await anyio.to_thread.run_sync(lease.try_acquire):  # noqa: ASYNC110 - a lock in another process sets no Event
            await anyio.sleep(POLL)
        log.info("process %d runs the %s", os.getpid(), name)
        lost = False
        try:
            async with anyio.create_task_group() as group:

                async def watch() -> None:
                    nonlocal lost
                    while await anyio.to_thread.run_sync(lease.held):  # noqa: ASYNC110 - as above
                        await anyio.sleep(CHECK)
                    lost = True
                    log.warning("process %d lost the %s lease; stopping it", os.getpid(), name)
                    group.cancel_scope.cancel()

                group.start_soon(watch)
                await func()
                group.cancel_scope.cancel()
        finally:
            lease.release()
        if not lost:
            return
