"""SQLite backend: Sieve vacation de-duplication (RFC 5230 section 4.2) and the duplicate
test's tracking list (RFC 7352).

One row per (account, sender, handle) with the time its period ends. A claim is one write:
it purges the account's expired rows, then inserts the row unless a live one exists, so of
two deliveries racing for the same sender exactly one sends the reply.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from stalwart_py.store.engine import Engine, Txn

MAX_DUPLICATES = 10_000  # entries per account (RFC 7352 3: SHOULD limit, oldest out first)


class SieveMixin:
    _engine: Engine

    async def claim_vacation_reply(
        self, account_id: int, sender: str, handle: str, period: float
    ) -> bool:
        def op(txn: Txn) -> bool:
            txn.execute(
                "DELETE FROM sieve_vacation WHERE account_id = ? AND expires <= ?",
                (account_id, txn.now),
            )
            cursor = txn.execute(
                "INSERT INTO sieve_vacation(account_id, sender, handle, expires)"
                " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (account_id, sender, handle, txn.now + period),
            )
            return cursor.rowcount == 1

        return await self._engine.write(op)

    async def duplicate_seen(self, account_id: int, key: str) -> bool:
        now = self._engine.clock()

        def op(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT 1 FROM sieve_duplicates WHERE account_id = ? AND key = ? AND expires > ?",
                (account_id, key, now),
            ).fetchone()
            return row is not None

        return await self._engine.lookup(op)  # a primary-key lookup

    async def record_duplicates(
        self, account_id: int, entries: Sequence[tuple[str, float, bool]]
    ) -> None:
        def op(txn: Txn) -> None:
            now = txn.now
            txn.execute(
                "DELETE FROM sieve_duplicates WHERE account_id = ? AND expires <= ?",
                (account_id, now),
            )
            for key, seconds, last in entries:
                refresh = ", expires = excluded.expires" if last else ""
                txn.execute(
                    "INSERT INTO sieve_duplicates(account_id, key, expires, created)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT(account_id, key) DO UPDATE SET"
                    " created = sieve_duplicates.created" + refresh,
                    (account_id, key, now + seconds, now),
                )
            txn.execute(
                "DELETE FROM sieve_duplicates WHERE account_id = ? AND key IN ("
                " SELECT key FROM sieve_duplicates WHERE account_id = ?"
                " ORDER BY created DESC LIMIT -1 OFFSET ?)",
                (account_id, account_id, MAX_DUPLICATES),
            )

        await self._engine.write(op)
