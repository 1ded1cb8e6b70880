"""Commands that change messages: STORE (RFC 9051 6.4.6,
CONDSTORE UNCHANGEDSINCE), COPY (6.4.7, COPYUID), MOVE (RFC 6851), EXPUNGE and UID EXPUNGE
(6.4.3, RFC 4315), CLOSE, UNSELECT and CHECK.

Each answers only after the store call returned, that is once the change is durable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocols.imap import response
from protocols.imap.commands import Command, CopyMove, Store, UidSet
from protocols.imap.junk_training import after_copy, after_store
from protocols.imap.replies import Bad, No, Ok
from protocols.imap.sequence import format_set
from protocols.imap.view import MailboxView
from stalwart_py.store import FLAG_NAMES, QuotaExceeded

if TYPE_CHECKING:
    from protocols.imap.session import Session

MAX_KEYWORD_LENGTH = 128


def check_flags(names: tuple[str, ...]) -> frozenset[str]:
    """The flags a client may set: the five system flags (any case) and keywords. \\Recent
    is the server's and is ignored (RFC 3501 section 2.3.2); other \\-flags are refused."""
    flags = set()
    for name in names:
        if name.startswith("\\"):
            if name.lower() == "\\recent":
                continue
            if name.lower() not in FLAG_NAMES:
                raise Bad(f"Unknown system flag {name}")
        elif len(name) > MAX_KEYWORD_LENGTH:
            raise Bad("Keyword too long")
        flags.add(name)
    return frozenset(flags)


def _writable(session: Session) -> MailboxView:
    view = session.require_view()
    if view.read_only:
        raise No("The mailbox is open read-only (EXAMINE)", "READ-ONLY")
    return view


async def store(session: Session, command: Command) -> Ok:
    args: Store = command.args
    view = _writable(session)
    flags = check_flags(args.flags)
    options = session.options
    if args.unchanged_since is not None:
        session.enable_condstore()
    uids = view.select(args.sequence, command.uid)
    if not uids:
        return Ok()
    result = await session.store.update_flags(
        view.mailbox_id, uids, args.mode, flags, unchanged_since=args.unchanged_since
    )
    session.write(view.update(result.changed + result.unchanged))
    after_store(session, args.mode, flags, result.changed + result.unchanged)
    changed = {info.uid for info in result.changed}
    for info in sorted(result.changed + result.unchanged, key=lambda i: i.uid):
        seq = view.seq_of(info.uid)
        if not seq:
            continue
        items = []
        if command.uid or options.qresync:
            items.append(b"UID %d" % info.uid)
        if not args.silent:
            # the view's flags: they carry \\Recent where this session has it
            items.append(b"FLAGS " + response.flags(view.messages.get(info.uid, info).flags))
        if options.condstore and (not args.silent or info.uid in changed):
            # RFC 7162 section 3.1.3: with CONDSTORE, a changed message is reported with
            # its new MODSEQ even after .SILENT.
            items.append(b"MODSEQ (%d)" % info.modseq)
        if not args.silent or (options.condstore and info.uid in changed):
            session.write(b"* %d FETCH (%s)\r\n" % (seq, b" ".join(items)))
        await session.flush_if_full()
    if result.failed:
        numbers = result.failed if command.uid else sorted(map(view.seq_of, result.failed))
        return Ok("Some messages were modified since", f"MODIFIED {format_set(numbers)}")
    return Ok()


async def copy(session: Session, command: Command) -> Ok:
    args: CopyMove = command.args
    view = session.require_view()
    target = await session.mailbox(args.mailbox, code="TRYCREATE")
    if command.name == "MOVE":
        _writable(session)
    uids = view.select(args.sequence, command.uid)
    if not uids:
        return Ok("No messages")
    store = session.store
    try:
        if command.name == "MOVE":
            mapping = await store.move_messages(view.mailbox_id, uids, target.id)
        else:
            mapping = await store.copy_messages(view.mailbox_id, uids, target.id)
    except QuotaExceeded as error:
        raise No(str(error) or "Quota exceeded", "OVERQUOTA") from None
    if not mapping:
        return Ok("No messages")
    await after_copy(session, view, [source for source, _ in mapping], target)
    code = (
        f"COPYUID {target.uidvalidity} {format_set(s for s, _ in mapping)} "
        f"{format_set(d for _, d in mapping)}"
    )
    if command.name == "COPY":
        return Ok(code=code)
    # RFC 6851 section 4.3: COPYUID in an untagged OK, then the expunges.
    session.write(response.status("*", "OK", "Moved", code))
    session.write(view.remove([source for source, _ in mapping], session.options))
    return Ok()


async def expunge(session: Session, command: Command) -> Ok:
    view = _writable(session)
    uids = None
    if command.uid:
        args: UidSet = command.args
        uids = view.select(args.sequence, True)
        if not uids:
            return Ok()
    expunged = await session.store.expunge(view.mailbox_id, uids)
    session.write(view.remove(expunged, session.options))
    if expunged and session.options.qresync:
        # RFC 7162 3.2.10's example: the mailbox's new HIGHESTMODSEQ in the tagged OK, so a
        # QRESYNC client need not ask for it (Dovecot does the same)
        mailbox = await session.store.get_mailbox_by_id(view.mailbox_id)
        if mailbox is not None:
            return Ok(code=f"HIGHESTMODSEQ {mailbox.highestmodseq}")
    return Ok()


async def close(session: Session, command: Command) -> Ok:
    """RFC 9051 section 6.4.1: expunge silently (when read-write), then unselect."""
    view = session.require_view()
    if not view.read_only:
        await session.store.expunge(view.mailbox_id)
    session.close_mailbox()
    return Ok()


async def unselect(session: Session, command: Command) -> Ok:
    session.close_mailbox()
    return Ok()


async def check(session: Session, command: Command) -> Ok:
    return Ok()  # IMAP4rev1 CHECK: everything is durable already
