"""A watch over a whole account, for IMAP NOTIFY (RFC 5465) and anything else that follows
every mailbox of an account at once.

A ``MailboxWatch`` says "something changed in this mailbox". An ``AccountWatch`` says which
mailboxes of its account had message changes (new, expunged, flags) since it was last read,
and whether the account's mailbox list or subscriptions changed (a mailbox created, deleted
or renamed; SUBSCRIBE, UNSUBSCRIBE). Like a mailbox watch it is level-triggered and carries
no data beyond the ids: the watcher reads the state itself, so it can never be stale, and
changes that happen while its session is busy accumulate until ``take()``.

Which account a touched mailbox belongs to is resolved by the writer, in the transaction
that touched it (``mailbox_owners``), so a watch needs no list of the account's mailboxes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import TYPE_CHECKING

from stalwart_py.store.wakeup import Wakeup

if TYPE_CHECKING:
    from stalwart_py.store.change_hub import ChangeHub


class AccountWatch:
    """See the module docstring. Used from the event loop thread only."""

    def __init__(self, hub: ChangeHub, account_id: int) -> None:
        self._hub = hub
        self.account_id = account_id
        self._wakeup = Wakeup()
        self._mailboxes: set[int] = set()
        self._listing = False

    @property
    def pending(self) -> bool:
        return self._wakeup.is_set

    async def wait(self) -> None:
        """Until a change is committed (at once if one was since the last ``take()``)."""
        await self._wakeup.wait()

    def take(self) -> tuple[set[int], bool]:
        """What changed since the last call: the mailboxes with message changes, and whether
        the mailbox list or the subscriptions changed. Clears the watch."""
        mailboxes, listing = self._mailboxes, self._listing
        self._mailboxes, self._listing = set(), False
        self._wakeup.clear()
        return mailboxes, listing

    def _set(self, mailboxes: Iterable[int], listing: bool) -> None:
        self._mailboxes.update(mailboxes)
        self._listing |= listing
        self._wakeup.set()

    def close(self) -> None:
        self._hub._remove_account_watch(self)

    def __enter__(self) -> AccountWatch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def mailbox_owners(conn: sqlite3.Connection, mailbox_ids: Iterable[int]) -> dict[int, set[int]]:
    """Account id -> the given mailboxes of it that still exist (one indexed query)."""
    ids = [mailbox_id for mailbox_id in mailbox_ids if mailbox_id > 0]
    owners: dict[int, set[int]] = {}
    if not ids:
        return owners
    rows = conn.execute(
        "SELECT id, account_id FROM mailboxes WHERE id IN (SELECT value FROM json_each(?))",
        (json.dumps(ids),),
    )
    for mailbox_id, account_id in rows:
        owners.setdefault(account_id, set()).add(mailbox_id)
    return owners
