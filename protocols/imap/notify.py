"""NOTIFY (RFC 5465): the client says once which events of which mailboxes it wants to hear
about, and the server tells it as they happen, whenever the session is idle between commands
(and during IDLE), without being asked again.

What is reported (section 5):

* for a mailbox other than the selected one, MessageNew / MessageExpunge as ``* STATUS name
  (MESSAGES n UIDNEXT n UIDVALIDITY n UNSEEN n)`` (with HIGHESTMODSEQ once CONDSTORE is on),
  and FlagChange as the same STATUS when UNSEEN (or HIGHESTMODSEQ) moved;
* MailboxName as ``* LIST``: a new mailbox with its attributes, a deleted one ``\\NonExistent``,
  a renamed one with ``("OLDNAME" ("old"))`` (section 5.4); SubscriptionChange as ``* LIST``
  with or without ``\\Subscribed``;
* for the selected mailbox (filter ``selected``), the usual EXISTS, EXPUNGE (or VANISHED) and
  FETCH FLAGS, and after EXISTS the FETCH of the attributes MessageNew asked for (BODY[] as
  BODY.PEEK[]: a notification never sets ``\\Seen``). With ``selected-delayed`` expunges wait
  for a command during which the client expects them (section 5.1), as without NOTIFY.

Each mailbox falls under the first event group whose filter matches it (``inboxes``: INBOX,
where mail is delivered; ``personal``: every mailbox of the account; ``subscribed``;
``subtree`` a name and all below it; ``mailboxes`` exactly the names given). The selected
mailbox falls only under a selected filter: without one it is reported as it would be without
NOTIFY (at command completion).

How: the session holds an ``AccountWatch`` (``stalwart_py.store.account_watch``) over the
whole account while NOTIFY is set. While the session waits for the next command, a reporter
task in a task group owned by that wait waits on the watch and writes what changed; it is
cancelled when a command begins, and its report is written with cancellation shielded, so a
command never interleaves with half a notification. Changes made while a command runs pile up
in the watch and are reported when the session is next idle.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import anyio

from protocols.imap import fetch_command
from protocols.imap.arguments import Command, Fetch
from protocols.imap.fetch_items import BodySection, FetchItem
from protocols.imap.mailbox_names import DELIMITER, INBOX, parents
from protocols.imap.notify_args import (
    FLAG_CHANGE,
    MAILBOX_NAME,
    MESSAGE_EXPUNGE,
    MESSAGE_NEW,
    SUBSCRIPTION_CHANGE,
    SUPPORTED,
    EventGroup,
    NotifyArgs,
)
from protocols.imap.replies import Logout, No, Ok
from protocols.imap.sequence import SequenceSet
from stalwart_py.plugin import ConnectionClosed, ReadTimeout
from stalwart_py.store import Mailbox, StoreError

if TYPE_CHECKING:
    from protocols.imap.session import Session

NO_EVENTS: frozenset[str] = frozenset()


@dataclasses.dataclass(frozen=True, slots=True)
class _Group:
    """An event group with its mailbox names decoded."""

    filter: str
    names: tuple[str, ...]
    events: frozenset[str]
    fetch_items: tuple[FetchItem, ...]

    def matches(self, name: str, subscribed: bool) -> bool:
        if self.filter == "PERSONAL":
            return True
        if self.filter == "INBOXES":
            return name == INBOX
        if self.filter == "SUBSCRIBED":
            return subscribed
        if self.filter == "MAILBOXES":
            return name in self.names
        if self.filter == "SUBTREE":
            return any(name == top or name.startswith(top + DELIMITER) for top in self.names)
        return False  # the selected filters name no mailbox


def _normal(name: str) -> str:
    return INBOX if name.upper() == INBOX else name


class Notifier:
    """The NOTIFY state of one session: its event groups, the account watch, and what the
    client was last told (mailbox names and subscriptions, STATUS values)."""

    def __init__(self, session: Session, args: NotifyArgs) -> None:
        assert args.groups is not None
        self.session = session
        self.groups = [_decode(session, group) for group in args.groups if not group.selected]
        selected = [group for group in args.groups if group.selected]
        self.selected: EventGroup | None = selected[0] if selected else None
        items = self.selected.fetch_items if self.selected is not None else ()
        self.fetch_items = tuple(_peek(item) for item in items)
        self.watch = session.store.changes.watch_account(session.account_id)
        self.listing: dict[int, Mailbox] = {}
        self.subscribed: set[str] = set()  # subscriptions are names (RFC 9051 6.3.7)
        self.told: dict[int, tuple[int, ...]] = {}  # mailbox id -> the last STATUS values
        self.failure: BaseException | None = None

    def close(self) -> None:
        self.watch.close()

    # -- which events for which mailbox ------------------------------------------------------

    def events_for(self, mailbox: Mailbox) -> frozenset[str]:
        """The events to report for a mailbox other than the selected one."""
        view = self.session.view
        if view is not None and view.mailbox_id == mailbox.id:
            return NO_EVENTS
        for group in self.groups:
            if group.matches(mailbox.name, mailbox.name in self.subscribed):
                return group.events
        return NO_EVENTS

    @property
    def selected_events(self) -> frozenset[str]:
        return self.selected.events if self.selected is not None else NO_EVENTS

    # -- setting up ----------------------------------------------------------------------

    async def start(self, *, status: bool) -> None:
        """Take the first snapshot; with SET (STATUS), tell the status of every mailbox with
        message events at once (section 3)."""
        mailboxes = await self.session.store.list_mailboxes(self.session.account_id)
        self.listing = {mailbox.id: mailbox for mailbox in mailboxes}
        self.subscribed = set(await self.session.store.subscriptions(self.session.account_id))
        for mailbox in mailboxes:
            if self.events_for(mailbox) & {MESSAGE_NEW, MESSAGE_EXPUNGE}:
                values = await self._status_values(mailbox.id)
                if values is None:
                    continue
                self.told[mailbox.id] = values
                if status:
                    self._write_status(mailbox.name, values)

    # -- reporting -----------------------------------------------------------------------

    async def report(self, *, idle: bool = False) -> None:
        """Write what changed since the last report. ``idle``: within IDLE, where the
        selected mailbox is always reported, expunges included."""
        mailboxes, listing = self.watch.take()
        if listing:
            await self._report_listing()
        view = self.session.view
        for mailbox_id in sorted(mailboxes):
            if view is not None and mailbox_id == view.mailbox_id:
                continue
            mailbox = self.listing.get(mailbox_id)
            if mailbox is not None:
                await self._report_status(mailbox)
        if view is not None and (idle or self.selected_events):
            await self._report_selected(idle)

    async def _report_status(self, mailbox: Mailbox) -> None:
        events = self.events_for(mailbox)
        if not events & {MESSAGE_NEW, MESSAGE_EXPUNGE}:
            return
        values = await self._status_values(mailbox.id)
        if values is None:
            return
        before = self.told.get(mailbox.id)
        self.told[mailbox.id] = values
        if before is not None:
            counted = values[:3] != before[:3]  # MESSAGES, UIDNEXT, UIDVALIDITY
            flags = FLAG_CHANGE in events and values[3:] != before[3:]  # UNSEEN, MODSEQ
            if not (counted or flags):
                return
        self._write_status(mailbox.name, values)

    async def _status_values(self, mailbox_id: int) -> tuple[int, ...] | None:
        store = self.session.store
        head = await store.get_mailbox_by_id(mailbox_id)
        if head is None:
            return None
        counts = await store.mailbox_counts(mailbox_id)
        return (counts.messages, head.uidnext, head.uidvalidity, counts.unseen, head.highestmodseq)

    def _write_status(self, name: str, values: tuple[int, ...]) -> None:
        messages, uidnext, uidvalidity, unseen, modseq = values
        items = b"MESSAGES %d UIDNEXT %d UIDVALIDITY %d UNSEEN %d" % (
            messages,
            uidnext,
            uidvalidity,
            unseen,
        )
        if self.session.options.condstore:
            items += b" HIGHESTMODSEQ %d" % modseq
        self.session.write(b"* STATUS " + self.session.encode(name) + b" (" + items + b")\r\n")

    async def _report_listing(self) -> None:
        """LIST for mailboxes created, deleted, renamed, (un)subscribed since the snapshot."""
        session = self.session
        mailboxes = await session.store.list_mailboxes(session.account_id)
        now = {mailbox.id: mailbox for mailbox in mailboxes}
        before, self.listing = self.listing, now
        subscribed_now = set(await session.store.subscriptions(session.account_id))
        subscribed_before, self.subscribed = self.subscribed, subscribed_now
        parents_now = {parent for mailbox in mailboxes for parent in parents(mailbox.name)}
        for mailbox_id, old in before.items():
            if mailbox_id not in now and MAILBOX_NAME in self.events_for(old):
                session.write(b'* LIST (\\NonExistent) "/" ' + session.encode(old.name) + b"\r\n")
        for mailbox in mailboxes:
            old = before.get(mailbox.id)
            events = self.events_for(mailbox)
            if old is not None and old.name != mailbox.name:
                events = events | self.events_for(old)
            extra = b""
            if old is None or old.name != mailbox.name:
                if MAILBOX_NAME not in events:
                    continue
                if old is not None:
                    extra = b' ("OLDNAME" (' + session.encode(old.name) + b"))"
            elif (old.name in subscribed_before) == (
                mailbox.name in subscribed_now
            ) or SUBSCRIPTION_CHANGE not in events:
                continue
            attributes = ["\\HasChildren" if mailbox.name in parents_now else "\\HasNoChildren"]
            if mailbox.name in subscribed_now:
                attributes.append("\\Subscribed")
            if mailbox.special_use:
                attributes.append(mailbox.special_use)
            line = b"* LIST (" + " ".join(attributes).encode() + b') "/" '
            session.write(line + session.encode(mailbox.name) + extra + b"\r\n")
            if old is None and events & {MESSAGE_NEW, MESSAGE_EXPUNGE}:
                values = await self._status_values(mailbox.id)
                if values is not None:
                    self.told[mailbox.id] = values

    async def _report_selected(self, idle: bool) -> None:
        session = self.session
        view = session.view
        assert view is not None
        last = view.uids[-1] if view.uids else 0
        delayed = self.selected is not None and self.selected.filter == "SELECTED-DELAYED"
        await session.sync(allow_expunge=idle or not delayed)
        if self.fetch_items and session.view is view and view.uids and view.uids[-1] > last:
            new = SequenceSet(((last + 1, view.uids[-1]),))
            fetch = Command("*", "FETCH", True, Fetch(new, self.fetch_items))
            await fetch_command.fetch(session, fetch)

    # -- the reporter task ---------------------------------------------------------------

    async def report_loop(self, scope: anyio.CancelScope, *, idle: bool = False) -> None:
        """Report each change as it is committed, until cancelled. A failure that ends the
        session (the client gone, the selected mailbox deleted) is kept in ``failure`` and
        cancels ``scope``; any other failure is logged and reporting goes on."""
        while True:
            await self.watch.wait()
            with anyio.CancelScope(shield=True):
                try:
                    await self.report(idle=idle)
                    await self.session.flush()
                except (ConnectionClosed, Logout) as error:
                    self.failure = error
                    scope.cancel()
                    return
                except StoreError as error:
                    self.session.conn.log.warning("NOTIFY report failed: %s", error)
                except Exception:
                    # A bug of ours: logged, and the session goes on (as a command's would).
                    self.session.conn.log.exception("NOTIFY report failed")

    def raise_failure(self) -> None:
        failure, self.failure = self.failure, None
        if failure is not None:
            raise failure

    async def until_command(self, timeout: float | None) -> float:
        """``conn.begin_command``, reporting changes while it waits."""
        conn = self.session.conn
        if conn.buffered():  # a pipelined command is there already
            return await conn.begin_command(timeout=timeout)
        deadline = 0.0
        error: BaseException | None = None
        async with anyio.create_task_group() as group:
            group.start_soon(self.report_loop, group.cancel_scope)
            try:
                deadline = await conn.begin_command(timeout=timeout)
            except (ConnectionClosed, ReadTimeout) as caught:
                error = caught
            group.cancel_scope.cancel()
        self.raise_failure()
        if error is not None:
            raise error
        return deadline


def _decode(session: Session, group: EventGroup) -> _Group:
    names = tuple(_normal(session.decode(raw)) for raw in group.mailboxes)
    return _Group(group.filter, names, group.events, group.fetch_items)


def _peek(item: FetchItem) -> FetchItem:
    """A notification never sets \\Seen (RFC 5465 section 5.2)."""
    if isinstance(item, BodySection) and item.sets_seen:
        return dataclasses.replace(item, peek=True)
    return item


async def notify(session: Session, command: Command) -> Ok:
    args: NotifyArgs = command.args
    if args.unsupported is not None:
        raise No(f"Unsupported event {args.unsupported}", "BADEVENT (" + " ".join(SUPPORTED) + ")")
    if session.notifier is not None:
        session.notifier.close()
        session.notifier = None
    if args.groups is None:
        return Ok("NOTIFY NONE completed")
    notifier = Notifier(session, args)
    try:
        await notifier.start(status=args.status)
    except BaseException:
        notifier.close()
        raise
    session.notifier = notifier
    return Ok("NOTIFY completed")
