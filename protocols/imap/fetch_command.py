"""FETCH and UID FETCH (RFC 9051 section 6.4.5) with CONDSTORE's CHANGEDSINCE and
QRESYNC's VANISHED modifiers (RFC 7162 sections 3.1.4 and 3.2.6).

Messages are handled in batches, and each batch reads only what its items need: FLAGS,
UID, INTERNALDATE, RFC822.SIZE and MODSEQ come from the session's view; ENVELOPE, BODY,
BODYSTRUCTURE and sections from the cached MIME structure (``store.structures``); section
octets from the stored bodies (``store.read_blobs``). Responses are flushed as they fill.

A section fetched without PEEK sets ``\\Seen`` (in a read-write mailbox): the flag is stored
before the data is sent, and that message's response then carries its new FLAGS (and
MODSEQ with CONDSTORE). A message expunged by another session while the client still has
it (the expunge is not announced during FETCH, RFC 9051 section 7.5.1) gets no response,
and the tagged OK says EXPUNGEISSUED.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from protocols.imap import response
from protocols.imap.cache import CachedMessage, caches
from protocols.imap.commands import Command, Fetch
from protocols.imap.fetch_items import BodySection, FetchItem
from protocols.imap.replies import Bad, No, Ok
from protocols.imap.search_keys import MONTHS
from protocols.imap.sections import (
    UnknownEncoding,
    apply_partial,
    binary_bytes,
    filter_header,
    section_bytes,
)
from protocols.imap.sequence import format_set
from protocols.imap.utf8_downgrade import downgrade_envelope
from stalwart_py import mime
from stalwart_py.store import MessageInfo

if TYPE_CHECKING:
    from protocols.imap.session import Session

STRUCTURE_BATCH = 1000  # messages per store read when no body is needed
BODY_BATCH = 50  # ... and when bodies are read
BODY_OCTETS = 16 * 1024 * 1024  # of bodies read at once (a single larger message alone)
CACHED_ITEMS = {"ENVELOPE": "envelope", "BODYSTRUCTURE": "bodystructure", "BODY": "body"}
SEEN = frozenset(("\\Seen",))
HEADER_SECTIONS = ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT")


def internaldate(timestamp: float) -> bytes:
    """``"17-Jul-1996 02:44:25 +0000"`` (RFC 9051 date-time), in UTC."""
    t = time.gmtime(timestamp)
    return b'"%02d-%s-%04d %02d:%02d:%02d +0000"' % (
        t.tm_mday,
        MONTHS[t.tm_mon - 1].capitalize().encode(),
        t.tm_year,
        t.tm_hour,
        t.tm_min,
        t.tm_sec,
    )


def _needs_structure(item: FetchItem) -> bool:
    if isinstance(item, BodySection):
        return bool(item.section.part or item.section.text)
    return item in CACHED_ITEMS


class _Plan:
    """What a FETCH asks for, decided once for all its messages."""

    def __init__(self, items: list[FetchItem], session: Session, read_only: bool) -> None:
        self.items = items
        self.sections = [item for item in items if isinstance(item, BodySection)]
        self.structure = any(_needs_structure(item) for item in items)
        # sections need the parsed structure; ENVELOPE, BODY, BODYSTRUCTURE come cached
        self.parse = any(_needs_structure(item) for item in self.sections)
        self.cached = [CACHED_ITEMS[item] for item in items if item in CACHED_ITEMS]
        self.cache = caches(session.store).messages
        # RFC 6855 section 3: 8-bit header values reach only a client that accepts them.
        self.downgrade = not (session.utf8 or session.utf8_accept)
        self.data = bool(self.sections)
        # Only the message's header block is needed (what Thunderbird asks of every message
        # in a first sync): read that prefix, located by the cached header length.
        self.header_only = bool(self.sections) and all(
            s.kind == "BODY" and not s.section.part and s.section.text in HEADER_SECTIONS
            for s in self.sections
        )
        if self.header_only:
            self.parse = False
            self.cached.append("header_end")
        self.sets_seen = not read_only and any(s.sets_seen for s in self.sections)
        self.condstore = session.options.condstore
        self.bodies = self.data and not self.header_only
        self.names = {s: s.response_name().encode("ascii") for s in self.sections}


async def fetch(session: Session, command: Command) -> Ok:
    args: Fetch = command.args
    view = session.require_view()
    options = session.options
    modifiers = args.modifiers
    items = list(args.items)
    if modifiers.vanished and not options.qresync:
        raise Bad("VANISHED needs QRESYNC to be enabled")
    if "MODSEQ" in items or modifiers.changed_since is not None:
        session.enable_condstore()
    if command.uid and "UID" not in items:
        items.insert(0, "UID")  # RFC 9051 section 6.4.9: UID FETCH always returns the UID
    if modifiers.changed_since is not None and "MODSEQ" not in items:
        items.append("MODSEQ")
    uids = view.select(args.sequence, command.uid)
    if modifiers.vanished:
        assert modifiers.changed_since is not None
        changes = await session.store.changes_since(view.mailbox_id, modifiers.changed_since)
        largest = max(view.uidnext - 1, 1)
        vanished = [
            uid
            for uid in changes.vanished
            if uid not in view.messages and args.sequence.contains(uid, largest)
        ]
        if vanished:
            session.write(response.untagged("VANISHED (EARLIER) " + format_set(vanished)))
    if modifiers.changed_since is not None:
        since = modifiers.changed_since
        uids = [uid for uid in uids if view.messages[uid].modseq > since]
    if modifiers.partial is not None:  # RFC 9394: only those positions of the set
        from protocols.imap.esearch import partial_slice

        uids = partial_slice(uids, modifiers.partial)
    plan = _Plan(items, session, view.read_only)
    missing = False
    if plan.bodies:
        batches = view.batches(uids, BODY_BATCH, BODY_OCTETS)
    else:
        batches = (uids[i : i + STRUCTURE_BATCH] for i in range(0, len(uids), STRUCTURE_BATCH))
    for batch in batches:
        missing |= await _fetch_batch(session, plan, batch)
        await session.flush_if_full()
    if missing:
        return Ok("Some messages were expunged meanwhile", "EXPUNGEISSUED")
    return Ok()


async def _fetch_batch(session: Session, plan: _Plan, batch: list[int]) -> bool:
    """Write the responses for a batch of UIDs; True when some message was gone."""
    view = session.require_view()
    store = session.store
    flagged: set[int] = set()
    if plan.sets_seen:
        unseen = [uid for uid in batch if "\\Seen" not in view.messages[uid].flags]
        if unseen:
            result = await store.update_flags(view.mailbox_id, unseen, "add", SEEN)
            session.write(view.update(result.changed))
            flagged = {info.uid for info in result.changed}
    # The structure is read for the messages whose derived values are not cached, and for
    # all when a section needs it parsed.
    cached_entries: dict[int, CachedMessage | None] = {}
    if plan.structure and not plan.parse:
        for uid in batch:
            cached_entries[uid] = plan.cache.lookup(view.messages[uid].blob_id, plan.cached)
    unknown = [uid for uid in batch if cached_entries.get(uid) is None]
    structures = {}
    if plan.structure and unknown:
        structures = await store.structures(view.mailbox_id, unknown)
    present: list[tuple[MessageInfo, CachedMessage | None, str | None]] = []
    missing = False
    for uid in batch:
        info = view.messages[uid]
        cached = cached_entries.get(uid)
        if not plan.structure or cached is not None:
            present.append((info, cached, None))
            continue
        stored = structures.get(uid)
        if stored is None:
            missing = True
            continue
        if plan.cached:
            cached = plan.cache.fill(info.blob_id, stored.structure, plan.cached)
        present.append((info, cached, stored.structure))
    bodies: dict[int, bytes] = {}
    if plan.header_only:
        lengths = {info.blob_id: cached.header_end for info, cached, _ in present if cached}
        bodies = await store.read_blob_prefixes(lengths)  # type: ignore[arg-type]
    elif plan.data:
        bodies = await store.read_blobs([info.blob_id for info, _, _ in present])
    out = []
    for info, cached, structure in present:
        data = bodies.get(info.blob_id) if plan.data else None
        if plan.data and data is None:
            missing = True
            continue
        parsed = mime.from_json(structure) if plan.parse and structure else None
        seq = view.seq_of(info.uid)
        out.append(_message_response(plan, seq, info, cached, parsed, data, flagged))
    session.write(b"".join(out))
    return missing


def _message_response(
    plan: _Plan,
    seq: int,
    info: MessageInfo,
    cached: CachedMessage | None,
    parsed: mime.ParsedMessage | None,
    data: bytes | None,
    flagged: set[int],
) -> bytes:
    parts = []
    for item in plan.items:
        if item == "UID":
            parts.append(b"UID %d" % info.uid)
        elif item == "FLAGS":
            parts.append(b"FLAGS " + response.flags(info.flags))
        elif item == "INTERNALDATE":
            parts.append(b"INTERNALDATE " + internaldate(info.internaldate))
        elif item == "RFC822.SIZE":
            parts.append(b"RFC822.SIZE %d" % info.size)
        elif item == "MODSEQ":
            parts.append(b"MODSEQ (%d)" % info.modseq)
        elif item in CACHED_ITEMS:
            assert cached is not None
            value = getattr(cached, CACHED_ITEMS[item])
            if item == "ENVELOPE" and plan.downgrade and not value.isascii():
                value = downgrade_envelope(value)
            parts.append(item.encode() + b" " + value)
        elif isinstance(item, BodySection):
            assert data is not None
            parts.append(plan.names[item] + b" " + _section(item, data, parsed, plan.header_only))
    if info.uid in flagged:
        if "FLAGS" not in plan.items:
            parts.append(b"FLAGS " + response.flags(info.flags))
        if plan.condstore and "MODSEQ" not in plan.items:
            parts.append(b"MODSEQ (%d)" % info.modseq)
    return b"* %d FETCH (%s)\r\n" % (seq, b" ".join(parts))


def _section(
    item: BodySection, data: bytes, parsed: mime.ParsedMessage | None, header_only: bool
) -> bytes:
    section = item.section
    if header_only:  # ``data`` is the header block
        content = data
        if section.text != "HEADER":
            content = filter_header(data, section.fields, exclude=section.text.endswith(".NOT"))
        return response.literal(apply_partial(content, item.partial))
    if item.kind == "BODY":
        # BODY[] and RFC822 are the whole message and need no structure
        content = data if parsed is None else section_bytes(data, parsed, section)
        return response.literal(apply_partial(content, item.partial))
    try:
        # BINARY[] is the whole message as stored; a part needs the structure.
        decoded = data if parsed is None else binary_bytes(data, parsed, section)
    except UnknownEncoding as error:
        raise No(f"Unknown Content-Transfer-Encoding {error}", "UNKNOWN-CTE") from None
    if item.kind == "BINARY.SIZE":
        return b"%d" % len(decoded)
    return response.binary_literal(apply_partial(decoded, item.partial))
