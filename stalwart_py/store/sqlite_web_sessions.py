"""The web pages' sessions (``protocols/http/web/sessions.py``), for both SQL backends.

One row per signed-in browser, so that every worker process and every node sees the same
sessions. The row is found by the SHA-256 of the cookie's token (the token itself is never
stored: a copy of the database opens no session). ``stamp`` binds the session to the account's
password as it was at sign-in: a session read after the password changed (through the web
pages, the API or the command line, in any worker) is not found, so changing a password ends
every session of the account without each writer having to know about sessions. Deleting an
account deletes its sessions (``ON DELETE CASCADE``).
"""

from __future__ import annotations

import hashlib
import sqlite3

from stalwart_py.store.engine import Engine, Txn
from stalwart_py.store.model import NotFound, WebSession
from stalwart_py.store.sqlite_accounts import ACCOUNT_COLUMNS, account_from_row

_SESSION_COLUMNS = "s.token_hash, s.csrf, s.pending, s.created, s.last_seen, s.expires, s.peer"
_ACCOUNT = ", ".join(f"a.{column.strip()}" for column in ACCOUNT_COLUMNS.split(","))


def create_table(conn: sqlite3.Connection) -> None:
    """The table, for SQLite's migration ``_v14_web_sessions``."""
    conn.execute(
        "CREATE TABLE web_sessions ("
        " token_hash TEXT PRIMARY KEY,"
        " account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
        " stamp TEXT NOT NULL,"
        " csrf TEXT NOT NULL,"
        " pending INTEGER NOT NULL,"
        " created REAL NOT NULL,"
        " last_seen REAL NOT NULL,"
        " expires REAL NOT NULL,"
        " peer TEXT NOT NULL"
        ")"
    )
    conn.execute("CREATE INDEX web_sessions_account ON web_sessions(account_id)")


def stamp(secret: str) -> str:
    """What a session keeps of the account's password hash: enough to see that it changed,
    nothing a password could be tried against (a digest of the scrypt string, cut short)."""
    return hashlib.sha256(secret.encode()).hexdigest()[:32]


def _session(row: tuple) -> WebSession:
    account = account_from_row(row[7:])
    return WebSession(row[0], account, row[1], bool(row[2]), row[3], row[4], row[5], row[6])


class WebSessionsMixin:
    _engine: Engine

    async def add_web_session(
        self,
        token_hash: str,
        account_id: int,
        csrf: str,
        *,
        pending: bool,
        expires: float,
        peer: str,
        idle_before: float,
    ) -> None:
        def op(txn: Txn) -> None:
            row = txn.execute("SELECT secret FROM accounts WHERE id = ?", (account_id,)).fetchone()
            if row is None:
                raise NotFound(f"no account with id {account_id}")
            # Stale sessions go as anyone signs in: every session past its end, and the
            # account's own idle ones. No sweeper is needed for a table that grows only by
            # sign-ins, and it holds at most the sign-ins of one session lifetime.
            txn.execute(
                "DELETE FROM web_sessions WHERE expires < ? OR (account_id = ? AND last_seen < ?)",
                (txn.now, account_id, idle_before),
            )
            txn.execute(
                "INSERT INTO web_sessions(token_hash, account_id, stamp, csrf, pending, created,"
                " last_seen, expires, peer) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    token_hash,
                    account_id,
                    stamp(row[0]),
                    csrf,
                    pending,
                    txn.now,
                    txn.now,
                    expires,
                    peer,
                ),
            )

        await self._engine.write(op)

    async def get_web_session(self, token_hash: str) -> WebSession | None:
        def op(conn: sqlite3.Connection) -> WebSession | None:
            row = conn.execute(
                f"SELECT {_SESSION_COLUMNS}, {_ACCOUNT}, s.stamp, a.secret"
                " FROM web_sessions s JOIN accounts a ON a.id = s.account_id"
                " WHERE s.token_hash = ?",
                (token_hash,),
            ).fetchone()
            if row is None or row[-2] != stamp(row[-1]):
                return None  # the password changed since: the session ended with it
            session = _session(row[:-2])
            return None if session.account.disabled else session  # so did a disabling

        return await self._engine.lookup(op)

    async def touch_web_session(self, token_hash: str, now: float) -> None:
        def op(txn: Txn) -> None:
            txn.execute(
                "UPDATE web_sessions SET last_seen = ? WHERE token_hash = ?", (now, token_hash)
            )

        await self._engine.write(op)

    async def list_web_sessions(self, account_id: int) -> list[WebSession]:
        def op(conn: sqlite3.Connection) -> list[WebSession]:
            found = conn.execute("SELECT secret FROM accounts WHERE id = ?", (account_id,))
            row = found.fetchone()
            if row is None:
                return []
            rows = conn.execute(
                f"SELECT {_SESSION_COLUMNS}, {_ACCOUNT}"
                " FROM web_sessions s JOIN accounts a ON a.id = s.account_id"
                " WHERE s.account_id = ? AND s.stamp = ? ORDER BY s.created DESC",
                (account_id, stamp(row[0])),
            ).fetchall()
            return [_session(row) for row in rows]

        return await self._engine.read(op)

    async def delete_web_session(self, token_hash: str) -> None:
        def op(txn: Txn) -> None:
            txn.execute("DELETE FROM web_sessions WHERE token_hash = ?", (token_hash,))

        await self._engine.write(op)

    async def delete_web_sessions(self, account_id: int, *, keep: str | None = None) -> int:
        def op(txn: Txn) -> int:
            cursor = txn.execute(
                "DELETE FROM web_sessions WHERE account_id = ? AND token_hash <> ?",
                (account_id, keep or ""),
            )
            return cursor.rowcount

        return await self._engine.write(op)
