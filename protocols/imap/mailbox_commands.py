"""Authenticated-state commands on mailboxes: SELECT, EXAMINE, CREATE, DELETE, RENAME,
SUBSCRIBE, UNSUBSCRIBE, NAMESPACE, STATUS (RFC 9051 section 6.3) and QUOTA (RFC 9208).

SELECT reads the mailbox into the session's view (``view.py``) after it starts watching the
mailbox, so no change is ever missed between the two. With QRESYNC (RFC 7162 section 3.2.5)
the client gives the UIDVALIDITY and MODSEQ it knows and learns only what changed since:
``VANISHED (EARLIER)`` for expunged UIDs and FETCH for messages changed after that MODSEQ.
"""

from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING

from protocols.imap import recent, response
from protocols.imap.cache import caches
from protocols.imap.commands import Command, MailboxArg, QuotaRoot, Rename, Select, Status
from protocols.imap.mailbox_names import (
    DELIMITER,
    INBOX,
    BadMailboxName,
    check_name,
    parents,
)
from protocols.imap.replies import Bad, No, Ok
from protocols.imap.sequence import format_set
from protocols.imap.view import MailboxView
from stalwart_py.store import AlreadyExists, NotFound, StoreError

if TYPE_CHECKING:
    from protocols.imap.session import Session

SPECIAL_USES = ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")
PERMANENT_FLAGS = "\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*"


async def select(session: Session, command: Command) -> Ok:
    """SELECT and EXAMINE (RFC 9051 sections 6.3.2 and 6.3.3)."""
    from protocols.imap.session import State

    args: Select = command.args
    if args.qresync is not None and not session.options.qresync:
        raise Bad("QRESYNC is not enabled")
    if session.view is not None:
        session.close_mailbox()
        session.write(response.status("*", "OK", "Previous mailbox closed", "CLOSED"))
    if args.condstore:
        session.enable_condstore()  # no mailbox is selected now: SELECT says HIGHESTMODSEQ
    mailbox = await session.mailbox(args.mailbox)
    store = session.store
    watch = store.changes.watch(mailbox.id)
    try:
        head = await store.get_mailbox_by_id(mailbox.id)
        if head is None:
            raise No(f"No mailbox {mailbox.name}", "NONEXISTENT")
        snapshots = caches(store).snapshots
        messages = await snapshots.messages(head, store.messages)
    except BaseException:
        watch.close()
        raise
    view = MailboxView.create(
        head.id,
        head.name,
        head.uidvalidity,
        command.name == "EXAMINE",
        head.highestmodseq,
        head.uidnext,
        messages,
        index=snapshots.index(head, messages),
    )
    session.view, session.watch, session.state = view, watch, State.SELECTED
    write = session.write
    write(response.untagged(b"FLAGS " + view.flags_list()))
    permanent = "" if view.read_only else PERMANENT_FLAGS
    write(response.status("*", "OK", "Flags permitted", f"PERMANENTFLAGS ({permanent})"))
    write(b"* %d EXISTS\r\n" % view.exists)
    if not session.utf8:  # IMAP4rev1 clients expect RECENT and UNSEEN
        write(b"* %d RECENT\r\n" % await recent.on_select(session, view))
        unseen = view.first_unseen()
        if unseen:
            write(response.status("*", "OK", "First unseen", f"UNSEEN {unseen}"))
    write(response.status("*", "OK", "UIDs valid", f"UIDVALIDITY {view.uidvalidity}"))
    write(response.status("*", "OK", "Predicted next UID", f"UIDNEXT {view.uidnext}"))
    write(response.status("*", "OK", "Highest", f"HIGHESTMODSEQ {view.modseq}"))
    if session.utf8:  # RFC 9051 section 6.3.2: the mailbox's name as the server spells it
        write(b'* LIST () "/" ' + session.encode(view.name) + b"\r\n")
    if args.qresync is not None and args.qresync.uidvalidity == view.uidvalidity:
        await _qresync(session, view, args)
    return Ok(code="READ-ONLY" if view.read_only else "READ-WRITE")


async def _qresync(session: Session, view: MailboxView, args: Select) -> None:
    assert args.qresync is not None
    known_modseq = args.qresync.modseq
    known = args.qresync.known_uids
    largest = max(view.uidnext - 1, 1)
    changes = await session.store.changes_since(view.mailbox_id, known_modseq)
    vanished = [
        uid
        for uid in changes.vanished
        if uid not in view.messages and (known is None or known.contains(uid, largest))
    ]
    if vanished:
        session.write(response.untagged("VANISHED (EARLIER) " + format_set(vanished)))
    for uid in view.uids:
        info = view.messages[uid]
        if info.modseq > known_modseq and (known is None or known.contains(uid, largest)):
            session.write(view.fetch_flags(info, session.options))
        await session.flush_if_full()


def _new_name(session: Session, raw: bytes) -> str:
    name = session.decode(raw)
    if name.endswith(DELIMITER):  # RFC 9051 6.3.4: the client will create children
        name = name.rstrip(DELIMITER)
    try:
        check_name(name)
    except BadMailboxName as error:
        raise No(str(error), "CANNOT") from None
    return name


async def _create_parents(session: Session, name: str) -> None:
    """RFC 9051 section 6.3.4: superior names are created as needed."""
    for parent in parents(name):
        if await session.store.get_mailbox(session.account_id, parent) is None:
            with contextlib.suppress(AlreadyExists):
                await session.store.create_mailbox(session.account_id, parent)


async def create(session: Session, command: Command) -> Ok:
    args: MailboxArg = command.args
    name = _new_name(session, args.mailbox)
    if name == INBOX:
        raise No("INBOX always exists", "ALREADYEXISTS")
    known = {use.lower(): use for use in SPECIAL_USES}
    uses = [known.get(use.lower(), "") for use in args.special_use]
    if len(uses) > 1 or "" in uses:
        raise No("Unsupported special-use attribute", "USEATTR")
    await _create_parents(session, name)
    try:
        await session.store.create_mailbox(session.account_id, name, uses[0] if uses else None)
    except AlreadyExists:
        raise No(f"Mailbox {name} already exists", "ALREADYEXISTS") from None
    return Ok()


async def delete(session: Session, command: Command) -> Ok:
    args: MailboxArg = command.args
    name = session.decode(args.mailbox)
    if name == INBOX:
        raise No("INBOX cannot be deleted", "CANNOT")
    try:
        await session.store.delete_mailbox(session.account_id, name)
    except NotFound:
        raise No(f"No mailbox {name}", "NONEXISTENT") from None
    return Ok()


async def rename(session: Session, command: Command) -> Ok:
    args: Rename = command.args
    old = session.decode(args.old)
    new = _new_name(session, args.new)
    if new == INBOX:
        raise No("INBOX already exists", "ALREADYEXISTS")
    if new.startswith(old + DELIMITER):
        raise No("A mailbox cannot be moved below itself", "CANNOT")
    if await session.store.get_mailbox(session.account_id, old) is None:
        raise No(f"No mailbox {old}", "NONEXISTENT")
    await _create_parents(session, new)
    try:
        await session.store.rename_mailbox(session.account_id, old, new)
    except NotFound:
        raise No(f"No mailbox {old}", "NONEXISTENT") from None
    except AlreadyExists:
        raise No(f"Mailbox {new} already exists", "ALREADYEXISTS") from None
    view = session.view
    renamed = view is not None and (view.name == old or view.name.startswith(old + DELIMITER))
    if view is not None and renamed and old != INBOX:  # INBOX itself stays (6.3.6)
        view.name = new + view.name[len(old) :]
    return Ok()


async def subscribe(session: Session, command: Command) -> Ok:
    """SUBSCRIBE and UNSUBSCRIBE (RFC 9051 section 6.3.7 and 6.3.8): subscriptions are names.
    SUBSCRIBE checks that the mailbox exists (the RFC allows it, Dovecot does it, and it
    catches a misspelt name); UNSUBSCRIBE takes any name, including one whose mailbox is
    gone, and one that was not subscribed is no error."""
    args: MailboxArg = command.args
    name = session.decode(args.mailbox)
    subscribing = command.name == "SUBSCRIBE"
    if subscribing and await session.store.get_mailbox(session.account_id, name) is None:
        raise No(f"No mailbox {name}", "NONEXISTENT")
    await session.store.subscribe(session.account_id, name, subscribing)
    return Ok()


async def namespace(session: Session, command: Command) -> Ok:
    """RFC 2342: one personal namespace, no prefix, "/" between levels; no others."""
    session.write(b'* NAMESPACE (("" "/")) NIL NIL\r\n')
    return Ok()


COUNTED_ITEMS = frozenset(("MESSAGES", "UNSEEN", "DELETED", "DELETED-STORAGE", "SIZE"))


async def status_items(session: Session, mailbox_id: int, items: tuple[str, ...]) -> bytes:
    """``MESSAGES 3 UIDNEXT 5 ...`` for STATUS and LIST-STATUS (RFC 9051 section 6.3.11).

    DELETED-STORAGE (RFC 9208 section 4.1.4) is "the amount of storage space that can be
    reclaimed by performing EXPUNGE on the mailbox", with "the sum of the RFC822.SIZE of the
    messages with the \\Deleted flag set" as the permitted approximation: a count of octets,
    not of the 1024-octet units of the STORAGE quota resource (section 5.1). Here it is the
    exact figure: an expunge gives back to the account's storage usage exactly the stored
    size of each message it removes (blobs shared by identical messages are counted once per
    message, as the quota counts them).
    """
    store = session.store
    head = await store.get_mailbox_by_id(mailbox_id)
    if head is None:
        raise No("The mailbox is gone", "NONEXISTENT")
    counts = None
    if COUNTED_ITEMS.intersection(items):
        counts = await store.mailbox_counts(mailbox_id)
    values = []
    for item in items:
        if item == "MESSAGES":
            value = counts.messages if counts else 0
        elif item == "UIDNEXT":
            value = head.uidnext
        elif item == "UIDVALIDITY":
            value = head.uidvalidity
        elif item == "UNSEEN":
            value = counts.unseen if counts else 0
        elif item == "DELETED":
            value = counts.deleted if counts else 0
        elif item == "DELETED-STORAGE":
            value = counts.deleted_size if counts else 0
        elif item == "SIZE":
            value = counts.size if counts else 0
        elif item == "HIGHESTMODSEQ":
            session.enable_condstore()
            value = head.highestmodseq
        elif item == "APPENDLIMIT":
            value = session.settings.max_literal_size
        else:  # RECENT (IMAP4rev1 only, RFC 3501 section 2.3.2)
            value = await recent.status_count(session, mailbox_id)
        values.append(f"{item} {value}")
    return " ".join(values).encode("ascii")


async def status(session: Session, command: Command) -> Ok:
    args: Status = command.args
    mailbox = await session.mailbox(args.mailbox)
    items = await status_items(session, mailbox.id, args.items)
    session.write(b"* STATUS " + session.encode(mailbox.name) + b" (" + items + b")\r\n")
    return Ok()


# -- QUOTA (RFC 9208): one quota root, "", for the whole account -----------------------------


async def _quota(session: Session) -> bytes | None:
    """``"" (STORAGE used limit MESSAGE used limit)``, or None without quotas."""
    assert session.account is not None
    account = await session.store.get_account(session.account.address)
    if account is None:
        raise StoreError("the account is gone")
    resources = []
    if account.quota_bytes is not None:
        used = math.ceil(account.used_bytes / 1024)
        resources.append(f"STORAGE {used} {account.quota_bytes // 1024}")
    if account.quota_messages is not None:
        resources.append(f"MESSAGE {account.used_messages} {account.quota_messages}")
    if not resources:
        return None
    return b'"" (' + " ".join(resources).encode("ascii") + b")"


async def getquotaroot(session: Session, command: Command) -> Ok:
    args: MailboxArg = command.args
    mailbox = await session.mailbox(args.mailbox)
    quota = await _quota(session)
    root = b' ""' if quota is not None else b""
    session.write(b"* QUOTAROOT " + session.encode(mailbox.name) + root + b"\r\n")
    if quota is not None:
        session.write(b"* QUOTA " + quota + b"\r\n")
    return Ok()


async def getquota(session: Session, command: Command) -> Ok:
    args: QuotaRoot = command.args
    quota = await _quota(session)
    if args.root != "" or quota is None:
        raise No(f"No quota root {args.root!r}", "NONEXISTENT")
    session.write(b"* QUOTA " + quota + b"\r\n")
    return Ok()


async def setquota(session: Session, command: Command) -> Ok:
    raise No("Quotas are set by the administrator", "NOPERM")
