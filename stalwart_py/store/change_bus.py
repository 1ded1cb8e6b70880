"""Change notification across processes: what one process commits wakes the watches of all.

Inside a process the ``ChangeHub`` (``engine.py``) wakes the ``MailboxWatch`` and
``AccountWatch`` of every session after a write batch commits. With ``server.workers = N`` an
IMAP session in IDLE may sit in one worker while the delivery that should wake it commits in
another, or in a ``stalwart-py`` command. A ``ChangeBus`` carries each committed batch's
change set (mailbox ids, their owners, the accounts whose mailbox list changed) to every other
process on the same store, whose hub then wakes its own watches exactly as for a local write.

The interface is two calls, so that a networked backend can carry it across machines (the
PostgreSQL backend: NOTIFY in the writing transaction, LISTEN in every process):

* ``publish(changes)``: called by the writer thread after its batch is durable;
* ``start(deliver)``: from then on ``deliver(changes)`` is called on the event loop thread for
  every change set another process publishes.

The change set is only a wake-up: watches are level-triggered and read the state itself from
the database, so a late or duplicated message never shows stale data. For SQLite on one
machine, ``DatagramBus`` is a Unix datagram socket per process under ``<data-dir>/run/``
(``changes-<pid>-<n>.sock``); ``publish`` sends one datagram to each of the others (a few
microseconds each, never blocking the writer). Delivery within a process's event loop
iteration is well under the 100 ms IMAP clients are promised. When a datagram cannot be sent
(the receiver's queue is full, or the change set is too large for one), the receiver is owed
an "everything" wake-up, sent with the next change set and meanwhile retried each
``RETRY`` seconds: every watch wakes and reads, which is correct, only slower. A socket whose
process is gone (connection refused) is removed by whoever finds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

log = logging.getLogger("stalwart_py.store")
_numbers = itertools.count(1)

PREFIX = "changes-"
SUFFIX = ".sock"
MAX_DATAGRAM = 60_000  # bytes; a larger change set goes as "everything"
RETRY = 0.2  # seconds between attempts to deliver an owed "everything"
RELIST = 1.0  # seconds: list the run directory again even if its mtime says nothing changed


@dataclass
class ChangeSet:
    """What one committed batch changed (``everything``: wake every watch)."""

    mailboxes: set[int] = field(default_factory=set)
    owners: dict[int, set[int]] = field(default_factory=dict)  # account id -> mailbox ids
    listings: set[int] = field(default_factory=set)  # accounts whose mailbox list changed
    everything: bool = False

    def encode(self) -> bytes:
        if self.everything:
            return b'{"all":1}'
        return json.dumps(
            {
                "m": sorted(self.mailboxes),
                "o": {str(a): sorted(ids) for a, ids in self.owners.items()},
                "l": sorted(self.listings),
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, data: bytes) -> ChangeSet:
        raw = json.loads(data)
        if raw.get("all"):
            return cls(everything=True)
        return cls(
            set(raw.get("m", ())),
            {int(a): set(ids) for a, ids in raw.get("o", {}).items()},
            set(raw.get("l", ())),
        )


class ChangeBus(Protocol):
    def publish(self, changes: ChangeSet) -> None: ...

    def start(self, deliver: Callable[[ChangeSet], None]) -> None: ...

    def close(self) -> None: ...


class DatagramBus:
    """See the module docstring. ``publish`` may be called from any thread."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        # pid and a count: two stores open in one process (a test, a command) each get one
        self.path = run_dir / f"{PREFIX}{os.getpid()}-{next(_numbers)}{SUFFIX}"
        self._sock: socket.socket | None = None
        self._out = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._out.setblocking(False)
        self._peers: list[str] = []
        self._listed: tuple[int, float] | None = None  # the directory's mtime, and when
        self._owed: set[str] = set()  # peers owed an "everything" wake-up
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deliver: Callable[[ChangeSet], None] | None = None
        self._retry: asyncio.TimerHandle | None = None

    def start(self, deliver: Callable[[ChangeSet], None]) -> None:
        """Bind this process's socket and deliver what others publish (event loop thread)."""
        self.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a process that is gone, and had our pid, left it
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(self.path))
        os.chmod(self.path, 0o600)
        sock.setblocking(False)
        self._sock, self._deliver = sock, deliver
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._receive)

    def close(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
        if self._sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        self._out.close()

    def _receive(self) -> None:
        assert self._sock is not None
        assert self._deliver is not None
        while True:
            try:
                data = self._sock.recv(MAX_DATAGRAM + 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            try:
                changes = ChangeSet.decode(data)
            except (ValueError, AttributeError, TypeError):
                log.warning("change notification not understood: %r", data[:80])
                continue
            self._deliver(changes)

    # -- publishing (the writer thread) ---------------------------------------------------

    def publish(self, changes: ChangeSet) -> None:
        data = changes.encode()
        if len(data) > MAX_DATAGRAM:
            data = ChangeSet(everything=True).encode()
        with self._lock:
            for peer in self._current_peers():
                if peer in self._owed and self._send(peer, ChangeSet(everything=True).encode()):
                    self._owed.discard(peer)
                if not self._send(peer, data):
                    self._owed.add(peer)
            if self._owed:
                self._schedule_retry()

    def _send(self, peer: str, data: bytes) -> bool:
        """Send one datagram; False when the peer must be owed one. Drops a dead peer."""
        try:
            self._out.sendto(data, peer)
        except (BlockingIOError, OSError) as exc:
            if isinstance(exc, (ConnectionRefusedError, FileNotFoundError)):
                with contextlib.suppress(OSError):
                    if isinstance(exc, ConnectionRefusedError):
                        os.unlink(peer)  # its process is gone
                self._peers = [p for p in self._peers if p != peer]
                self._owed.discard(peer)
                return True
            return False
        return True

    def _current_peers(self) -> list[str]:
        """The other processes' sockets, listed again when the directory changed."""
        try:
            stamp = os.stat(self.run_dir).st_mtime_ns
        except FileNotFoundError:
            return []
        now = time.monotonic()
        # Directory times may be coarser than the creation of two sockets apart: list again
        # at least each RELIST seconds whatever the time says.
        if self._listed is None or stamp != self._listed[0] or now - self._listed[1] > RELIST:
            self._listed = (stamp, now)
            own = self.path.name
            self._peers = [
                str(self.run_dir / name)
                for name in os.listdir(self.run_dir)
                if name.startswith(PREFIX) and name.endswith(SUFFIX) and name != own
            ]
        return self._peers

    def _schedule_retry(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._arm_retry)

    def _arm_retry(self) -> None:
        if self._retry is None and self._loop is not None:
            self._retry = self._loop.call_later(RETRY, self._retry_owed)

    def _retry_owed(self) -> None:
        self._retry = None
        with self._lock:
            for peer in list(self._owed):
                if self._send(peer, ChangeSet(everything=True).encode()):
                    self._owed.discard(peer)
            again = bool(self._owed)
        if again:
            self._arm_retry()
