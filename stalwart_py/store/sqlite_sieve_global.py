"""SQLite backend: the administrator's global Sieve scripts (RFC 6609 ``include :global``).

One namespace for the whole server, apart from every account's personal scripts: a global
script is never active by itself, it is only included. Migration ``_v8_sieve_global``
creates the table.
"""

from __future__ import annotations

import sqlite3

from stalwart_py.store.engine import Engine, Txn
from stalwart_py.store.model import NotFound, SieveScript


def create_table(conn: sqlite3.Connection) -> None:
    """The ``sieve_global`` table (a schema migration)."""
    conn.execute(
        "CREATE TABLE sieve_global (name TEXT PRIMARY KEY, body TEXT NOT NULL) WITHOUT ROWID"
    )


class GlobalScriptsMixin:
    _engine: Engine

    async def list_global_scripts(self) -> list[SieveScript]:
        def op(conn: sqlite3.Connection) -> list[SieveScript]:
            rows = conn.execute("SELECT name, body FROM sieve_global ORDER BY name")
            return [SieveScript(name, body, False) for name, body in rows]

        return await self._engine.read(op)

    async def get_global_script(self, name: str) -> SieveScript | None:
        def op(conn: sqlite3.Connection) -> SieveScript | None:
            row = conn.execute("SELECT name, body FROM sieve_global WHERE name = ?", (name,))
            found = row.fetchone()
            return SieveScript(found[0], found[1], False) if found else None

        return await self._engine.lookup(op)

    async def put_global_script(self, name: str, body: str) -> None:
        def op(txn: Txn) -> None:
            txn.execute(
                "INSERT INTO sieve_global(name, body) VALUES (?, ?)"
                " ON CONFLICT(name) DO UPDATE SET body = excluded.body",
                (name, body),
            )

        await self._engine.write(op)

    async def delete_global_script(self, name: str) -> None:
        def op(txn: Txn) -> None:
            if txn.execute("DELETE FROM sieve_global WHERE name = ?", (name,)).rowcount == 0:
                raise NotFound(f"no global script {name}")

        await self._engine.write(op)
