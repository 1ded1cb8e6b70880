"""SQLite backend: the sort fields of message bodies (``stalwart_py.mime.sortfields``).

One row per body in ``sort_fields``, keyed by the blob id, written in the same transaction
as the body (``put_blob``) and deleted with it (a trigger on ``blobs``). A body delivered to
many mailboxes, or copied, has one row. Bodies stored before the table existed are filled
in by the migration that creates it (``backfill``), so a row is always there for every
message.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any, Protocol

from stalwart_py import mime
from stalwart_py.mime.headers import MAX_HEADER_SCAN
from stalwart_py.mime.sortfields import SortFields, compute
from stalwart_py.store.engine import Engine

# The columns a SORT key is read from alone (``sort_column``).
KEY_COLUMNS = frozenset(
    ("subject", "sent", "from_mailbox", "from_display", "to_mailbox", "to_display", "cc_mailbox")
)
BY_MAILBOX = 1000  # more ids than this, of one mailbox: read the mailbox's (``sort_column``)
COLUMNS = (
    "blob_id, subject, reply, sent, from_mailbox, from_display, to_mailbox, to_display,"
    " cc_mailbox, message_id, in_reply_to, refs"
)
_UPDATE_ALL = ", ".join(
    f"{name} = excluded.{name}" for name in (c.strip() for c in COLUMNS.split(",")[1:])
)
SCHEMA = (
    "CREATE TABLE sort_fields ("
    " blob_id INTEGER PRIMARY KEY,"
    " subject TEXT NOT NULL,"
    " reply INTEGER NOT NULL,"
    " sent REAL,"
    " from_mailbox TEXT NOT NULL,"
    " from_display TEXT NOT NULL,"
    " to_mailbox TEXT NOT NULL,"
    " to_display TEXT NOT NULL,"
    " cc_mailbox TEXT NOT NULL,"
    " message_id TEXT,"
    " in_reply_to TEXT,"
    " refs TEXT NOT NULL"
    ")",
    # The row goes with its body, whoever deletes the body (expunge, queue, reports).
    "CREATE TRIGGER sort_fields_gone AFTER DELETE ON blobs BEGIN"
    " DELETE FROM sort_fields WHERE blob_id = old.id; END",
)


class _Executes(Protocol):
    def execute(self, sql: str, params: tuple = ..., /) -> sqlite3.Cursor: ...


def insert_sort_fields(conn: _Executes, blob_id: int, fields: SortFields) -> None:
    conn.execute(
        f"INSERT INTO sort_fields({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
        f" ON CONFLICT(blob_id) DO UPDATE SET {_UPDATE_ALL}",
        (blob_id, *sort_values(fields)),
    )


def sort_values(fields: SortFields) -> tuple[Any, ...]:
    """The values of ``COLUMNS`` after ``blob_id``."""
    return (
        fields.subject,
        int(fields.reply),
        fields.sent,
        fields.from_mailbox,
        fields.from_display,
        fields.to_mailbox,
        fields.to_display,
        fields.cc_mailbox,
        fields.message_id,
        fields.in_reply_to,
        " ".join(fields.references),
    )


def _from_row(row: tuple) -> SortFields:
    return SortFields(row[1], row[2] == 1, *row[3:11], tuple(row[11].split()))


def create_and_backfill(conn: sqlite3.Connection) -> None:
    """The schema migration: the table, its trigger, and a row for every body a message
    refers to (computed from the stored structure and the header block; bodies are never
    parsed again)."""
    for statement in SCHEMA:
        conn.execute(statement)
    rows = conn.execute(
        "SELECT id, structure, substr(data, 1, ?) FROM blobs"
        " WHERE id IN (SELECT DISTINCT blob_id FROM messages)",
        (MAX_HEADER_SCAN,),
    )
    for blob_id, structure, head in rows.fetchall():
        try:
            envelope = mime.from_json(structure).envelope
        except ValueError:
            envelope = mime.parse_message(bytes(head)).envelope
        insert_sort_fields(conn, blob_id, compute(bytes(head), envelope))


class SortMixin:
    _engine: Engine

    async def sort_fields(self, blob_ids: Sequence[int]) -> dict[int, SortFields]:
        def op(conn: sqlite3.Connection) -> dict[int, SortFields]:
            rows = conn.execute(
                f"SELECT {COLUMNS} FROM sort_fields"
                " WHERE blob_id IN (SELECT value FROM json_each(?))",
                (json.dumps(list(blob_ids)),),
            )
            return {row[0]: _from_row(row) for row in rows}

        return await self._engine.read(op)

    async def sort_column(
        self, column: str, blob_ids: Sequence[int], mailbox_id: int | None = None
    ) -> dict[int, Any]:
        if column not in KEY_COLUMNS:
            raise ValueError(f"not a sort key column: {column!r}")
        # The rows come back as two JSON arrays: building ten thousand row tuples cost
        # twice what SQLite's reading them did. Many ids of one mailbox are read by the
        # mailbox, which spares SQLite looking each up.
        if mailbox_id is not None and len(blob_ids) > BY_MAILBOX:
            sql = (
                f"SELECT json_group_array(s.blob_id), json_group_array(s.{column})"
                " FROM messages m JOIN sort_fields s ON s.blob_id = m.blob_id"
                " WHERE m.mailbox_id = ?"
            )
            params: tuple = (mailbox_id,)
        else:
            sql = (
                f"SELECT json_group_array(blob_id), json_group_array({column}) FROM sort_fields"
                " WHERE blob_id IN (SELECT value FROM json_each(?))"
            )
            params = (json.dumps(list(blob_ids)),)

        def op(conn: sqlite3.Connection) -> dict[int, Any]:
            ids, values = conn.execute(sql, params).fetchone()
            return dict(zip(json.loads(ids), json.loads(values), strict=True))

        return await self._engine.read(op)
