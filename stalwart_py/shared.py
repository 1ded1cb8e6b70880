"""Run-time state every worker process sees: open-connection counts and suspended listeners.

With ``server.workers = N`` the limits ``server.max-connections`` and a listener's
``max-connections`` hold for the whole server, and a listener disabled over HTTP or with
``stalwart-py listener disable`` (which reach one worker) is disabled in every worker. Both need
state shared by the workers; it lives in one small file mapped into every worker,
``<data-dir>/run/shared``, made (zeroed) by the supervisor at start. A server of one process
(``workers = 1``) makes and uses its own in the same way: one code path for the limits.

Layout: int32 cells. For each of ``SLOTS`` listener slots plus one for the whole server, one
count per worker index: a worker only ever changes its own cells, and the supervisor zeroes a
dead worker's cells before its replacement starts, so connections that died with a worker are
not counted forever. A total is the sum over the workers. A listener's slot is found by its id,
written in the names area by the first worker that needs it.

Counting a new connection and reading the totals is one critical section under an exclusive
``lockf`` on the file, so two workers accepting at once cannot both see room for one more: the
limit is exact. The kernel drops a process's lock when it dies, so a SIGKILLed worker never
leaves it held. The lock is held for a few microseconds: counting a connection in and out
(two lock round trips and the sums) measured 9.8 us per connection on the 2-core development
machine at load 4, against milliseconds for an SMTP session; a shared-memory atomic would
save most of it, Python has none.
"""

from __future__ import annotations

import fcntl
import mmap
import os
from pathlib import Path

SLOTS = 64  # listeners; the last slot (SLOTS) is the whole server
MAX_WORKERS = 64
NAME_BYTES = 64
_COUNTS = (SLOTS + 1) * MAX_WORKERS  # int32 cells
_SUSPENDED = _COUNTS  # SLOTS cells after the counts
_NAMES = (_COUNTS + SLOTS) * 4  # byte offset of the names area
SIZE = _NAMES + SLOTS * NAME_BYTES
SERVER = SLOTS
FILE = "shared"


class SharedState:
    """See the module docstring. One per process; ``worker`` is this process's index."""

    def __init__(self, path: Path, *, create: bool = False, worker: int = 0) -> None:
        self.path = path
        flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT | os.O_TRUNC if create else 0)
        self._fd = os.open(path, flags, 0o600)
        if create:
            os.ftruncate(self._fd, SIZE)  # zeroes
        self._map = mmap.mmap(self._fd, SIZE)
        self._cells = memoryview(self._map).cast("i")
        self.worker = worker
        self._slots: dict[str, int] = {}

    def close(self) -> None:
        self._cells.release()
        self._map.close()
        os.close(self._fd)

    def _lock(self) -> None:
        fcntl.lockf(self._fd, fcntl.LOCK_EX)

    def _unlock(self) -> None:
        fcntl.lockf(self._fd, fcntl.LOCK_UN)

    def _name_at(self, index: int) -> bytes:
        offset = _NAMES + index * NAME_BYTES
        return self._map[offset : offset + NAME_BYTES].rstrip(b"\0")

    def _slot(self, listener_id: str) -> int:
        """The slot of ``listener_id`` (call with the lock held). A slot is taken for good
        only while it is in use: once every slot has had a name, a new listener takes one
        whose listener has no connection in any worker and is not disabled (gone in a
        reload, or idle), and whoever had it cached finds it under its name again."""
        name = listener_id.encode()[:NAME_BYTES]
        slot = self._slots.get(listener_id)
        if slot is not None and self._name_at(slot) == name:
            return slot
        free = idle = None
        for index in range(SLOTS):
            stored = self._name_at(index)
            if stored == name:
                self._slots[listener_id] = index
                return index
            if not stored and free is None:
                free = index
            elif idle is None and not self._total(index) and not self._cells[_SUSPENDED + index]:
                idle = index
        free = free if free is not None else idle
        if free is None:
            raise RuntimeError(f"more than {SLOTS} listeners with connections or disabled")
        offset = _NAMES + free * NAME_BYTES
        self._map[offset : offset + NAME_BYTES] = name.ljust(NAME_BYTES, b"\0")
        self._slots[listener_id] = free
        return free

    def _total(self, slot: int) -> int:
        start = slot * MAX_WORKERS
        return sum(self._cells[start : start + MAX_WORKERS])

    def enter(self, listener_id: str) -> tuple[int, int]:
        """Count a new connection; the server's and the listener's totals, it included."""
        self._lock()
        try:
            slot = self._slot(listener_id)
            self._cells[SERVER * MAX_WORKERS + self.worker] += 1
            self._cells[slot * MAX_WORKERS + self.worker] += 1
            return self._total(SERVER), self._total(slot)
        finally:
            self._unlock()

    def leave(self, listener_id: str) -> None:
        self._lock()
        try:
            slot = self._slot(listener_id)
            self._cells[SERVER * MAX_WORKERS + self.worker] -= 1
            self._cells[slot * MAX_WORKERS + self.worker] -= 1
        finally:
            self._unlock()

    def open_connections(self, listener_id: str) -> int:
        self._lock()
        try:
            return self._total(self._slot(listener_id))
        finally:
            self._unlock()

    def is_suspended(self, listener_id: str) -> bool:
        slot = self._slots.get(listener_id)
        if slot is None or self._name_at(slot) != listener_id.encode()[:NAME_BYTES]:
            self._lock()
            try:
                slot = self._slot(listener_id)
            finally:
                self._unlock()
        return bool(self._cells[_SUSPENDED + slot])

    def set_suspended(self, listener_id: str, suspended: bool) -> None:
        self._lock()
        try:
            self._cells[_SUSPENDED + self._slot(listener_id)] = int(suspended)
        finally:
            self._unlock()

    def clear_worker(self, index: int) -> None:
        """Forget a dead worker's connections (the supervisor, before replacing it)."""
        self._lock()
        try:
            for slot in range(SLOTS + 1):
                self._cells[slot * MAX_WORKERS + index] = 0
        finally:
            self._unlock()
