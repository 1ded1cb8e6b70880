"""``\\Recent`` for IMAP4rev1 sessions (RFC 3501 section 2.3.2).

A message is recent to exactly one session: the first to be told about it. The store keeps,
per mailbox, the highest UID some session has claimed (``Store.claim_recent``); a session
that SELECTs the mailbox claims every message above that mark, and while it has the mailbox
selected it claims the messages that arrive (on the path that announces them: after a
command, in IDLE), so another session never sees them as recent. A claimed message carries
``\\Recent`` in this session's view (``MailboxView.mark_recent``): FETCH FLAGS, STORE
replies, ``SEARCH RECENT``/``NEW``/``OLD`` all read it there.

EXAMINE changes no per-user state (RFC 3501 section 6.3.2), so it claims nothing; it shows
the messages nobody has claimed yet as recent, as Dovecot does. A session that ENABLEd
IMAP4rev2 neither sees nor claims any (RFC 9051 appendix E.1 removed ``\\Recent``), so a
rev1 session after it still gets them.

``* n RECENT`` is sent on SELECT and EXAMINE and after a ``* n EXISTS`` whose new messages
this session claimed (RFC 3501 section 7.3.2 has it follow a change of size; when another
session took them the count is what the client already knows, so it is not repeated).
``STATUS (RECENT)`` counts the unclaimed messages, plus this session's own recent ones when
it has the mailbox selected read-write.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from protocols.imap.session import Session
    from protocols.imap.view import MailboxView


def keeps_recent(session: Session) -> bool:
    """Whether this session takes part in \\Recent (IMAP4rev1: it did not enable rev2)."""
    return not session.utf8


async def _mark(session: Session, view: MailboxView, after: int) -> None:
    """Claim (or, read-only, just look at) the view's messages with a UID above ``after``
    and mark those no other session had as recent."""
    if not view.uids or view.uids[-1] <= after:
        return
    store = session.store
    if view.read_only:
        mark, _ = await store.unclaimed_recent(view.mailbox_id)
    else:
        mark = await store.claim_recent(view.mailbox_id, view.uids[-1])
    start = bisect.bisect_right(view.uids, max(mark, after))
    view.mark_recent(view.uids[start:])


async def on_select(session: Session, view: MailboxView) -> int:
    """SELECT/EXAMINE: mark the recent messages; the count for ``* n RECENT``."""
    if not keeps_recent(session):
        return 0
    await _mark(session, view, 0)
    return view.recent_count()


async def after_update(session: Session, view: MailboxView, last_uid: int) -> bytes:
    """After the view took new messages (``last_uid`` was the highest before): claim them
    and say how many messages are recent now."""
    if not keeps_recent(session) or not view.uids or view.uids[-1] <= last_uid:
        return b""
    before = view.recent_count()
    await _mark(session, view, last_uid)
    count = view.recent_count()
    return b"* %d RECENT\r\n" % count if count != before else b""


async def status_count(session: Session, mailbox_id: int) -> int:
    """``STATUS (RECENT)``: the messages no session has claimed, and this session's own."""
    if not keeps_recent(session):
        return 0
    _, unclaimed = await session.store.unclaimed_recent(mailbox_id)
    view = session.view
    if view is not None and view.mailbox_id == mailbox_id and not view.read_only:
        return unclaimed + view.recent_count()
    return unclaimed
