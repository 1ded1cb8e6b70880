"""A lease held once per cluster: a PostgreSQL session advisory lock.

``singleton.py``'s ``FileLease`` keeps work to one process per data directory, which with
several nodes on one database is one per node. Work on what the nodes share (the orphan blob
sweep, sending the TLS reports counted in the database) must run once per cluster: it runs
under ``pg_try_advisory_lock(key)``, the same two methods as the file lease.

The lock belongs to the database session that took it, and PostgreSQL ends it with the
session: when the holder's process dies, or its connection is cut, the server releases the
lock and the next node to ask gets it; there is no expiry to renew. So a holder must know
whether its session still lives: ``held()`` asks the connection, and ``run_singleton`` stops
the work when it no longer answers (another node may hold the lock by then). The session is
the lease: a connection pooler in transaction mode (PgBouncer) between the nodes and the
database would break it; connect the nodes to PostgreSQL directly, or in session mode.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from contextlib import suppress

import psycopg

log = logging.getLogger("stalwart_py.singleton")


def lock_key(name: str) -> int:
    """The advisory lock's 64-bit key for the lease ``name`` (same on every node)."""
    digest = hashlib.sha256(b"stalwart-py lease " + name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class AdvisoryLease:
    """A lease as a session advisory lock (see the module docstring). Its methods block on
    the network: ``run_singleton`` calls them in a thread."""

    def __init__(self, connect: Callable[[], psycopg.Connection], name: str) -> None:
        self.name = name
        self.key = lock_key(name)
        self._connect = connect
        self._conn: psycopg.Connection | None = None  # kept while waiting: one per waiter
        self._held = False

    def try_acquire(self) -> bool:
        if self._held:
            return self.held()
        try:
            if self._conn is None:
                self._conn = self._connect()
            row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        except psycopg.Error as error:
            log.warning("cannot ask PostgreSQL for the %s lease: %s", self.name, error)
            self._close()
            return False
        self._held = bool(row and row[0])
        return self._held

    def held(self) -> bool:
        """Whether this session still holds the lock: its connection still answers."""
        if not self._held or self._conn is None:
            return False
        try:
            self._conn.execute("SELECT 1")
        except psycopg.Error:
            self._close()  # the server ended the session, and the lock with it
            return False
        return True

    def release(self) -> None:
        self._close()  # ending the session releases the lock, whatever else it held

    def _close(self) -> None:
        self._held = False
        if self._conn is not None:
            with suppress(psycopg.Error):
                self._conn.close()
            self._conn = None
