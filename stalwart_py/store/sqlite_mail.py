"""SQLite backend: mailboxes, messages, blobs and delivery.

Every appended message takes the mailbox's UIDNEXT and a MODSEQ one above its HIGHESTMODSEQ,
in one UPDATE ... RETURNING, so two writers can never hand out the same UID. A STORE or an
expunge is one operation: all the messages it changes share one new MODSEQ (RFC 7162 allows
it, and a client resynchronising sees them together).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence

from stalwart_py.store.base import FlagMode
from stalwart_py.store.blobs import (
    INLINE_DELIVERIES,
    PreparedBlob,
    add_reference,
    put_blob,
    put_blob_with_message,
    release_blob,
    release_mailbox_blobs,
)
from stalwart_py.store.engine import Engine, Txn
from stalwart_py.store.model import (
    MAILBOX_DELIMITER,
    AlreadyExists,
    DeliveryOutcome,
    FlagUpdate,
    LocalDelivery,
    Mailbox,
    MailboxChanges,
    MailboxCounts,
    MessageInfo,
    NotFound,
    QuotaExceeded,
    StoredMessage,
    StoreError,
    SystemFlag,
    join_flags,
    split_flags,
)
from stalwart_py.store.sqlite_accounts import next_uidvalidity
from stalwart_py.store.sqlite_blobs import BlobsMixin
from stalwart_py.store.sqlite_imap import add_subscription

MAILBOX_COLUMNS = "id, account_id, name, special_use, uidvalidity, uidnext, highestmodseq"
MESSAGE_COLUMNS = "uid, modseq, flags, keywords, internaldate, size, blob_id"


def mailbox_from_row(row: tuple) -> Mailbox:
    return Mailbox(row[0], row[1], row[2], row[3], row[4], row[5], row[6])


def message_from_row(row: tuple) -> MessageInfo:
    return MessageInfo(row[0], row[1], join_flags(row[2], row[3]), row[4], row[5], row[6])


def uid_list(uids: Sequence[int]) -> str:
    """UIDs as one JSON parameter, for ``IN (SELECT value FROM json_each(?))``."""
    return json.dumps(list(uids))


# An expunged UID with the MODSEQ of its (latest) expunge.
EXPUNGED_INSERT = (
    "INSERT INTO expunged(mailbox_id, uid, modseq) VALUES (?, ?, ?)"
    " ON CONFLICT(mailbox_id, uid) DO UPDATE SET modseq = excluded.modseq"
)


def _find_mailbox(conn: sqlite3.Connection, account_id: int, name: str) -> Mailbox | None:
    if name.upper() == "INBOX":
        name = "INBOX"
    row = conn.execute(
        f"SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE account_id = ? AND name = ?",
        (account_id, name),
    ).fetchone()
    return mailbox_from_row(row) if row else None


def _charge_quota(txn: Txn, account_id: int, size: int, count: int = 1) -> None:
    # Checked and charged in one UPDATE: with several writers (PostgreSQL, several nodes) the
    # row is locked and the condition evaluated on its latest version, so two deliveries can
    # never both fit in the room left for one.
    charged = txn.execute(
        "UPDATE accounts SET used_bytes = used_bytes + ?, used_messages = used_messages + ?"
        " WHERE id = ? AND (quota_bytes IS NULL OR used_bytes + ? <= quota_bytes)"
        " AND (quota_messages IS NULL OR used_messages + ? <= quota_messages)",
        (size, count, account_id, size, count),
    ).rowcount
    if charged:
        return
    row = txn.execute(
        "SELECT quota_bytes, used_bytes FROM accounts WHERE id = ?", (account_id,)
    ).fetchone()
    if row is None:
        raise NotFound("no such account")
    quota_bytes, used_bytes = row
    if quota_bytes is not None and used_bytes + size > quota_bytes:
        raise QuotaExceeded("mailbox full: storage quota exceeded")
    raise QuotaExceeded("mailbox full: message quota exceeded")


def _insert_message(
    txn: Txn,
    mailbox_id: int,
    blob_id: int,
    size: int,
    bits: int,
    keywords: str,
    internaldate: float,
) -> MessageInfo:
    if txn.sequences:
        # PostgreSQL: the UID taken and the message inserted by one statement (a
        # data-modifying WITH), one round trip of the writer's fewer per message.
        uid, modseq = txn.execute(
            "WITH m AS (UPDATE mailboxes SET uidnext = uidnext + 1,"
            " highestmodseq = highestmodseq + 1 WHERE id = ?"
            " RETURNING id, uidnext - 1 AS uid, highestmodseq AS modseq)"
            " INSERT INTO messages(mailbox_id, uid, modseq, flags, keywords, internaldate, size,"
            " blob_id) SELECT id, uid, modseq, ?, ?, ?, ?, ? FROM m RETURNING uid, modseq",
            (mailbox_id, bits, keywords, internaldate, size, blob_id),
        ).fetchone()
        txn.touched.add(mailbox_id)
        return MessageInfo(uid, modseq, join_flags(bits, keywords), internaldate, size, blob_id)
    uid, modseq = txn.execute(
        "UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1 "
        "WHERE id = ? RETURNING uidnext - 1, highestmodseq",
        (mailbox_id,),
    ).fetchone()
    txn.execute(
        "INSERT INTO messages(mailbox_id, uid, modseq, flags, keywords, internaldate, size,"
        " blob_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (mailbox_id, uid, modseq, bits, keywords, internaldate, size, blob_id),
    )
    txn.touched.add(mailbox_id)
    return MessageInfo(uid, modseq, join_flags(bits, keywords), internaldate, size, blob_id)


def _file_copy(
    txn: Txn,
    mailbox_id: int,
    blob: PreparedBlob,
    blob_id: int | None,
    size: int,
    flags: frozenset[str],
) -> MessageInfo:
    """A delivered copy: its body stored (the first copy, ``blob_id`` None) or referenced once
    more, and its message row. On PostgreSQL a first copy's new body and its message row are
    one statement (``put_blob_with_message``)."""
    bits, keywords = split_flags(flags)
    if blob_id is None:
        row = put_blob_with_message(txn, blob, mailbox_id, (bits, keywords, txn.now, size))
        if row is not None and row[1] is not None:
            txn.touched.add(mailbox_id)
            return MessageInfo(row[1], row[2], join_flags(bits, keywords), txn.now, size, row[0])
        blob_id = put_blob(txn, blob) if row is None else row[0]
    else:
        add_reference(txn, blob_id)
    return _insert_message(txn, mailbox_id, blob_id, size, bits, keywords, txn.now)


def _bump_modseq(txn: Txn, mailbox_id: int) -> int:
    txn.touched.add(mailbox_id)
    return txn.execute(
        "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ? "
        "RETURNING highestmodseq",
        (mailbox_id,),
    ).fetchone()[0]


def _account_of(txn: Txn, mailbox_id: int) -> int:
    row = txn.execute("SELECT account_id FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone()
    if row is None:
        raise NotFound("no such mailbox")
    return row[0]


def _remove_messages(
    txn: Txn, mailbox_id: int, rows: list[tuple], *, refund: bool = True
) -> list[int]:
    """Delete message rows (uid, size, blob_id) with tombstones and, unless told otherwise,
    quota refunds."""
    if not rows:
        return []
    modseq = _bump_modseq(txn, mailbox_id)
    account_id = _account_of(txn, mailbox_id)
    for uid, _size, blob_id in rows:
        txn.execute("DELETE FROM messages WHERE mailbox_id = ? AND uid = ?", (mailbox_id, uid))
        txn.execute(
            EXPUNGED_INSERT,
            (mailbox_id, uid, modseq),
        )
        release_blob(txn, blob_id)
    if not refund:
        return [row[0] for row in rows]
    txn.execute(
        "UPDATE accounts SET used_bytes = max(0, used_bytes - ?), "
        "used_messages = max(0, used_messages - ?) WHERE id = ?",
        (sum(row[1] for row in rows), len(rows), account_id),
    )
    return [row[0] for row in rows]


class MailMixin(BlobsMixin):
    _engine: Engine

    # -- mailboxes --------------------------------------------------------------------------

    async def list_mailboxes(self, account_id: int) -> list[Mailbox]:
        def op(conn: sqlite3.Connection) -> list[Mailbox]:
            rows = conn.execute(
                f"SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE account_id = ? ORDER BY name",
                (account_id,),
            )
            return [mailbox_from_row(row) for row in rows]

        return await self._engine.read(op)

    async def get_mailbox(self, account_id: int, name: str) -> Mailbox | None:
        return await self._engine.lookup(lambda conn: _find_mailbox(conn, account_id, name))

    async def get_mailbox_by_id(self, mailbox_id: int) -> Mailbox | None:
        def op(conn: sqlite3.Connection) -> Mailbox | None:
            row = conn.execute(
                f"SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE id = ?", (mailbox_id,)
            ).fetchone()
            return mailbox_from_row(row) if row else None

        return await self._engine.lookup(op)

    async def create_mailbox(
        self, account_id: int, name: str, special_use: str | None = None
    ) -> Mailbox:
        if name.upper() == "INBOX":
            name = "INBOX"

        def op(txn: Txn) -> Mailbox:
            if _find_mailbox(txn.conn, account_id, name) is not None:
                raise AlreadyExists(f"mailbox {name} already exists")
            row = txn.execute(
                "INSERT INTO mailboxes(account_id, name, special_use, uidvalidity) "
                f"VALUES (?, ?, ?, ?) RETURNING {MAILBOX_COLUMNS}",
                (account_id, name, special_use, next_uidvalidity(txn)),
            ).fetchone()
            txn.listings.add(account_id)
            return mailbox_from_row(row)

        return await self._engine.write(op)

    async def delete_mailbox(self, account_id: int, name: str) -> None:
        def op(txn: Txn) -> None:
            mailbox = _find_mailbox(txn.conn, account_id, name)
            if mailbox is None:
                raise NotFound(f"no mailbox {name}")
            if mailbox.name == "INBOX":
                raise StoreError("INBOX cannot be deleted")
            size, count = txn.execute(
                "SELECT coalesce(sum(size), 0), count(*) FROM messages WHERE mailbox_id = ?",
                (mailbox.id,),
            ).fetchone()
            release_mailbox_blobs(txn, [mailbox.id])
            txn.execute(
                "UPDATE accounts SET used_bytes = max(0, used_bytes - ?), "
                "used_messages = max(0, used_messages - ?) WHERE id = ?",
                (size, count, account_id),
            )
            txn.execute("DELETE FROM mailboxes WHERE id = ?", (mailbox.id,))
            txn.touched.add(mailbox.id)
            txn.listings.add(account_id)

        await self._engine.write(op)

    async def rename_mailbox(self, account_id: int, old: str, new: str) -> None:
        def op(txn: Txn) -> None:
            mailbox = _find_mailbox(txn.conn, account_id, old)
            if mailbox is None:
                raise NotFound(f"no mailbox {old}")
            if _find_mailbox(txn.conn, account_id, new) is not None:
                raise AlreadyExists(f"mailbox {new} already exists")
            txn.listings.add(account_id)
            if mailbox.name == "INBOX":
                _rename_inbox(txn, mailbox, new)
                return
            prefix = mailbox.name + MAILBOX_DELIMITER
            children = txn.execute(
                "SELECT id, name FROM mailboxes WHERE account_id = ? AND substr(name, 1, ?) = ?",
                (account_id, len(prefix), prefix),
            ).fetchall()
            txn.execute("UPDATE mailboxes SET name = ? WHERE id = ?", (new, mailbox.id))
            for child_id, child_name in children:
                txn.execute(
                    "UPDATE mailboxes SET name = ? WHERE id = ?",
                    (new + MAILBOX_DELIMITER + child_name[len(prefix) :], child_id),
                )
            txn.touched.add(mailbox.id)

        await self._engine.write(op)

    async def mailbox_counts(self, mailbox_id: int) -> MailboxCounts:
        def op(conn: sqlite3.Connection) -> MailboxCounts:
            row = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE flags & ? = 0),"
                " count(*) FILTER (WHERE flags & ? != 0), coalesce(sum(size), 0),"
                " coalesce(sum(CASE WHEN flags & ? != 0 THEN size ELSE 0 END), 0)"
                " FROM messages WHERE mailbox_id = ?",
                (
                    int(SystemFlag.SEEN),
                    int(SystemFlag.DELETED),
                    int(SystemFlag.DELETED),
                    mailbox_id,
                ),
            ).fetchone()
            return MailboxCounts(*row)

        return await self._engine.read(op)

    # -- messages ---------------------------------------------------------------------------

    async def append(
        self,
        mailbox_id: int,
        data: bytes,
        *,
        flags: frozenset[str] = frozenset(),
        internaldate: float | None = None,
    ) -> MessageInfo:
        blob = await self._prepare_body(data)
        bits, keywords = split_flags(flags)
        when = time.time() if internaldate is None else internaldate

        def op(txn: Txn) -> MessageInfo:
            _charge_quota(txn, _account_of(txn, mailbox_id), len(data))
            blob_id = put_blob(txn, blob)
            return _insert_message(txn, mailbox_id, blob_id, len(data), bits, keywords, when)

        return await self._write_with_bodies([blob], op, small=True)

    async def deliver(
        self, data: bytes, deliveries: Sequence[LocalDelivery]
    ) -> list[DeliveryOutcome]:
        blob = await self._prepare_body(data)

        def op(txn: Txn) -> list[DeliveryOutcome]:
            outcomes = []
            blob_id: int | None = None
            for delivery in deliveries:
                txn.execute("SAVEPOINT delivery")
                try:
                    mailbox = _delivery_mailbox(txn, delivery)
                    _charge_quota(txn, delivery.account_id, len(data))
                    info = _file_copy(txn, mailbox.id, blob, blob_id, len(data), delivery.flags)
                    blob_id = info.blob_id
                    outcomes.append(DeliveryOutcome(info.uid))
                except StoreError as exc:
                    txn.execute("ROLLBACK TO delivery")
                    outcomes.append(DeliveryOutcome(None, exc))
                txn.execute("RELEASE delivery")
            return outcomes

        small = len(deliveries) <= INLINE_DELIVERIES
        return await self._write_with_bodies([blob], op, small=small)

    async def messages(self, mailbox_id: int) -> list[MessageInfo]:
        def op(conn: sqlite3.Connection) -> list[MessageInfo]:
            rows = conn.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE mailbox_id = ? ORDER BY uid",
                (mailbox_id,),
            )
            return [message_from_row(row) for row in rows]

        return await self._engine.read(op)

    async def structures(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, StoredMessage]:
        def op(conn: sqlite3.Connection) -> dict[int, StoredMessage]:
            rows = conn.execute(
                "SELECT m.uid, m.modseq, m.flags, m.keywords, m.internaldate, m.size, m.blob_id,"
                " b.structure FROM messages m JOIN blobs b ON b.id = m.blob_id"
                " WHERE m.mailbox_id = ? AND m.uid IN (SELECT value FROM json_each(?))",
                (mailbox_id, uid_list(uids)),
            )
            return {row[0]: StoredMessage(message_from_row(row[:7]), row[7]) for row in rows}

        return await self._engine.read(op)

    async def structures_matching(
        self, mailbox_id: int, uids: Sequence[int], terms: Sequence[str]
    ) -> dict[int, StoredMessage]:
        if not terms:
            return {}
        # LIKE compares ASCII letters in any case and other characters exactly, as the
        # contract says; the terms are escaped so that % and _ are themselves.
        matches = " OR ".join("b.structure LIKE ? ESCAPE '\\'" for _ in terms)
        patterns = [
            "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            for term in terms
        ]

        def op(conn: sqlite3.Connection) -> dict[int, StoredMessage]:
            rows = conn.execute(
                "SELECT m.uid, m.modseq, m.flags, m.keywords, m.internaldate, m.size, m.blob_id,"
                " b.structure FROM messages m JOIN blobs b ON b.id = m.blob_id"
                " WHERE m.mailbox_id = ? AND m.uid IN (SELECT value FROM json_each(?))"
                f" AND ({matches})",
                (mailbox_id, uid_list(uids), *patterns),
            )
            return {row[0]: StoredMessage(message_from_row(row[:7]), row[7]) for row in rows}

        return await self._engine.read(op)

    async def update_flags(
        self,
        mailbox_id: int,
        uids: Sequence[int],
        mode: FlagMode,
        flags: frozenset[str],
        *,
        unchanged_since: int | None = None,
    ) -> FlagUpdate:
        given_bits, given_keywords = split_flags(flags)
        given_set = set(given_keywords.split(" ")) - {""}

        def op(txn: Txn) -> FlagUpdate:
            rows = txn.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE mailbox_id = ? "
                "AND uid IN (SELECT value FROM json_each(?)) ORDER BY uid",
                (mailbox_id, uid_list(uids)),
            ).fetchall()
            failed, unchanged, updates = [], [], []
            for row in rows:
                uid, modseq, bits, keywords = row[0], row[1], row[2], row[3]
                if unchanged_since is not None and modseq > unchanged_since:
                    failed.append(uid)
                    continue
                current = set(keywords.split(" ")) - {""}
                if mode == "add":
                    new_bits, new_set = bits | given_bits, current | given_set
                elif mode == "remove":
                    new_bits, new_set = bits & ~given_bits, current - given_set
                else:
                    new_bits, new_set = given_bits, given_set
                new_keywords = " ".join(sorted(new_set))
                if (new_bits, new_keywords) == (bits, keywords):
                    unchanged.append(message_from_row(row))
                else:
                    updates.append((row, new_bits, new_keywords))
            changed = []
            if updates:
                modseq = _bump_modseq(txn, mailbox_id)
                for row, new_bits, new_keywords in updates:
                    txn.execute(
                        "UPDATE messages SET flags = ?, keywords = ?, modseq = ? "
                        "WHERE mailbox_id = ? AND uid = ?",
                        (new_bits, new_keywords, modseq, mailbox_id, row[0]),
                    )
                    changed.append(
                        message_from_row((row[0], modseq, new_bits, new_keywords, *row[4:]))
                    )
            return FlagUpdate(tuple(changed), tuple(unchanged), tuple(failed))

        return await self._engine.write(op)

    async def copy_messages(
        self, source_id: int, uids: Sequence[int], target_id: int
    ) -> list[tuple[int, int]]:
        return await self._engine.write(lambda txn: _copy(txn, source_id, uids, target_id))

    async def move_messages(
        self, source_id: int, uids: Sequence[int], target_id: int
    ) -> list[tuple[int, int]]:
        def op(txn: Txn) -> list[tuple[int, int]]:
            # Within one account (one quota root, RFC 9208) a move changes neither the count
            # nor the size of its messages: it is never over quota, so that a full mailbox
            # can still move messages to Trash. Between accounts the target is charged.
            between = _account_of(txn, source_id) != _account_of(txn, target_id)
            mapping = _copy(txn, source_id, uids, target_id, charge=between)
            moved = {source for source, _ in mapping}
            rows = txn.execute(
                "SELECT uid, size, blob_id FROM messages WHERE mailbox_id = ? "
                "AND uid IN (SELECT value FROM json_each(?)) ORDER BY uid",
                (source_id, uid_list(sorted(moved))),
            ).fetchall()
            _remove_messages(txn, source_id, rows, refund=between)
            return mapping

        return await self._engine.write(op)

    async def expunge(self, mailbox_id: int, uids: Sequence[int] | None = None) -> list[int]:
        def op(txn: Txn) -> list[int]:
            sql = "SELECT uid, size, blob_id FROM messages WHERE mailbox_id = ? AND flags & ? != 0"
            params: tuple = (mailbox_id, int(SystemFlag.DELETED))
            if uids is not None:
                sql += " AND uid IN (SELECT value FROM json_each(?))"
                params += (uid_list(uids),)
            rows = txn.execute(sql + " ORDER BY uid", params).fetchall()
            return _remove_messages(txn, mailbox_id, rows)

        return await self._engine.write(op)

    async def remove_messages(self, mailbox_id: int, uids: Sequence[int]) -> list[int]:
        def op(txn: Txn) -> list[int]:
            rows = txn.execute(
                "SELECT uid, size, blob_id FROM messages WHERE mailbox_id = ? "
                "AND uid IN (SELECT value FROM json_each(?)) ORDER BY uid",
                (mailbox_id, uid_list(uids)),
            ).fetchall()
            return _remove_messages(txn, mailbox_id, rows)

        return await self._engine.write(op)

    async def changes_since(self, mailbox_id: int, modseq: int) -> MailboxChanges:
        def op(conn: sqlite3.Connection) -> MailboxChanges:
            head = conn.execute(
                "SELECT highestmodseq, uidnext FROM mailboxes WHERE id = ?", (mailbox_id,)
            ).fetchone()
            if head is None:
                raise NotFound("no such mailbox")
            changed = conn.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE mailbox_id = ? AND modseq > ? "
                "ORDER BY uid",
                (mailbox_id, modseq),
            )
            vanished = conn.execute(
                "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid",
                (mailbox_id, modseq),
            )
            return MailboxChanges(
                head[0],
                head[1],
                tuple(message_from_row(row) for row in changed),
                tuple(row[0] for row in vanished),
            )

        return await self._engine.read(op)


def _delivery_mailbox(txn: Txn, delivery: LocalDelivery) -> Mailbox:
    """The mailbox a delivery files into: the one named, created if asked, else INBOX."""
    mailbox = _find_mailbox(txn.conn, delivery.account_id, delivery.mailbox)
    if mailbox is None and delivery.create:
        row = txn.execute(
            "INSERT INTO mailboxes(account_id, name, uidvalidity) VALUES (?, ?, ?) "
            f"RETURNING {MAILBOX_COLUMNS}",
            (delivery.account_id, delivery.mailbox, next_uidvalidity(txn)),
        ).fetchone()
        mailbox = mailbox_from_row(row)
        txn.listings.add(delivery.account_id)
        add_subscription(txn, delivery.account_id, mailbox.name)  # as a user expects
    if mailbox is None:
        mailbox = _find_mailbox(txn.conn, delivery.account_id, "INBOX")
    if mailbox is None:
        raise NotFound("no such account")
    return mailbox


def _copy(
    txn: Txn, source_id: int, uids: Sequence[int], target_id: int, *, charge: bool = True
) -> list[tuple[int, int]]:
    rows = txn.execute(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE mailbox_id = ? "
        "AND uid IN (SELECT value FROM json_each(?)) ORDER BY uid",
        (source_id, uid_list(uids)),
    ).fetchall()
    if not rows:
        return []
    if charge:
        _charge_quota(txn, _account_of(txn, target_id), sum(row[5] for row in rows), len(rows))
    mapping = []
    for uid, _modseq, bits, keywords, internaldate, size, blob_id in rows:
        add_reference(txn, blob_id)
        info = _insert_message(txn, target_id, blob_id, size, bits, keywords, internaldate)
        mapping.append((uid, info.uid))
    return mapping


def _rename_inbox(txn: Txn, inbox: Mailbox, new: str) -> None:
    """RFC 9051 6.3.6: renaming INBOX moves its messages to a new mailbox; INBOX stays."""
    row = txn.execute(
        "INSERT INTO mailboxes(account_id, name, uidvalidity, uidnext, highestmodseq) "
        "VALUES (?, ?, ?, ?, ?) RETURNING id",
        (inbox.account_id, new, next_uidvalidity(txn), inbox.uidnext, inbox.highestmodseq),
    ).fetchone()
    moved = txn.execute("SELECT uid FROM messages WHERE mailbox_id = ?", (inbox.id,)).fetchall()
    txn.execute("UPDATE messages SET mailbox_id = ? WHERE mailbox_id = ?", (row[0], inbox.id))
    if moved:
        modseq = _bump_modseq(txn, inbox.id)
        txn.conn.executemany(
            EXPUNGED_INSERT,
            [(inbox.id, uid, modseq) for (uid,) in moved],
        )
    txn.touched.update({inbox.id, row[0]})
