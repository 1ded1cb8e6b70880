"""App passwords of accounts (``stalwart_py.app_passwords``), for both SQL backends.

One row per app password: its name (unique per account), the selector (the generated
password's first characters, so that a login hashes only the row it names), the scrypt hash and
the protocols it is good for, comma-separated. Deleting the row revokes it: every login reads
the rows afresh, and the authentication cache keys on the stored hash, so no worker can accept
a revoked password afterwards.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from stalwart_py.store.engine import Engine, Txn
from stalwart_py.store.model import (
    AlreadyExists,
    AppPassword,
    AppPasswordCredentials,
    NotFound,
    StoreError,
)


def create_table(conn: sqlite3.Connection) -> None:
    """The table, for SQLite's migration ``_v11_app_passwords``."""
    conn.execute(
        "CREATE TABLE app_passwords ("
        " id INTEGER PRIMARY KEY,"
        " account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
        " name TEXT NOT NULL,"
        " selector TEXT NOT NULL,"
        " secret TEXT NOT NULL,"
        " protocols TEXT NOT NULL,"
        " created REAL NOT NULL,"
        " UNIQUE (account_id, name)"
        ")"
    )
    conn.execute("CREATE INDEX app_passwords_selector ON app_passwords(account_id, selector)")


def _protocols(text: str) -> tuple[str, ...]:
    return tuple(text.split(",")) if text else ()


class AppPasswordsMixin:
    _engine: Engine

    async def add_app_password(
        self,
        account_id: int,
        name: str,
        selector: str,
        secret: str,
        protocols: Sequence[str],
        *,
        limit: int,
    ) -> AppPassword:
        joined = ",".join(protocols)

        def op(txn: Txn) -> AppPassword:
            if txn.execute("SELECT 1 FROM accounts WHERE id = ?", (account_id,)).fetchone() is None:
                raise NotFound(f"no account with id {account_id}")
            (count,) = txn.execute(
                "SELECT count(*) FROM app_passwords WHERE account_id = ?", (account_id,)
            ).fetchone()
            if count >= limit:
                raise StoreError(f"an account has at most {limit} app passwords; revoke one first")
            try:
                (row_id,) = txn.execute(
                    "INSERT INTO app_passwords"
                    "(account_id, name, selector, secret, protocols, created)"
                    " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                    (account_id, name, selector, secret, joined, txn.now),
                ).fetchone()
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"an app password named {name!r} exists already") from None
            return AppPassword(row_id, account_id, name, tuple(protocols), txn.now)

        return await self._engine.write(op)

    async def list_app_passwords(self, account_id: int) -> list[AppPassword]:
        def op(conn: sqlite3.Connection) -> list[AppPassword]:
            rows = conn.execute(
                "SELECT id, account_id, name, protocols, created FROM app_passwords"
                " WHERE account_id = ? ORDER BY id",
                (account_id,),
            )
            return [AppPassword(r[0], r[1], r[2], _protocols(r[3]), r[4]) for r in rows]

        return await self._engine.lookup(op)

    async def app_password_credentials(
        self, account_id: int, selector: str
    ) -> list[AppPasswordCredentials]:
        def op(conn: sqlite3.Connection) -> list[AppPasswordCredentials]:
            rows = conn.execute(
                "SELECT id, name, protocols, secret FROM app_passwords"
                " WHERE account_id = ? AND selector = ? ORDER BY id",
                (account_id, selector),
            )
            return [AppPasswordCredentials(r[0], r[1], _protocols(r[2]), r[3]) for r in rows]

        return await self._engine.lookup(op)

    async def delete_app_password(self, account_id: int, app_password_id: int) -> None:
        def op(txn: Txn) -> None:
            deleted = txn.execute(
                "DELETE FROM app_passwords WHERE account_id = ? AND id = ?",
                (account_id, app_password_id),
            ).rowcount
            if not deleted:
                raise NotFound(f"no app password {app_password_id}")

        await self._engine.write(op)
