"""SORT, UID SORT (RFC 5256, SORT=DISPLAY RFC 5957, ESORT RFC 5267) and THREAD, UID
THREAD (RFC 5256): the handlers.

Both first find the matching messages exactly as SEARCH does (``search_command.find``), then
order them from the sort fields the store computed when each body arrived (never from the
bodies). Replies: ``* SORT 5 3 4`` and ``* THREAD (3 6 (4 23)(44 7 96))``; with RETURN
options (ESORT) an ``* ESEARCH`` whose MIN and MAX are the first and last message in sort
order and whose ALL is the sorted list as a sequence-set (RFC 5267 section 3.1).

A charset other than UTF-8 and US-ASCII is ``NO [BADCHARSET (UTF-8 US-ASCII)]``
(RFC 5256 section 3).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from protocols.imap.collation import DEFAULT
from protocols.imap.commands import Command, Search
from protocols.imap.esearch import esearch_response
from protocols.imap.replies import No, Ok
from protocols.imap.search_command import find
from protocols.imap.search_eval import Context
from protocols.imap.search_keys import SUPPORTED_CHARSETS
from protocols.imap.sort import KeyCache, key_tables, sort_caches, sort_messages
from protocols.imap.sort_parse import Returns, Sort, Thread
from protocols.imap.thread import ThreadMessage, ordered_subject, references, render

if TYPE_CHECKING:
    from protocols.imap.session import Session

BADCHARSET = "BADCHARSET (" + " ".join(SUPPORTED_CHARSETS) + ")"


def _check_charset(charset: str) -> None:
    if charset not in SUPPORTED_CHARSETS:
        raise No(f"Unsupported charset {charset}", BADCHARSET)


async def matching(session: Session, criteria: object) -> list[int]:
    """The UIDs of the view's messages matching search ``criteria``, ascending."""
    view = session.require_view()
    context = Context(
        count=view.exists,
        largest_uid=view.uids[-1] if view.uids else 0,
        saved=frozenset(view.saved or ()),
    )
    found = await find(session, Search(criteria), context)  # type: ignore[arg-type]
    found.sort()
    return found


async def sorted_uids(session: Session, args: Sort) -> list[int]:
    """The matching UIDs in the order ``args.criteria`` asks."""
    view = session.require_view()
    found = await matching(session, args.search)
    caches = sort_caches(session.store)
    memo_key = ("SORT", view.mailbox_id, view.uidvalidity, args.criteria, tuple(found))
    answer = caches.memo.get(memo_key)
    if answer is not None:
        return answer
    infos = [view.messages[uid] for uid in found]
    blob_ids = [info.blob_id for info in infos]
    tables = await key_tables(session.store, args.criteria, caches.keys, blob_ids, view.mailbox_id)
    answer = sort_messages(infos, args.criteria, tables)
    caches.memo.put(memo_key, answer)
    return answer


async def sort(session: Session, command: Command) -> Ok:
    args: Sort = command.args
    _check_charset(args.charset)
    uids = await sorted_uids(session, args)
    view = session.require_view()
    numbers = uids if command.uid else view.seq_numbers(uids)
    if args.returns is None:
        session.write(("* SORT" + "".join(map(" {}".format, numbers)) + "\r\n").encode())
        return Ok()
    session.write(esearch_response(command, args.returns, numbers, ordered=True))
    if "UPDATE" in args.returns.options:  # RFC 5267: keep it up to date
        from protocols.imap import contexts

        contexts.register(session, command, args.search, uids, args.criteria, args.charset)
    return Ok()


async def _thread_messages(
    session: Session, found: list[int], cache: KeyCache
) -> list[ThreadMessage]:
    view = session.require_view()
    infos = [view.messages[uid] for uid in found]
    blob_ids = [info.blob_id for info in infos]
    await cache.load(session.store, blob_ids)
    subjects = await cache.keys(session.store, "subject", blob_ids, view.mailbox_id)
    out = []
    for info in infos:
        fields = cache.fields.get(info.blob_id)
        if fields is None:  # expunged meanwhile: it still threads, on its arrival alone
            out.append(ThreadMessage(info.uid, info.internaldate, "", False, None, ()))
            continue
        sent = info.internaldate if fields.sent is None else fields.sent
        subject = subjects.get(info.blob_id) or DEFAULT(fields.subject)  # past the cache's size
        out.append(
            ThreadMessage(
                info.uid, sent, subject, fields.reply, fields.message_id, fields.references
            )
        )
    return out


async def thread(session: Session, command: Command) -> Ok:
    args: Thread = command.args
    _check_charset(args.charset)
    view = session.require_view()
    found = await matching(session, args.search)
    caches = sort_caches(session.store)
    memo_key = ("THREAD", view.mailbox_id, view.uidvalidity, args.algorithm, tuple(found))
    roots = caches.memo.get(memo_key)
    if roots is None:
        messages = await _thread_messages(session, found, caches.keys)
        algorithm = references if args.algorithm == "REFERENCES" else ordered_subject
        roots = algorithm(messages)
        caches.memo.put(memo_key, roots)
    number: Callable[[int], int] = int
    if not command.uid:
        position = {uid: seq for seq, uid in enumerate(view.uids, 1)}

        def number(uid: int) -> int:
            return position.get(uid, 0)

    threads = render(roots, number)
    session.write(b"* THREAD" + (b" " + threads if threads else b"") + b"\r\n")
    return Ok()


__all__ = ["Returns", "sort", "sorted_uids", "thread"]
