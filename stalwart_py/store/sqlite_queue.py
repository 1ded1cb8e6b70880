"""SQLite backend: the outbound queue and received DSN/ARF reports.

A queued message has one row per recipient, each with its own status, attempt count and
next attempt time, so that recipients at different destinations retry independently. The
message is removed once no recipient is pending.

Leases. Several queue runners may share one database (nodes on PostgreSQL), so a runner takes
the recipients it is about to deliver with a *lease*: ``lease_owner`` names the runner and
``lease_until`` is when the lease lapses. ``lease_queue_entries`` takes only due recipients
whose lease is free or lapsed, in one write transaction: on SQLite the single writer makes two
runners take turns; on PostgreSQL the candidate rows are locked ``FOR UPDATE SKIP LOCKED``, so
a runner passes over the rows another is leasing at that moment instead of waiting for it, and
no two runners lease one recipient. Recording an attempt's outcome ends the lease; a runner
renews the leases of its deliveries under way, so only a runner that died (or hung) lets its
lease lapse, and then another delivers the recipient again: at worst twice, never lost. The
times are the runners' clocks: a skew between nodes shortens or lengthens a lease by as much,
small beside ``queue.lease-time``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from stalwart_py.store.blobs import INLINE_DELIVERIES, PreparedBlob, put_blob, release_blob
from stalwart_py.store.change_hub import QUEUE_CHANNEL
from stalwart_py.store.engine import Engine, Txn
from stalwart_py.store.model import (
    NotFound,
    OutboundMessage,
    QueueEntry,
    QueueRecipientState,
    RecipientUpdate,
    Report,
)
from stalwart_py.store.sqlite_blobs import BlobsMixin

QUEUE_COLUMNS = (
    "m.id, m.mail_from, m.created, m.ret, m.envid, m.source, b.size, m.blob_id, m.smtputf8"
)
RECIPIENT_COLUMNS = (
    "id, message_id, address, domain, orcpt, notify, status, attempts, next_attempt, last_error"
)


def insert_queue_entry(txn: Txn, blob: PreparedBlob, message: OutboundMessage) -> int:
    txn.touched.add(QUEUE_CHANNEL)
    blob_id = put_blob(txn, blob)
    queue_id = txn.execute(
        "INSERT INTO queue_messages(blob_id, mail_from, ret, envid, source, smtputf8, created)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (
            blob_id,
            message.mail_from,
            message.ret,
            message.envid,
            message.source,
            int(message.smtputf8),
            txn.now if message.created is None else message.created,
        ),
    ).fetchone()[0]
    txn.conn.executemany(
        "INSERT INTO queue_recipients(message_id, address, domain, orcpt, notify, next_attempt,"
        " attempts, last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                queue_id,
                r.address,
                r.address.rpartition("@")[2].lower(),
                r.orcpt,
                ",".join(r.notify),
                txn.now if r.next_attempt is None else r.next_attempt,
                r.attempts,
                r.last_error,
            )
            for r in message.recipients
        ],
    )
    return queue_id


def _entries(conn: sqlite3.Connection, rows: list[tuple]) -> list[QueueEntry]:
    if not rows:
        return []
    recipients: dict[int, list[QueueRecipientState]] = {}
    for row in conn.execute(
        f"SELECT {RECIPIENT_COLUMNS} FROM queue_recipients "
        "WHERE message_id IN (SELECT value FROM json_each(?)) ORDER BY id",
        (json.dumps([row[0] for row in rows]),),
    ):
        recipients.setdefault(row[1], []).append(
            QueueRecipientState(
                id=row[0],
                address=row[2],
                domain=row[3],
                orcpt=row[4],
                notify=tuple(filter(None, row[5].split(","))),
                status=row[6],
                attempts=row[7],
                next_attempt=row[8],
                last_error=row[9],
            )
        )
    entries = []
    for row in rows:
        states = tuple(recipients.get(row[0], ()))
        pending = [r for r in states if r.status == "pending"]
        entries.append(
            QueueEntry(
                id=row[0],
                mail_from=row[1],
                created=row[2],
                next_attempt=min((r.next_attempt for r in pending), default=0.0),
                attempts=max((r.attempts for r in states), default=0),
                ret=row[3],
                envid=row[4],
                source=row[5],
                size=row[6],
                blob_id=row[7],
                smtputf8=bool(row[8]),
                recipients=states,
            )
        )
    return entries


def _delete_entry(txn: Txn, queue_id: int) -> bool:
    row = txn.execute("SELECT blob_id FROM queue_messages WHERE id = ?", (queue_id,)).fetchone()
    if row is None:
        return False
    txn.execute("DELETE FROM queue_messages WHERE id = ?", (queue_id,))
    release_blob(txn, row[0])
    return True


class QueueMixin(BlobsMixin):
    _engine: Engine
    # Appended to the lease's candidate query: PostgreSQL skips rows another runner's lease
    # transaction holds; SQLite has one writer at a time and nothing to skip.
    _SKIP_LOCKED = ""

    async def lease_queue_entries(
        self, owner: str, now: float, lease_time: float, limit: int = 1000
    ) -> tuple[list[QueueEntry], frozenset[int]]:
        free = (
            "SELECT id FROM queue_recipients WHERE status = 'pending'"
            " AND next_attempt <= ? AND (lease_until IS NULL OR lease_until <= ?)"
        )

        def anything(conn: sqlite3.Connection) -> bool:
            return conn.execute(f"{free} LIMIT 1", (now, now)).fetchone() is not None

        # A scan finds nothing to do most times (every wake-up, every poll): a read then
        # spares the writer a transaction.
        if not await self._engine.read(anything):
            return [], frozenset()

        def op(txn: Txn) -> tuple[list[QueueEntry], frozenset[int]]:
            ids = [
                row[0]
                for row in txn.execute(
                    f"{free} ORDER BY next_attempt, id LIMIT ?{self._SKIP_LOCKED}",
                    (now, now, limit),
                )
            ]
            if not ids:
                return [], frozenset()
            listed = json.dumps(ids)
            txn.execute(
                "UPDATE queue_recipients SET lease_owner = ?, lease_until = ?"
                " WHERE id IN (SELECT value FROM json_each(?))",
                (owner, now + lease_time, listed),
            )
            rows = txn.execute(
                f"SELECT {QUEUE_COLUMNS} FROM queue_messages m JOIN blobs b ON b.id = m.blob_id"
                " WHERE m.id IN (SELECT message_id FROM queue_recipients"
                " WHERE id IN (SELECT value FROM json_each(?))) ORDER BY m.created, m.id",
                (listed,),
            ).fetchall()
            return _entries(txn.conn, rows), frozenset(ids)

        return await self._engine.write(op)

    async def renew_queue_leases(self, owner: str, ids: Sequence[int], until: float | None) -> int:
        """Extend ``owner``'s leases of ``ids`` to ``until``, or end them (None)."""
        change = (
            "lease_until = ?" if until is not None else "lease_owner = NULL, lease_until = NULL"
        )

        def op(txn: Txn) -> int:
            return txn.execute(
                f"UPDATE queue_recipients SET {change}"
                " WHERE lease_owner = ? AND id IN (SELECT value FROM json_each(?))",
                (*([until] if until is not None else []), owner, json.dumps(list(ids))),
            ).rowcount

        return await self._engine.write(op)

    async def release_queue_leases(self, owner: str | None = None) -> int:
        def op(txn: Txn) -> int:
            return txn.execute(
                "UPDATE queue_recipients SET lease_owner = NULL, lease_until = NULL"
                " WHERE lease_owner = coalesce(?, lease_owner)",
                (owner,),
            ).rowcount

        return await self._engine.write(op)

    async def enqueue(self, data: bytes, message: OutboundMessage) -> int:
        blob = await self._prepare_body(data)
        small = len(message.recipients) <= INLINE_DELIVERIES
        return await self._write_with_bodies(
            [blob], lambda txn: insert_queue_entry(txn, blob, message), small=small
        )

    async def queue_entries(
        self, *, due_before: float | None = None, limit: int = 1000, offset: int = 0
    ) -> list[QueueEntry]:
        due = "" if due_before is None else " AND next_attempt <= ?"
        window = (limit, offset)

        def op(conn: sqlite3.Connection) -> list[QueueEntry]:
            rows = conn.execute(
                f"SELECT {QUEUE_COLUMNS} FROM queue_messages m JOIN blobs b ON b.id = m.blob_id"
                " WHERE m.id IN (SELECT message_id FROM queue_recipients WHERE status = 'pending'"
                f"{due}) ORDER BY m.created, m.id LIMIT ? OFFSET ?",
                window if due_before is None else (due_before, *window),
            ).fetchall()
            return _entries(conn, rows)

        return await self._engine.read(op)

    async def queue_size(self) -> tuple[int, int]:
        def op(conn: sqlite3.Connection) -> tuple[int, int]:
            return conn.execute(
                "SELECT count(DISTINCT message_id), count(*) FROM queue_recipients"
                " WHERE status = 'pending'"
            ).fetchone()

        return await self._engine.read(op)

    async def queue_entry(self, queue_id: int) -> QueueEntry | None:
        def op(conn: sqlite3.Connection) -> QueueEntry | None:
            rows = conn.execute(
                f"SELECT {QUEUE_COLUMNS} FROM queue_messages m JOIN blobs b ON b.id = m.blob_id"
                " WHERE m.id = ?",
                (queue_id,),
            ).fetchall()
            entries = _entries(conn, rows)
            return entries[0] if entries else None

        return await self._engine.read(op)

    async def update_queue_recipients(
        self,
        queue_id: int,
        updates: Sequence[RecipientUpdate],
        *,
        notification: tuple[bytes, OutboundMessage] | None = None,
    ) -> None:
        dsn = (
            None
            if notification is None
            else (await self._prepare_body(notification[0]), notification[1])
        )

        def op(txn: Txn) -> None:
            exists = txn.execute(
                "SELECT 1 FROM queue_messages WHERE id = ?", (queue_id,)
            ).fetchone()
            if exists is None:
                return  # deleted meanwhile (`queue delete`): nothing to record or report
            if dsn is not None:
                insert_queue_entry(txn, *dsn)
            for update in updates:
                txn.execute(
                    "UPDATE queue_recipients SET status = ?, next_attempt = ?, last_error = ?,"
                    " attempts = attempts + 1, lease_owner = NULL, lease_until = NULL"
                    " WHERE id = ? AND message_id = ?",
                    (update.status, update.next_attempt, update.last_error, update.id, queue_id),
                )
            pending = txn.execute(
                "SELECT count(*) FROM queue_recipients WHERE message_id = ? AND status = 'pending'",
                (queue_id,),
            ).fetchone()[0]
            if not pending:
                _delete_entry(txn, queue_id)

        await self._write_with_bodies([] if dsn is None else [dsn[0]], op)

    async def delete_queue_entry(self, queue_id: int) -> None:
        def op(txn: Txn) -> None:
            if not _delete_entry(txn, queue_id):
                raise NotFound(f"no queued message {queue_id}")

        await self._engine.write(op)

    async def retry_queue(self, queue_id: int | None = None) -> int:
        def op(txn: Txn) -> int:
            txn.touched.add(QUEUE_CHANNEL)
            return txn.execute(
                "UPDATE queue_recipients SET next_attempt = ? WHERE status = 'pending'"
                " AND message_id = coalesce(?, message_id)",  # None: every message
                (txn.now, queue_id),
            ).rowcount

        return await self._engine.write(op)

    async def add_report(
        self, kind: str, domain: str, mail_from: str, summary: str, data: bytes
    ) -> int:
        blob = await self._prepare_body(data)

        def op(txn: Txn) -> int:
            return txn.execute(
                "INSERT INTO reports(kind, received, domain, mail_from, summary, blob_id)"
                " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (kind, txn.now, domain, mail_from, summary, put_blob(txn, blob)),
            ).fetchone()[0]

        return await self._write_with_bodies([blob], op)

    async def list_reports(self, limit: int = 100) -> list[Report]:
        def op(conn: sqlite3.Connection) -> list[Report]:
            rows = conn.execute(
                "SELECT id, kind, received, domain, mail_from, summary FROM reports"
                " ORDER BY received DESC, id DESC LIMIT ?",
                (limit,),
            )
            return [Report(*row) for row in rows]

        return await self._engine.read(op)
