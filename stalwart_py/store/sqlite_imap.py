"""SQLite backend: the per-user IMAP state that is not about one message.

* Subscriptions (RFC 9051 section 6.3.7, RFC 3501 section 6.3.6) are names, not mailboxes:
  a subscribed name that does not (or no longer) exist stays subscribed, and CREATE, DELETE
  and RENAME do not touch them. The server subscribes on its own only to mailboxes it
  creates itself: an account's default mailboxes and those delivery or Sieve ``fileinto
  :create`` make (``add_subscription``), which is what a user of a mail client expects to
  see.
* ``\\Recent`` (RFC 3501 section 2.3.2): ``mailboxes.recent_uid`` is the highest UID some
  session has claimed. A message above it has not been seen by any IMAP4rev1 session yet;
  the session that SELECTs the mailbox (or is told of the message while it has the mailbox
  selected) claims it, and is the only one to see it as ``\\Recent``. Claiming only ever
  raises the mark, in one write, so two sessions never both get a message.
"""

from __future__ import annotations

import sqlite3

from stalwart_py.store.engine import Engine, Txn


def _name(name: str) -> str:
    """INBOX is one name in any case (RFC 9051 section 5.1); other names are exact."""
    return "INBOX" if name.upper() == "INBOX" else name


def add_subscription(txn: Txn, account_id: int, name: str) -> None:
    """Subscribe ``name`` inside a write (a mailbox the server itself created)."""
    txn.execute(
        "INSERT INTO subscriptions(account_id, name) VALUES (?, ?) ON CONFLICT DO NOTHING",
        (account_id, _name(name)),
    )


class ImapMixin:
    _engine: Engine

    # -- subscriptions ----------------------------------------------------------------------

    async def subscribe(self, account_id: int, name: str, subscribed: bool) -> None:
        def op(txn: Txn) -> None:
            txn.listings.add(account_id)  # watchers of the account's list (NOTIFY)
            if subscribed:
                add_subscription(txn, account_id, name)
            else:
                txn.execute(
                    "DELETE FROM subscriptions WHERE account_id = ? AND name = ?",
                    (account_id, _name(name)),
                )

        await self._engine.write(op)

    async def subscriptions(self, account_id: int) -> list[str]:
        def op(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT name FROM subscriptions WHERE account_id = ? ORDER BY name",
                (account_id,),
            )
            return [row[0] for row in rows]

        return await self._engine.read(op)

    # -- \Recent ----------------------------------------------------------------------------

    async def claim_recent(self, mailbox_id: int, up_to: int) -> int:
        def peek(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(
                "SELECT recent_uid FROM mailboxes WHERE id = ?", (mailbox_id,)
            ).fetchone()
            return row[0] if row else None

        # Most SELECTs find nothing new: a point read, and no write at all.
        current = await self._engine.lookup(peek)
        if current is None or current >= up_to:
            return up_to if current is None else current

        def op(txn: Txn) -> int:
            row = txn.execute(
                "SELECT recent_uid FROM mailboxes WHERE id = ?", (mailbox_id,)
            ).fetchone()
            if row is None:
                return up_to
            if row[0] < up_to:
                txn.execute("UPDATE mailboxes SET recent_uid = ? WHERE id = ?", (up_to, mailbox_id))
            return row[0]

        return await self._engine.write(op)

    async def unclaimed_recent(self, mailbox_id: int) -> tuple[int, int]:
        def op(conn: sqlite3.Connection) -> tuple[int, int]:
            row = conn.execute(
                "SELECT m.recent_uid, (SELECT count(*) FROM messages WHERE mailbox_id = m.id"
                " AND uid > m.recent_uid) FROM mailboxes m WHERE m.id = ?",
                (mailbox_id,),
            ).fetchone()
            return (row[0], row[1]) if row else (0, 0)

        return await self._engine.read(op)
