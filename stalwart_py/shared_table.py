"""Per-key records every worker process sees: the state behind limits that span the workers.

``max-connections-per-ip``, a peer scope's ``max-connections``, the login throttle and the SMTP
rate limits count per client (or per scope), and with ``server.workers = N`` a client's
connections land in any worker. So their counts live in tables of fixed-size records in one
shared mapping, made before the workers are forked (``SharedLimits.create``) and inherited by
each: no file on disk (a ``memfd``, or an unlinked temporary file where there is none), nothing
left behind, and a server with ``workers = 1`` uses the very same tables, just not shared with
anyone.

A table is set-associative, like a CPU cache: a key's keyed BLAKE2b digest names one bucket of
``BUCKET`` records, and the key's record, if it has one, is in that bucket. So a lookup reads
at most ``BUCKET`` records (one ``mmap.find`` of the digest over the bucket), memory is fixed
at creation whatever keys an attacker rotates, and a full bucket gives up a record its owner
says holds nothing (a count back to zero, failures out of their window) or, where the owner
allows it, the least recently used one. The hash is keyed with a secret drawn at start, so no
client can aim its keys at one bucket.

A record: the 16-byte digest (never all zero: zero marks an empty record), a float64 stamp
(when the record was last used, on the owner's clock; ``time.monotonic`` is one clock for every
process of the machine), then the owner's payload.

Every read-modify-write of a record happens under an exclusive ``lockf`` on the table's file
descriptor. The kernel drops a process's lock when it dies, so a SIGKILLed worker never leaves a
table locked; the lock is per process, so a table is used from one thread of each process (the
event loop's). Cost, measured with ``bench/shared_limits.py`` (which puts it beside the same
step through the supervisor over a socket pair): see ``ConnectionCounts``; a lock and unlock
are two ``fcntl`` system calls, most of the rest is the interpreter.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import mmap
import os
import struct
import tempfile
import weakref
from collections.abc import Callable, Iterator

HEADER = 24  # digest (16 bytes) and stamp (float64)
BUCKET = 8  # records per bucket
_EMPTY = bytes(16)
_STAMP = struct.Struct("<d")


def _anonymous_file(size: int) -> int:
    """A descriptor of ``size`` zeroed bytes that no path names: forked children inherit it,
    and it is gone when the last process holding it is."""
    try:
        fd = os.memfd_create("stalwart-py-shared", os.MFD_CLOEXEC)
    except (AttributeError, OSError):  # no memfd on this system
        with tempfile.TemporaryFile() as unlinked:
            fd = os.dup(unlinked.fileno())
        os.set_inheritable(fd, False)
    os.ftruncate(fd, size)
    return fd


class SharedTable:
    """See the module docstring. ``payload`` bytes per record, at least ``capacity`` records."""

    def __init__(
        self, payload: int, capacity: int, *, fd: int | None = None, secret: bytes | None = None
    ) -> None:
        """``fd`` and ``secret``: attach to the table another process made (``shared``)."""
        self.payload = payload
        self.record = -(-(HEADER + payload) // 8) * 8
        self.buckets = max(1, -(-capacity // BUCKET))
        self.capacity = self.buckets * BUCKET
        self._span = BUCKET * self.record
        size = self.record * self.capacity
        self._fd = _anonymous_file(size) if fd is None else fd
        self.map = mmap.mmap(self._fd, size)  # it keeps a descriptor of its own
        self._secret = os.urandom(16) if secret is None else secret
        # The lock's descriptor goes with the table (many servers come and go in one test run).
        self._closer = weakref.finalize(self, os.close, self._fd)

    def shared(self) -> dict[str, int | str]:
        """What a process that did not fork from this one needs to attach to the table
        (``SharedTable(**shared, fd=...)``): the descriptor must be passed to it, and the
        secret goes along, so keep this description as private as the table."""
        return {
            "payload": self.payload,
            "capacity": self.capacity,
            "fd": self._fd,
            "secret": self._secret.hex(),
        }

    def lock(self) -> None:
        """Enter the one critical section of every read-modify-write (not reentrant); always
        ``unlock`` in a ``finally`` (a context manager would cost more than the work here)."""
        fcntl.lockf(self._fd, fcntl.LOCK_EX)

    def unlock(self) -> None:
        fcntl.lockf(self._fd, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """``lock`` and ``unlock`` around a block, where a microsecond does not matter."""
        self.lock()
        try:
            yield
        finally:
            self.unlock()

    def digest(self, key: bytes) -> bytes:
        digest = hashlib.blake2b(key, digest_size=16, key=self._secret).digest()
        return bytes((digest[0] | 1,)) + digest[1:]

    def _bucket(self, digest: bytes) -> int:
        return int.from_bytes(digest[8:], "little") % self.buckets * self._span

    def find(self, digest: bytes) -> int | None:
        """The offset of the record of ``digest``, or None (call with the lock held)."""
        start = self._bucket(digest)
        end = start + self._span
        at = self.map.find(digest, start, end)
        while at != -1:
            if (at - start) % self.record == 0:
                return at
            at = self.map.find(digest, at + 1, end)  # the bytes happened to be in a payload
        return None

    def claim(
        self, digest: bytes, now: float, *, free: Callable[[int], bool], evict: bool
    ) -> tuple[int, bool] | None:
        """The record of ``digest`` and False, or a new one and True: an empty record of its
        bucket, else one that ``free(offset)`` says holds nothing, else (``evict``) the least
        recently stamped. A new record has a zeroed payload and ``now`` as its stamp. None when
        the bucket is full and nothing in it may go (call with the lock held)."""
        found = self.find(digest)
        if found is not None:
            return found, False
        start = self._bucket(digest)
        choice = None
        oldest = float("inf")
        for at in range(start, start + self._span, self.record):
            if self.map[at : at + 16] == _EMPTY or free(at):
                choice = at
                break
            if evict and (stamp := self.stamp(at)) < oldest:
                choice, oldest = at, stamp
        if choice is None:
            return None
        self.map[choice : choice + self.record] = (
            digest + _STAMP.pack(now) + bytes(self.record - HEADER)
        )
        return choice, True

    def stamp(self, at: int) -> float:
        return _STAMP.unpack_from(self.map, at + 16)[0]

    def set_stamp(self, at: int, now: float) -> None:
        _STAMP.pack_into(self.map, at + 16, now)

    def release(self, at: int) -> None:
        """Empty the record at ``at`` (call with the lock held)."""
        self.map[at : at + self.record] = bytes(self.record)

    def records(self) -> Iterator[int]:
        """The offsets of every record in use (a scan of the whole table: for tests and
        housekeeping, not for a connection's path)."""
        for at in range(0, len(self.map), self.record):
            if self.map[at : at + 16] != _EMPTY:
                yield at


class ConnectionCounts:
    """Open connections per key (a client address of a listener, a peer scope), counted by
    every worker in its own cell of the key's record, so that the supervisor can forget a dead
    worker's connections (``clear_worker``) and the total is the sum of the cells.

    A key without room in its bucket (every record there counting live connections) is not
    counted at all: ``enter`` answers None and the connection is let through (logged by the
    caller). With ``CAPACITY`` records that needs far more distinct clients connected at once
    than a server has open connections.

    Cost, ``bench/shared_limits.py`` (enter and leave of one key beside the same two steps
    asked of another process over a SOCK_SEQPACKET pair, the least that asking the supervisor
    would cost): 6-11 us of CPU (24-26 us wall) against 33-36 us of CPU for both processes
    (124-129 us wall) on the 2-core development machine at load 10: 3-6x less.
    """

    CAPACITY = 65536

    def __init__(
        self, workers: int, capacity: int = CAPACITY, *, table: SharedTable | None = None
    ) -> None:
        """``table``: another process's counts, attached to (``SharedTable.shared``)."""
        self.workers = workers
        self.worker = 0  # this process's cell; a worker sets its index after the fork
        self.table = SharedTable(4 * workers, capacity) if table is None else table
        self._cells = memoryview(self.table.map).cast("i")
        self._stride = self.table.record // 4

    def _total(self, at: int) -> int:
        base = (at + HEADER) // 4
        return sum(self._cells[base : base + self.workers])

    def key(self, name: bytes) -> bytes:
        """The digest ``enter`` and ``leave`` take for a key (computed once per connection)."""
        return self.table.digest(name)

    def enter(self, key: bytes) -> int | None:
        """Count a connection under ``key`` (``self.key(...)``): every worker's total, it
        included, or None when it could not be counted (class docstring; then do not
        ``leave``)."""
        table = self.table
        table.lock()
        try:
            at = table.find(key)
            if at is None:
                claimed = table.claim(key, 0.0, free=self._free, evict=False)
                if claimed is None:
                    return None
                at = claimed[0]
            self._cells[(at + HEADER) // 4 + self.worker] += 1
            return self._total(at)
        finally:
            table.unlock()

    def _free(self, at: int) -> bool:
        return self._total(at) == 0

    def leave(self, key: bytes) -> None:
        table = self.table
        table.lock()
        try:
            at = table.find(key)
            if at is None:  # cleared meanwhile (cannot happen to a live worker's own count)
                return
            cell = (at + HEADER) // 4 + self.worker
            if self._cells[cell] > 0:
                self._cells[cell] -= 1
            if self._total(at) == 0:
                table.release(at)
        finally:
            table.unlock()

    def total(self, key: bytes) -> int:
        table = self.table
        with table.locked():
            at = table.find(key)
            return 0 if at is None else self._total(at)

    def clear_worker(self, index: int) -> None:
        """Forget a dead worker's connections (the supervisor, before replacing it)."""
        first = HEADER // 4 + index
        with self.table.locked():
            cells = self._cells[first :: self._stride]
            cells[:] = memoryview(bytes(4 * len(cells))).cast("i")
