"""Failed logins counted in PostgreSQL, so that a client guessing passwords is slowed down by
every node alike (``cluster_throttle.py`` asks; ``throttle.py`` says how long a block lasts).

On one machine the login throttle is a table in shared memory that every worker process
counts in. Nodes share only the database, so there each failure is also a row
``(key, at)``: ``key`` a digest of the client address, or of the pair (address, account), as
the throttle names it; ``at`` wall-clock seconds (the nodes' clocks, kept by NTP, as the
queue's leases are). Rows older than the throttle's window are deleted as new failures come
in, the key's and everyone's, so the table holds at most one window of failures. A row is
written in the writer's batch, like any other write, and read by the node a client comes to
next: a failure on node A counts on node B from A's answer on.
"""

from __future__ import annotations

from collections.abc import Sequence

from stalwart_py.store.engine import Txn
from stalwart_py.store.pg_dialect import PgConnection


class LoginFailuresMixin:
    """``Store.record_login_failures`` and its two readers, for ``PostgresStore``."""

    shares_login_failures = True

    async def record_login_failures(self, keys: Sequence[bytes], at: float, horizon: float) -> None:
        def op(txn: Txn) -> None:
            txn.execute("DELETE FROM login_failures WHERE at <= ?", (horizon,))
            for key in keys:
                txn.execute("INSERT INTO login_failures(key, at) VALUES (?, ?)", (key, at))

        await self._engine.write(op)  # type: ignore[attr-defined]

    async def login_failures(self, keys: Sequence[bytes], since: float) -> dict[bytes, list[float]]:
        def op(conn: PgConnection) -> dict[bytes, list[float]]:
            found: dict[bytes, list[float]] = {}
            rows = conn.execute(  # one statement: a lookup sees one snapshot without BEGIN
                "SELECT key, at FROM login_failures WHERE key = ANY(?) AND at > ? ORDER BY at",
                (list(keys), since),
            ).fetchall()
            for key, at in rows:
                found.setdefault(bytes(key), []).append(at)
            return found

        return await self._engine.lookup(op)  # type: ignore[attr-defined]

    async def forget_login_failures(self, key: bytes) -> None:
        # The pair had failures when last checked: still, they may have been cleared since.
        def peek(conn: PgConnection) -> bool:
            found = conn.execute("SELECT 1 FROM login_failures WHERE key = ? LIMIT 1", (key,))
            return found.fetchone() is not None

        def op(txn: Txn) -> None:
            txn.execute("DELETE FROM login_failures WHERE key = ?", (key,))

        if await self._engine.lookup(peek):  # type: ignore[attr-defined]
            await self._engine.write(op)  # type: ignore[attr-defined]
