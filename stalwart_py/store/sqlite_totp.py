"""Two-factor sign-in of accounts (``stalwart_py.totp``), for both SQL backends.

``totp`` holds one row per account that started enrolment: the base32 secret, whether the
enrolment was confirmed (``enabled``) and the last time step a code was accepted for, which
only grows, so a code is never accepted twice (RFC 6238 5.2); the update that moves it is the
check, so two workers cannot both accept one code. ``totp_recovery_codes`` holds the SHA-256
digests of the recovery codes; using one deletes its row, so it works once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from stalwart_py.store.engine import Engine, Txn
from stalwart_py.store.model import AlreadyExists, NotFound, StoreError, Totp

_SELECT = (
    "SELECT account_id, secret, enabled, last_step, created,"
    " (SELECT count(*) FROM totp_recovery_codes r WHERE r.account_id = totp.account_id)"
    " FROM totp WHERE account_id = ?"
)


def create_tables(conn: sqlite3.Connection) -> None:
    """The tables, for SQLite's migration ``_v13_totp``."""
    conn.execute(
        "CREATE TABLE totp ("
        " account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,"
        " secret TEXT NOT NULL,"
        " enabled INTEGER NOT NULL,"
        " last_step INTEGER NOT NULL,"
        " created REAL NOT NULL"
        ")"
    )
    conn.execute(
        "CREATE TABLE totp_recovery_codes ("
        " account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
        " digest TEXT NOT NULL,"
        " PRIMARY KEY (account_id, digest)"
        ")"
    )


def _totp(row: tuple) -> Totp:
    return Totp(row[0], row[1], bool(row[2]), row[3], row[4], row[5])


class TotpMixin:
    _engine: Engine

    async def start_totp(self, account_id: int, secret: str) -> Totp:
        def op(txn: Txn) -> Totp:
            if txn.execute("SELECT 1 FROM accounts WHERE id = ?", (account_id,)).fetchone() is None:
                raise NotFound(f"no account with id {account_id}")
            row = txn.execute("SELECT enabled FROM totp WHERE account_id = ?", (account_id,))
            found = row.fetchone()
            if found is not None and found[0]:
                raise AlreadyExists("two-factor sign-in is enabled already; disable it first")
            # An enrolment not confirmed is replaced: the user scanned nothing, or lost it.
            txn.execute("DELETE FROM totp WHERE account_id = ?", (account_id,))
            txn.execute(
                "INSERT INTO totp(account_id, secret, enabled, last_step, created)"
                " VALUES (?, ?, 0, -1, ?)",
                (account_id, secret, txn.now),
            )
            return Totp(account_id, secret, False, -1, txn.now, 0)

        return await self._engine.write(op)

    async def get_totp(self, account_id: int) -> Totp | None:
        def op(conn: sqlite3.Connection) -> Totp | None:
            row = conn.execute(_SELECT, (account_id,)).fetchone()
            return _totp(row) if row is not None else None

        return await self._engine.lookup(op)

    async def enable_totp(self, account_id: int, step: int, digests: Sequence[str]) -> None:
        def op(txn: Txn) -> None:
            changed = txn.execute(
                "UPDATE totp SET enabled = 1, last_step = ?"
                " WHERE account_id = ? AND enabled = 0 AND last_step < ?",
                (step, account_id, step),
            ).rowcount
            if not changed:
                raise StoreError("no two-factor enrolment waiting for confirmation")
            txn.execute("DELETE FROM totp_recovery_codes WHERE account_id = ?", (account_id,))
            for digest in digests:
                txn.execute(
                    "INSERT INTO totp_recovery_codes(account_id, digest) VALUES (?, ?)",
                    (account_id, digest),
                )

        await self._engine.write(op)

    async def use_totp_step(self, account_id: int, step: int) -> bool:
        def op(txn: Txn) -> bool:
            changed = txn.execute(
                "UPDATE totp SET last_step = ?"
                " WHERE account_id = ? AND enabled = 1 AND last_step < ?",
                (step, account_id, step),
            ).rowcount
            return bool(changed)

        return await self._engine.write(op)

    async def use_recovery_code(self, account_id: int, digest: str) -> bool:
        def op(txn: Txn) -> bool:
            deleted = txn.execute(
                "DELETE FROM totp_recovery_codes WHERE account_id = ? AND digest = ?",
                (account_id, digest),
            ).rowcount
            return bool(deleted)

        return await self._engine.write(op)

    async def delete_totp(self, account_id: int) -> None:
        def op(txn: Txn) -> None:
            txn.execute("DELETE FROM totp_recovery_codes WHERE account_id = ?", (account_id,))
            deleted = txn.execute("DELETE FROM totp WHERE account_id = ?", (account_id,)).rowcount
            if not deleted:
                raise NotFound("two-factor sign-in is not set up for this account")

        await self._engine.write(op)
