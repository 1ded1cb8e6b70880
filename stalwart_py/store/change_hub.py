"""Change notification within a process: which sessions wait for which mailbox.

A write records the mailboxes it touched; after its batch commits, the ``ChangeHub`` wakes
every ``MailboxWatch`` on them. A watch is level-triggered: a change that happens while its
session is busy is still reported by the next ``wait()``, so a session that starts watching
before it reads never misses one. The changes themselves are read from the database
(``changes_since``), so a wake-up carries no data and can never be stale.

Across processes (worker processes, ``stalwart-py`` commands on the same data directory),
the engine's writer publishes each committed batch's change set on the ``ChangeBus``
(``change_bus.py``; PostgreSQL's NOTIFY across nodes, ``pg_notify.py``) and every other
process's hub wakes its watches as for its own writes (``deliver``).
"""

from __future__ import annotations

from collections.abc import Callable

from stalwart_py.store.account_watch import AccountWatch
from stalwart_py.store.change_bus import ChangeSet
from stalwart_py.store.wakeup import Wakeup


class MailboxWatch:
    """A session's subscription to changes of one mailbox; see the module docstring."""

    __slots__ = ("_hub", "_wakeup", "mailbox_id", "on_change")

    def __init__(self, hub: ChangeHub, mailbox_id: int) -> None:
        self._hub = hub
        self.mailbox_id = mailbox_id
        self._wakeup = Wakeup()
        # Called at each change, for a session that waits for a change or for input in one
        # task (IMAP IDLE: it cancels the wait for input).
        self.on_change: Callable[[], object] | None = None

    @property
    def pending(self) -> bool:
        """A change has been committed since the last ``wait()`` or ``clear()``."""
        return self._wakeup.is_set

    def clear(self) -> None:
        self._wakeup.clear()

    async def wait(self) -> None:
        """Until a change is committed (at once if one already was), then clear."""
        await self._wakeup.wait()
        self._wakeup.clear()

    def _set(self) -> None:
        self._wakeup.set()
        if self.on_change is not None:
            self.on_change()

    def close(self) -> None:
        self._hub._remove(self)

    def __enter__(self) -> MailboxWatch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# A pseudo mailbox id (SQLite row ids start at 1): the outbound queue got work. A write that
# enqueues adds it to ``Txn.touched``; the queue's workers watch it to start at once.
QUEUE_CHANNEL = 0
# State kept outside the database, announced by whoever changed it (``ChangeHub.announce``):
# certificates installed under ``<data-dir>/certificates/`` and TLS-ALPN-01 challenges under
# ``<data-dir>/acme/``, which every process serving the data directory must use at once.
CERTIFICATES_CHANNEL = -1


class ChangeHub:
    """Mailbox id -> the watches on it. Used from the event loop thread only."""

    def __init__(self) -> None:
        self._watches: dict[int, set[MailboxWatch]] = {}
        self._account_watches: dict[int, set[AccountWatch]] = {}
        # The other processes' side (``ChangeBus.publish``), set once the engine's bus is up.
        self.publish: Callable[[ChangeSet], None] | None = None

    def announce(self, channel: int) -> None:
        """Wake the watches of ``channel`` (a pseudo mailbox id) here and in every other
        process on this store: a change made outside a write batch (a file written under
        the data directory), which the watchers then read for themselves."""
        self.notify({channel})
        if self.publish is not None:
            self.publish(ChangeSet({channel}))

    def watch(self, mailbox_id: int) -> MailboxWatch:
        watch = MailboxWatch(self, mailbox_id)
        self._watches.setdefault(mailbox_id, set()).add(watch)
        return watch

    def watch_account(self, account_id: int) -> AccountWatch:
        """A watch over every mailbox of the account, its mailbox list and subscriptions."""
        watch = AccountWatch(self, account_id)
        self._account_watches.setdefault(account_id, set()).add(watch)
        return watch

    def notify(
        self,
        mailbox_ids: set[int],
        owners: dict[int, set[int]] | None = None,
        listings: set[int] | frozenset[int] = frozenset(),
    ) -> None:
        """Wake the watches of ``mailbox_ids``, and the account watches of ``owners``
        (account id -> its mailboxes among them) and of ``listings`` (accounts whose mailbox
        list or subscriptions changed)."""
        for mailbox_id in mailbox_ids:
            for watch in self._watches.get(mailbox_id, ()):
                watch._set()
        if not self._account_watches:
            return
        owners = owners or {}
        for account_id in owners.keys() | listings:
            for account_watch in self._account_watches.get(account_id, ()):
                account_watch._set(owners.get(account_id, ()), account_id in listings)

    def notify_all(self) -> None:
        """Wake every watch (another process's change set was lost or too large to send): each
        reads the state again, which is correct whatever changed."""
        for watches in self._watches.values():
            for watch in watches:
                watch._set()
        for account_watches in self._account_watches.values():
            for account_watch in account_watches:
                account_watch._set((), True)

    def deliver(self, changes: ChangeSet) -> None:
        """A change set another process committed (``ChangeBus``)."""
        if changes.everything:
            self.notify_all()
        else:
            self.notify(changes.mailboxes, changes.owners, changes.listings)

    def _remove_account_watch(self, watch: AccountWatch) -> None:
        watches = self._account_watches.get(watch.account_id)
        if watches is not None:
            watches.discard(watch)
            if not watches:
                del self._account_watches[watch.account_id]

    def _remove(self, watch: MailboxWatch) -> None:
        watches = self._watches.get(watch.mailbox_id)
        if watches is not None:
            watches.discard(watch)
            if not watches:
                del self._watches[watch.mailbox_id]
