"""Change notification across nodes: PostgreSQL's LISTEN/NOTIFY.

On one machine the processes of a store hear each other's commits through the ``DatagramBus``
(``change_bus.py``). Nodes on other machines share only the database, so the writer also puts
each batch's change set in the batch itself: ``SELECT pg_notify(CHANNEL, payload)`` before
COMMIT. PostgreSQL delivers a notification only if, and once, its transaction commits, to
every session listening on the channel in that database, in commit order: a node never hears
of a change it cannot read yet, nor of one that was rolled back.

Every process runs a ``NotifyListener``: a thread with its own connection that LISTENs and
hands each change set to the hub on the event loop (``deliver``), as the datagram bus does.
The payload is the ``ChangeSet`` JSON with the sending node's id; the processes of the sending
node heard of it by datagram already and skip it. A payload must stay under 8000 bytes (the
server's limit): a larger change set is sent as "everything" (every watch wakes and reads).

A notification sent while a listener's connection is down is lost for it. So when the
connection comes back, the listener wakes everything once: watches re-read their mailbox
from the database (``changes_since`` their MODSEQ), which is the resync. While it is down it
wakes everything every ``POLL`` seconds, so an IDLE session hears of new mail slowly rather
than never, and it reconnects with a growing pause (up to ``MAX_BACKOFF``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from stalwart_py.store.change_bus import ChangeSet

log = logging.getLogger("stalwart_py.store")

CHANNEL = "stalwart_changes"
MAX_PAYLOAD = 7900  # bytes; PostgreSQL refuses 8000 and more
POLL = 2.0  # seconds between "everything" wake-ups while the listener is disconnected
WAIT = 0.5  # seconds a wait for notifications lasts before the thread looks at close() again
MAX_BACKOFF = 10.0  # seconds between reconnection attempts, at most


def node_id(data_dir: Path) -> str:
    """The same for every process of a node (one machine's data directory), different
    between nodes."""
    where = f"{socket.gethostname()}:{data_dir.resolve()}"
    return hashlib.sha256(where.encode()).hexdigest()[:16]


def payload(node: str, changes: ChangeSet) -> str:
    """The notification's text: the node and the change set, or "everything" if too large."""
    text = f"{node} {changes.encode().decode()}"
    if len(text.encode()) > MAX_PAYLOAD:
        text = f"{node} {ChangeSet(everything=True).encode().decode()}"
    return text


class NotifyListener:
    """LISTENs in a thread of its own and delivers other nodes' change sets on the loop."""

    def __init__(self, connect: Callable[[], psycopg.Connection], node: str) -> None:
        self._connect = connect
        self.node = node
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deliver: Callable[[ChangeSet], None] | None = None
        self.connected = threading.Event()  # for tests and /readyz: listening now
        self._woken = 0.0  # when _wait_disconnected last woke everything
        # close() writes a byte here, so a thread waiting for notifications ends at once
        # rather than at the end of its WAIT (half a second more for every store's close)
        self._wake_read, self._wake_write = os.pipe()

    def start(self, deliver: Callable[[ChangeSet], None]) -> None:
        """From now on ``deliver`` gets every other node's change set (event loop thread)."""
        self._loop = asyncio.get_running_loop()
        self._deliver = deliver
        self._thread = threading.Thread(target=self._run, name="store-listen", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._wake_write >= 0:
            os.write(self._wake_write, b"x")
        if self._thread is not None:
            self._thread.join(timeout=WAIT * 4 + 1)
            self._thread = None
        for fd in (self._wake_read, self._wake_write):
            if fd >= 0:
                os.close(fd)
        self._wake_read = self._wake_write = -1

    def _hand_over(self, changes: ChangeSet) -> None:
        assert self._loop is not None
        assert self._deliver is not None
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is listening
            self._loop.call_soon_threadsafe(self._deliver, changes)

    def _run(self) -> None:
        backoff = 0.5
        first = True
        while not self._stop.is_set():
            try:
                conn = self._connect()
            except psycopg.Error as exc:
                log.warning("change notification: cannot connect to PostgreSQL: %s", exc)
                self._wait_disconnected(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            backoff = 0.5
            try:
                conn.execute(f"LISTEN {CHANNEL}")
                self.connected.set()
                if not first:
                    # What was committed while we were away was not heard: read it all again.
                    log.info("change notification: listening again, every watch resyncs")
                    self._hand_over(ChangeSet(everything=True))
                first = False
                self._listen(conn)
            except psycopg.Error as exc:
                if not self._stop.is_set():
                    log.warning("change notification: lost the PostgreSQL connection: %s", exc)
            finally:
                self.connected.clear()
                with contextlib.suppress(psycopg.Error):
                    conn.close()
            if not self._stop.is_set():
                self._wait_disconnected(backoff)

    def _listen(self, conn: psycopg.Connection) -> None:
        while not self._stop.is_set():
            # the connection's socket or close()'s byte; then whatever arrived, without waiting
            readable, _, _ = select.select([conn.fileno(), self._wake_read], [], [], WAIT)
            if self._wake_read in readable:
                return
            for notify in conn.notifies(timeout=0):
                node, _, data = notify.payload.partition(" ")
                if node == self.node:
                    continue  # this node's processes heard it by datagram
                try:
                    changes = ChangeSet.decode(data.encode())
                except (ValueError, TypeError, AttributeError):
                    log.warning("change notification: a payload that is not a change set")
                    changes = ChangeSet(everything=True)
                self._hand_over(changes)

    def _wait_disconnected(self, seconds: float) -> None:
        """Wait ``seconds`` without hearing anything: wake everything every POLL seconds."""
        deadline = time.monotonic() + seconds
        while not self._stop.is_set():
            now = time.monotonic()
            if now - self._woken >= POLL:
                self._woken = now
                self._hand_over(ChangeSet(everything=True))
            left = deadline - now
            if left <= 0:
                return
            self._stop.wait(min(POLL, left))


def notify_in_transaction(
    execute: Callable[[str, tuple], object], node: str, changes: ChangeSet
) -> None:
    """Queue the notification of ``changes`` in the open transaction (sent at its COMMIT)."""
    execute("SELECT pg_notify(?, ?)", (CHANNEL, payload(node, changes)))
