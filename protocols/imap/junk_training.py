"""What a mail client's junk buttons do, told to the server's junk filter (training).

A client marks junk by moving or copying a message into the ``\\Junk`` mailbox (RFC 6154) or
by setting the ``$Junk`` keyword, and not-junk by moving it out of Junk or setting
``$NotJunk`` (the keywords of RFC 9051 2.3.2's registry, as Thunderbird and Apple Mail set
them). After the command's store call succeeded, these hooks hand the bodies involved to
``ServerContext.junk``, which only queues them: the tokenising and the counting happen in its
worker, so the command's reply is not delayed. The rules are the junk filter's
(``stalwart_py/junk/filter.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from stalwart_py.store import Mailbox, MessageInfo

if TYPE_CHECKING:
    from protocols.imap.session import Session
    from protocols.imap.view import MailboxView

_KEYWORDS = frozenset({"$junk", "$notjunk"})
_JUNK = "\\Junk"


def after_store(
    session: Session, mode: str, flags: frozenset[str], messages: Iterable[MessageInfo]
) -> None:
    """A STORE of ``flags`` succeeded on ``messages`` (changed or already so)."""
    junk = session.conn.server.junk
    if not junk.enabled or not any(flag.lower() in _KEYWORDS for flag in flags):
        return
    junk.trained_by_flags(session.account_id, mode, flags, [m.blob_id for m in messages])


async def after_copy(
    session: Session, view: MailboxView, uids: Iterable[int], target: Mailbox
) -> None:
    """A COPY or MOVE of ``uids`` of the selected mailbox into ``target`` succeeded."""
    junk = session.conn.server.junk
    if not junk.enabled:
        return
    blob_ids = [view.messages[uid].blob_id for uid in uids if uid in view.messages]
    source_use = None
    if target.special_use != _JUNK:  # only a move out of Junk trains: is it from there?
        source = await session.store.get_mailbox_by_id(view.mailbox_id)
        source_use = source.special_use if source is not None else None
        if source_use != _JUNK:
            return
    junk.trained_by_move(session.account_id, source_use, target.special_use, blob_ids)
