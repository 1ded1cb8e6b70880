"""CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 section 4): results that stay up to date.

``SEARCH RETURN (UPDATE) ...`` or ``SORT RETURN (UPDATE) ...`` registers the search under its
tag. Whenever the session reports changes of the selected mailbox (new messages, flag changes,
expunges: ``Session.sync``), each registered search is evaluated again over the view and the
difference is sent, before the tagged reply of the command in progress:

    * ESEARCH (TAG "a1") UID REMOVEFROM (2 7)
    * ESEARCH (TAG "a1") UID ADDTO (1 9)

For a SORT the number before the messages is the position (1-based) in the sorted result at
which the message leaves or enters it, one update per message, removals first; for a SEARCH
(no order) it is 0 and the messages are given as one set. Messages are UIDs after a UID
command, sequence numbers otherwise (an expunged message has none, and its EXPUNGE already
says it left). ``CANCELUPDATE "a1"`` ends an update; closing or changing the mailbox ends all.

The searches are evaluated again in full: correct for every key (a flag change can make a
message match ``KEYWORD``, ``UNSEEN``, ``MODSEQ``...), and a sort is served from the cached
sort keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from protocols.imap.arguments import Command
from protocols.imap.replies import Bad, Ok
from protocols.imap.sequence import format_set
from protocols.imap.sort_parse import Sort, SortCriterion

if TYPE_CHECKING:
    from protocols.imap.search_keys import SearchKey
    from protocols.imap.session import Session
    from protocols.imap.view import MailboxView

MAX_CONTEXTS = 32  # updating searches one session may hold


@dataclass
class SearchContext:
    tag: str
    uid: bool
    criteria: SearchKey
    order: tuple[SortCriterion, ...] | None  # None: a SEARCH
    charset: str
    view: MailboxView  # the selection it belongs to
    result: list[int]  # UIDs, in order


def register(
    session: Session,
    command: Command,
    criteria: SearchKey,
    result: list[int],
    order: tuple[SortCriterion, ...] | None = None,
    charset: str = "UTF-8",
) -> None:
    contexts: dict[str, SearchContext] = session.search_contexts
    if command.tag not in contexts and len(contexts) >= MAX_CONTEXTS:
        raise Bad(f"Too many searches with UPDATE (at most {MAX_CONTEXTS})", "LIMIT")
    contexts[command.tag] = SearchContext(
        command.tag, command.uid, criteria, order, charset, session.require_view(), list(result)
    )


async def _evaluate(session: Session, context: SearchContext) -> list[int]:
    from protocols.imap.sort_command import matching, sorted_uids

    if context.order is None:
        return await matching(session, context.criteria)
    return await sorted_uids(session, Sort(context.order, context.charset, context.criteria))


async def refresh(session: Session) -> None:
    """Send the changes of every updating search of the selected mailbox."""
    contexts: dict[str, SearchContext] = session.search_contexts
    view = session.view
    for tag, context in list(contexts.items()):
        if context.view is not view:
            del contexts[tag]
            continue
        new = await _evaluate(session, context)
        if new == context.result:
            continue
        session.write(_updates(session, context, new))
        context.result = new


def _updates(session: Session, context: SearchContext, new: list[int]) -> bytes:
    view = session.require_view()
    head = b'* ESEARCH (TAG "' + context.tag.encode() + b'")' + (b" UID" if context.uid else b"")

    def number(uid: int) -> int:
        return uid if context.uid else view.seq_of(uid)

    old_set, new_set = set(context.result), set(new)
    removed = [uid for uid in context.result if uid not in new_set]
    added = [uid for uid in new if uid not in old_set]
    if not context.uid:
        removed = [uid for uid in removed if view.seq_of(uid)]
    out: list[bytes] = []
    if context.order is None:
        if removed:
            out.append(head + b" REMOVEFROM (0 %s)\r\n" % format_set(map(number, removed)).encode())
        if added:
            numbers = sorted(map(number, added))
            out.append(head + b" ADDTO (0 %s)\r\n" % format_set(numbers).encode())
        return b"".join(out)
    current = list(context.result)
    for uid in removed:
        position = current.index(uid)
        del current[position]
        out.append(head + b" REMOVEFROM (%d %d)\r\n" % (position + 1, number(uid)))
    current = [uid for uid in current if uid in new_set]
    for position, uid in enumerate(new):
        if uid in old_set:
            continue
        current.insert(position, uid)
        out.append(head + b" ADDTO (%d %d)\r\n" % (position + 1, number(uid)))
    return b"".join(out)


async def cancel_update(session: Session, command: Command) -> Ok:
    """``CANCELUPDATE "tag" ...`` (RFC 5267 section 4.2): stop updating those searches."""
    for tag in command.args:
        if session.search_contexts.pop(tag, None) is None:
            raise Bad(f"No search with UPDATE has the tag {tag}")
    return Ok()
