"""SEARCH and UID SEARCH (RFC 9051 section 6.4.4) with ESEARCH return options (RFC 4731:
MIN, MAX, COUNT, ALL), SAVE (RFC 5182) and CONDSTORE's MODSEQ (RFC 7162 section 3.1.5).

The messages are filtered in three passes of ``search_eval``: the view alone, then the
cached structures of the messages still undecided (in batches), then their bodies (in
smaller batches), so a search reads from the store only what its criteria need.

Replies: an IMAP4rev1 client gets ``* SEARCH 2 5 7`` for a plain SEARCH, an IMAP4rev2
client (and anyone who asked RETURN options) ``* ESEARCH (TAG "a1") UID COUNT 3 ALL
2,5:7``. ``RETURN (SAVE)`` alone sends no ESEARCH (RFC 5182 section 2.4). With MODSEQ in
the criteria, the highest MODSEQ of the messages reported is added: of all matches for a
plain SEARCH, ALL or COUNT, of the returned message(s) for MIN and MAX alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocols.imap.cache import caches
from protocols.imap.commands import Command, Search
from protocols.imap.esearch import partial_response
from protocols.imap.replies import No, Ok
from protocols.imap.search_data import SearchFields
from protocols.imap.search_eval import (
    Candidate,
    Context,
    Predicate,
    compile_key,
    structure_terms,
    uses_envelope,
    uses_view,
)
from protocols.imap.search_keys import SUPPORTED_CHARSETS, uses_modseq
from protocols.imap.sequence import format_set
from stalwart_py.store import MessageInfo

if TYPE_CHECKING:
    from protocols.imap.session import Session
    from protocols.imap.view import MailboxView

STRUCTURE_BATCH = 1000
BODY_BATCH = 100
BODY_OCTETS = 16 * 1024 * 1024  # of bodies read at once (a single larger message alone)
SEARCH = ("search",)
SPANS = ("spans",)


async def search(session: Session, command: Command) -> Ok:
    args: Search = command.args
    view = session.require_view()
    if args.charset is not None and args.charset not in SUPPORTED_CHARSETS:
        # RFC 9051 6.4.4: "a tagged NO response (not a BAD)"
        raise No(f"unsupported charset {args.charset}", "BADCHARSET (UTF-8 US-ASCII)")
    with_modseq = uses_modseq(args.criteria)
    if with_modseq:
        session.enable_condstore()
    context = Context(
        count=view.exists,
        largest_uid=view.uids[-1] if view.uids else 0,
        saved=frozenset(view.saved or ()),
    )
    found = await find(session, args, context)
    found.sort()
    numbers = found if command.uid else [view.seq_of(uid) for uid in found]
    returns = args.returns
    if returns is not None and "SAVE" in returns:
        _save(session, returns, found)
    if returns is None and not session.utf8:
        line = b"* SEARCH" + b"".join(b" %d" % n for n in numbers)
        if with_modseq and numbers:
            line += b" (MODSEQ %d)" % _highest_modseq(view, found)
        session.write(line + b"\r\n")
        return Ok()
    options = set(returns or ())
    if "UPDATE" in options:  # RFC 5267: keep it up to date
        from protocols.imap import contexts

        contexts.register(session, command, args.criteria, found)
    if not options - {"CONTEXT", "UPDATE"} and args.partial is None:
        options.add("ALL")
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
    if args.partial is not None:
        parts.append(partial_response(numbers, args.partial))
    if with_modseq and numbers:
        parts.append(b"MODSEQ %d" % _highest_modseq(view, _reported(found, options)))
    session.write(b" ".join(parts) + b"\r\n")
    return Ok()


def _reported(found: list[int], options: set[str]) -> list[int]:
    """The messages an ESEARCH reply's MODSEQ is about (RFC 7162 section 3.1.5): with ALL or
    COUNT every match; with only MIN and/or MAX, just the message(s) they return, so that
    ``RETURN (MIN)`` tells the mod-sequence of the lowest match, not of all matches."""
    if options & {"ALL", "COUNT"} or not found:
        return found
    reported = []
    if "MIN" in options:
        reported.append(found[0])
    if "MAX" in options:
        reported.append(found[-1])
    return reported


def _highest_modseq(view: MailboxView, uids: list[int]) -> int:
    return max((view.messages[uid].modseq for uid in uids), default=0)


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
    """The UIDs of the view's messages that match: decided by the view where it can be,
    then by the ENVELOPE values (cached, or read from the store through its pre-filter),
    then by the bodies. One probe object carries each message through the predicate; a
    message gets its own only when it goes on to the bodies."""
    view = session.require_view()
    criteria = args.criteria
    search = _Search(session, compile_key(criteria, context))
    # When no key is about flags, sizes, dates or numbers, the view decides nothing.
    undecided = search.decide(view.uids) if uses_view(criteria) else list(view.uids)
    if undecided and uses_envelope(criteria):
        undecided = await search.by_envelope(undecided, structure_terms(criteria))
    for batch in view.batches(undecided, BODY_BATCH, BODY_OCTETS):
        await search.by_body(batch)
    return search.found


class _Search:
    def __init__(self, session: Session, test: Predicate) -> None:
        self.session = session
        self.view = session.require_view()
        self.cache = caches(session.store).messages
        self.test = test
        self.found: list[int] = []
        self.fields: dict[int, SearchFields] = {}  # of the messages still undecided
        self.probe = Candidate(MessageInfo(0, 0, frozenset(), 0.0, 0, 0), 0)

    def decide(self, uids: list[int], fields: list[SearchFields | None] | None = None) -> list[int]:
        """Run the predicate on ``uids`` (with their ENVELOPE values when given); the
        matches go to ``found``, the undecided are returned."""
        messages, seq_of, probe, test = self.view.messages, self.view.seq_of, self.probe, self.test
        found, undecided = self.found, []
        whole_view = uids is self.view.uids  # then a UID's sequence number is its position
        for index, uid in enumerate(uids):
            probe.info = messages[uid]
            probe.seq = index + 1 if whole_view else seq_of(uid)
            probe.fields = fields[index] if fields is not None else None
            result = test(probe)
            if result:
                found.append(uid)
            elif result is None:
                undecided.append(uid)
                if probe.fields is not None:
                    self.fields[uid] = probe.fields
        return undecided

    async def by_envelope(self, uids: list[int], terms: frozenset[str] | None) -> list[int]:
        messages = self.view.messages
        known = self.cache.search_fields([messages[uid].blob_id for uid in uids])
        cached = [uid for uid, fields in zip(uids, known, strict=True) if fields is not None]
        undecided = self.decide(cached, [fields for fields in known if fields is not None])
        # Messages that cannot match unless their structure holds a term stay in the store.
        unknown = [uid for uid, fields in zip(uids, known, strict=True) if fields is None]
        store, mailbox_id = self.session.store, self.view.mailbox_id
        for start in range(0, len(unknown), STRUCTURE_BATCH):
            batch = unknown[start : start + STRUCTURE_BATCH]
            if terms is None:
                structures = await store.structures(mailbox_id, batch)
            else:
                structures = await store.structures_matching(mailbox_id, batch, sorted(terms))
            filled = [
                self.cache.fill(messages[uid].blob_id, stored.structure, SEARCH).search
                for uid, stored in structures.items()
            ]
            undecided += self.decide(list(structures), filled)
        return undecided

    async def by_body(self, uids: list[int]) -> None:
        """Decide a batch with the message bodies (and where their text is)."""
        view, cache, store = self.view, self.cache, self.session.store
        infos = [view.messages[uid] for uid in uids]
        bodies = await store.read_blobs([info.blob_id for info in infos])
        entries = {info.uid: cache.lookup(info.blob_id, SPANS) for info in infos}
        unknown = [uid for uid, entry in entries.items() if entry is None]
        structures = await store.structures(view.mailbox_id, unknown) if unknown else {}
        for info in infos:
            entry = entries[info.uid]
            if entry is None:
                stored = structures.get(info.uid)
                if stored is None:
                    continue  # expunged meanwhile
                entry = cache.fill(info.blob_id, stored.structure, SPANS)
            candidate = Candidate(info, view.seq_of(info.uid), self.fields.get(info.uid))
            candidate.data = bodies.get(info.blob_id)
            if candidate.data is None:
                continue
            candidate.spans = entry.spans
            if self.test(candidate):
                self.found.append(info.uid)
