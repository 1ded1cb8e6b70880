"""SQLite backend: Sieve vacation de-duplication (RFC 5230 section 4.2).

One row per (account, sender, handle) with the time its period ends. A claim is one write:
it purges the account's expired rows, then inserts the row unless a live one exists, so of
two deliveries racing for the same sender exactly one sends the reply.
"""

from __future__ import annotations

from stalwart_py.store.engine import Engine, Txn


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
