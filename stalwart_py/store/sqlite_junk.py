"""SQLite backend: the junk classifier's memory, per account (``stalwart_py.junk``).

* ``junk_tokens``: for each token, in how many trained non-junk (``ham``) and junk (``spam``)
  messages it appeared.
* ``junk_state``: per account, how many messages it trained on of each class, how many
  tokens and trained messages it holds (so that the caps are checked without counting).
* ``junk_trained``: what each trained message was trained as, by the SHA-256 of its body
  (the blob's hash, not its id: an id can be reused once a body is gone). Moving a message
  back and forth, or copying it, trains it once; moving it the other way flips it (its
  tokens leave one class for the other).

Memory is bounded per account: past ``max_tokens`` tokens, the rarest (fewest messages, then
by name) are pruned down to 90% of the cap, so a prune happens once per many trainings; the
oldest ``junk_trained`` rows beyond ``MAX_TRAINED`` are forgotten (such a message, moved
again, trains again).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from stalwart_py.store.engine import Engine, Txn
from stalwart_py.store.model import JunkCounts

MAX_TRAINED = 100_000  # messages whose class is remembered, per account


def create_tables(conn: sqlite3.Connection) -> None:
    """The tables above (a schema migration)."""
    conn.execute(
        "CREATE TABLE junk_tokens ("
        " account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
        " token TEXT NOT NULL,"
        " ham INTEGER NOT NULL DEFAULT 0,"
        " spam INTEGER NOT NULL DEFAULT 0,"
        " PRIMARY KEY (account_id, token)"
        ") WITHOUT ROWID"
    )
    conn.execute(
        "CREATE TABLE junk_state ("
        " account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,"
        " ham INTEGER NOT NULL DEFAULT 0,"
        " spam INTEGER NOT NULL DEFAULT 0,"
        " tokens INTEGER NOT NULL DEFAULT 0,"
        " trained INTEGER NOT NULL DEFAULT 0"
        ")"
    )
    conn.execute(
        "CREATE TABLE junk_trained ("
        " account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
        " hash BLOB NOT NULL,"
        " junk INTEGER NOT NULL,"
        " trained REAL NOT NULL,"
        " PRIMARY KEY (account_id, hash)"
        ") WITHOUT ROWID"
    )
    conn.execute("CREATE INDEX junk_trained_age ON junk_trained(account_id, trained)")


def _state(conn: sqlite3.Connection, account_id: int) -> tuple[int, int, int, int]:
    row = conn.execute(
        "SELECT ham, spam, tokens, trained FROM junk_state WHERE account_id = ?", (account_id,)
    ).fetchone()
    return tuple(row) if row else (0, 0, 0, 0)  # type: ignore[return-value]


def _apply(txn: Txn, account_id: int, tokens: Sequence[str], column: str, delta: int) -> int:
    """Add ``delta`` to ``column`` of each token; returns how many tokens were created (or,
    negative, removed because both counts reached zero)."""
    conn = txn.conn
    if delta > 0:
        created = conn.executemany(
            "INSERT INTO junk_tokens(account_id, token) VALUES (?, ?) ON CONFLICT DO NOTHING",
            [(account_id, token) for token in tokens],
        ).rowcount  # the rows inserted, summed over the statements
    else:
        created = 0
    conn.executemany(
        f"UPDATE junk_tokens SET {column} = max(0, {column} + ?)"
        " WHERE account_id = ? AND token = ?",
        [(delta, account_id, token) for token in tokens],
    )
    if delta < 0:
        removed = conn.execute(
            "DELETE FROM junk_tokens WHERE account_id = ? AND ham = 0 AND spam = 0"
            " AND token IN (SELECT value FROM json_each(?))",
            (account_id, json.dumps(list(tokens))),
        ).rowcount
        created -= removed
    return created


class JunkMixin:
    _engine: Engine

    async def junk_counts(self, account_id: int, tokens: Sequence[str]) -> JunkCounts:
        if not tokens:  # the totals alone: a primary-key lookup, no hop to a reader thread
            return await self._engine.lookup(
                lambda conn: JunkCounts(*_state(conn, account_id)[:2], {})
            )

        def op(conn: sqlite3.Connection) -> JunkCounts:
            ham, spam, _tokens, _trained = _state(conn, account_id)
            rows = conn.execute(
                "SELECT token, ham, spam FROM junk_tokens WHERE account_id = ?"
                " AND token IN (SELECT value FROM json_each(?))",
                (account_id, json.dumps(list(tokens))),
            )
            return JunkCounts(ham, spam, {row[0]: (row[1], row[2]) for row in rows})

        return await self._engine.read(op)

    async def junk_trained_as(self, account_id: int, blob_ids: Sequence[int]) -> dict[int, bool]:
        def op(conn: sqlite3.Connection) -> dict[int, bool]:
            rows = conn.execute(
                "SELECT b.id, t.junk FROM blobs b JOIN junk_trained t"
                " ON t.account_id = ? AND t.hash = b.hash"
                " WHERE b.id IN (SELECT value FROM json_each(?))",
                (account_id, json.dumps(list(blob_ids))),
            )
            return {row[0]: bool(row[1]) for row in rows}

        return await self._engine.read(op)

    async def junk_train_many(
        self,
        account_id: int,
        lessons: Sequence[tuple[int, bool, Sequence[str]]],
        *,
        max_tokens: int,
    ) -> list[str]:
        def op(txn: Txn) -> list[str]:
            outcomes = [_train_one(txn, account_id, *lesson) for lesson in lessons]
            _prune(txn, account_id, max_tokens)
            return outcomes

        return await self._engine.write(op)


def _train_one(txn: Txn, account_id: int, blob_id: int, junk: bool, tokens: Sequence[str]) -> str:
    row = txn.execute("SELECT hash FROM blobs WHERE id = ?", (blob_id,)).fetchone()
    if row is None:
        return "gone"
    digest = row[0]
    previous = txn.execute(
        "SELECT junk FROM junk_trained WHERE account_id = ? AND hash = ?",
        (account_id, digest),
    ).fetchone()
    if previous is not None and bool(previous[0]) == junk:
        return "unchanged"
    txn.execute(
        "INSERT INTO junk_state(account_id) VALUES (?) ON CONFLICT DO NOTHING", (account_id,)
    )
    new, old = ("spam", "ham") if junk else ("ham", "spam")
    created = _apply(txn, account_id, tokens, new, 1)
    if previous is not None:  # retraining: the message leaves its old class
        created += _apply(txn, account_id, tokens, old, -1)
        txn.execute(
            f"UPDATE junk_state SET {new} = {new} + 1, {old} = max(0, {old} - 1),"
            " tokens = tokens + ? WHERE account_id = ?",
            (created, account_id),
        )
    else:
        txn.execute(
            f"UPDATE junk_state SET {new} = {new} + 1, tokens = tokens + ?,"
            " trained = trained + 1 WHERE account_id = ?",
            (created, account_id),
        )
    txn.execute(
        "INSERT INTO junk_trained(account_id, hash, junk, trained) VALUES (?, ?, ?, ?)"
        " ON CONFLICT(account_id, hash) DO UPDATE SET junk = excluded.junk,"
        " trained = excluded.trained",
        (account_id, digest, int(junk), txn.now),
    )
    return "retrained" if previous is not None else "trained"


def _prune(txn: Txn, account_id: int, max_tokens: int) -> None:
    """Keep the account under its caps (see the module docstring)."""
    _ham, _spam, tokens, trained = _state(txn.conn, account_id)
    if tokens > max_tokens:
        excess = tokens - max_tokens * 9 // 10
        removed = txn.execute(
            "DELETE FROM junk_tokens WHERE account_id = ? AND token IN (SELECT token FROM"
            " junk_tokens WHERE account_id = ? ORDER BY ham + spam, token LIMIT ?)",
            (account_id, account_id, excess),
        ).rowcount
        txn.execute(
            "UPDATE junk_state SET tokens = tokens - ? WHERE account_id = ?",
            (removed, account_id),
        )
    if trained > MAX_TRAINED:
        excess = trained - MAX_TRAINED * 9 // 10
        removed = txn.execute(
            "DELETE FROM junk_trained WHERE account_id = ? AND hash IN (SELECT hash FROM"
            " junk_trained WHERE account_id = ? ORDER BY trained LIMIT ?)",
            (account_id, account_id, excess),
        ).rowcount
        txn.execute(
            "UPDATE junk_state SET trained = trained - ? WHERE account_id = ?",
            (removed, account_id),
        )
