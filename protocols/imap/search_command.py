"""SEARCH and UID SEARCH (RFC 9051 section 6.4.4) with ESEARCH return options (RFC 4731:
MIN, MAX, COUNT, ALL), SAVE (RFC 5182) and CONDSTORE's MODSEQ (RFC 7162 section 3.1.5).

The messages are filtered in three passes of ``search_eval``: the view alone, then the
cached structures of the messages still undecided (in batches), then their bodies (in
smaller batches), so a search reads from the store only what its criteria need.

Replies: an IMAP4rev1 client gets ``* SEARCH 2 5 7`` for a plain SEARCH, an IMAP4rev2
client (and anyone who asked RETURN options) ``* ESEARCH (TAG "a1") UID COUNT 3 ALL
2,5:7``. ``RETURN (SAVE)`` alone sends no ESEARCH (RFC 5182 section 2.4). With MODSEQ in
the criteria, the highest MODSEQ of the messages found is added.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocols.imap.cache import caches
from protocols.imap.commands import Command, Search
from protocols.imap.replies import Ok
from protocols.imap.search_eval import (
    Candidate,
    Context,
    evaluate,
    structure_terms,
    uses_view,
)
from protocols.imap.search_keys import uses_modseq
from protocols.imap.sequence import format_set

if TYPE_CHECKING:
    from protocols.imap.session import Session

STRUCTURE_BATCH = 1000
BODY_BATCH = 100
SEARCH = ("search",)
SPANS = ("spans",)


async def search(session: Session, command: Command) -> Ok:
    args: Search = command.args
    view = session.require_view()
    with_modseq = uses_modseq(args.criteria)
    if with_modseq:
        session.options.condstore = True  # RFC 7162 section 3.1
    context = Context(
        count=view.exists,
        largest_uid=view.uids[-1] if view.uids else 0,
        saved=frozenset(view.saved or ()),
    )
    found = await find(session, args, context)
    found.sort()
    numbers = found if command.uid else [view.seq_of(uid) for uid in found]
    returns = args.returns
    highest = max((view.messages[uid].modseq for uid in found), default=0)
    if returns is not None and "SAVE" in returns:
        _save(session, returns, found)
    if returns is None and not session.utf8:
        line = b"* SEARCH" + b"".join(b" %d" % n for n in numbers)
        if with_modseq and numbers:
            line += b" (MODSEQ %d)" % highest
        session.write(line + b"\r\n")
        return Ok()
    options = set(returns or ()) or {"ALL"}
    if options == {"SAVE"}:
        return Ok()
    parts = [b'* ESEARCH (TAG "' + command.tag.encode() + b'")']
    if command.uid:
        parts.append(b"UID")
    if numbers and "MIN" in options:
        parts.append(b"MIN %d" % numbers[0])
    if numbers and "MAX" in options:
        parts.append(b"MAX %d" % numbers[-1])
    if "COUNT" in options:
        parts.append(b"COUNT %d" % len(numbers))
    if numbers and "ALL" in options:
        parts.append(b"ALL " + format_set(numbers).encode())
    if with_modseq and numbers:
        parts.append(b"MODSEQ %d" % highest)
    session.write(b" ".join(parts) + b"\r\n")
    return Ok()


def _save(session: Session, returns: tuple[str, ...], uids: list[int]) -> None:
    """RFC 5182 section 2.4: with MIN and/or MAX but neither ALL nor COUNT, only those
    messages are saved; otherwise the whole result."""
    view = session.require_view()
    options = set(returns)
    if options & {"MIN", "MAX"} and not options & {"ALL", "COUNT"}:
        chosen = []
        if uids and "MIN" in options:
            chosen.append(uids[0])
        if uids and "MAX" in options and uids[-1] not in chosen:
            chosen.append(uids[-1])
        view.saved = chosen
    else:
        view.saved = list(uids)


async def find(session: Session, args: Search, context: Context) -> list[int]:
    """The UIDs of the view's messages that match, in three passes."""
    view = session.require_view()
    criteria = args.criteria
    found: list[int] = []
    undecided: list[int] = []
    if uses_view(criteria):
        for index, uid in enumerate(view.uids):
            result = evaluate(criteria, Candidate(view.messages[uid], index + 1), context)
            if result:
                found.append(uid)
            elif result is None:
                undecided.append(uid)
    else:  # only header and text keys: nothing to decide without the store
        undecided = view.uids
    store = session.store
    cache = caches(store).messages
    needs_data: list[tuple[Candidate, str]] = []
    # Messages that cannot match unless their structure holds a term are left in the store.
    terms = structure_terms(criteria)
    for start in range(0, len(undecided), STRUCTURE_BATCH):
        batch = undecided[start : start + STRUCTURE_BATCH]
        if terms is None:
            structures = await store.structures(view.mailbox_id, batch)
        else:
            structures = await store.structures_matching(view.mailbox_id, batch, sorted(terms))
        for uid, stored in sorted(structures.items()):
            info = view.messages.get(uid)
            if info is None:
                continue
            candidate = Candidate(info, view.seq_of(uid))
            candidate.fields = cache.get(stored.info.blob_id, stored.structure, SEARCH).search
            result = evaluate(criteria, candidate, context)
            if result:
                found.append(candidate.info.uid)
            elif result is None:
                needs_data.append((candidate, stored.structure))
    for start in range(0, len(needs_data), BODY_BATCH):
        batch = needs_data[start : start + BODY_BATCH]
        bodies = await store.read_blobs([c.info.blob_id for c, _ in batch])
        for candidate, structure in batch:
            candidate.data = bodies.get(candidate.info.blob_id)
            if candidate.data is None:
                continue
            candidate.spans = cache.get(candidate.info.blob_id, structure, SPANS).spans
            if evaluate(criteria, candidate, context):
                found.append(candidate.info.uid)
            candidate.data = None  # keep memory flat
    return found
