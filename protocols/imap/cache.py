"""Process-wide caches of what IMAP derives from data that does not change.

``MessageCache``: a stored message's MIME structure never changes, so its ENVELOPE, BODY and
BODYSTRUCTURE responses and the header values SEARCH compares need computing once, not at
every FETCH (a client that opens a 10,000-message mailbox fetches every ENVELOPE). Entries
are keyed by the body's id, which the store never gives to another body, so a FETCH or a
SEARCH whose messages are all cached does not read the store at all. The least recently
used entries go first.

``SnapshotCache``: SELECT needs every message of the mailbox. Several sessions (a phone, a
laptop, a webmail) open the same mailbox, and a mailbox that has not changed since the last
reading has the same HIGHESTMODSEQ and UIDNEXT (every arrival, flag change and expunge
raises HIGHESTMODSEQ, RFC 7162), so the last reading is used again and the sessions share
its (immutable) message records.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from protocols.imap.search_data import SearchFields, TextSpan, search_fields, text_spans
from protocols.imap.structure import body_structure, envelope
from stalwart_py import mime
from stalwart_py.store import Mailbox, MessageInfo, Store

MESSAGE_CAPACITY = 20_000  # messages whose derived responses are kept
SNAPSHOT_CAPACITY = 200_000  # message records kept in mailbox snapshots, all together


class CachedMessage:
    __slots__ = ("body", "bodystructure", "envelope", "header_end", "search", "spans")

    def __init__(self) -> None:
        self.envelope: bytes | None = None
        self.bodystructure: bytes | None = None
        self.body: bytes | None = None
        self.search: SearchFields | None = None
        self.spans: tuple[TextSpan, ...] | None = None
        self.header_end: int | None = None  # the length of the message's header block


class MessageCache:
    def __init__(self, capacity: int = MESSAGE_CAPACITY) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[int, CachedMessage] = OrderedDict()
        self.hits = self.misses = 0

    def lookup(self, blob_id: int, wanted: Sequence[str]) -> CachedMessage | None:
        """The entry of a body if it has every attribute in ``wanted``, else None."""
        entry = self._entries.get(blob_id)
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(blob_id)
        for name in wanted:
            if getattr(entry, name) is None:
                self.misses += 1
                return None
        self.hits += 1
        return entry

    def search_fields(self, blob_ids: list[int]) -> list[SearchFields | None]:
        """The cached SEARCH values of many bodies at once (None where not cached)."""
        entries = self._entries
        out: list[SearchFields | None] = []
        for blob_id in blob_ids:
            entry = entries.get(blob_id)
            out.append(None if entry is None else entry.search)
        self.hits += sum(1 for fields in out if fields is not None)
        return out

    def fill(self, blob_id: int, structure: str, wanted: Sequence[str]) -> CachedMessage:
        """The entry of a body with every attribute in ``wanted`` computed from its stored
        structure (parsed once at most)."""
        entry = self._entries.get(blob_id)
        if entry is None:
            entry = self._entries[blob_id] = CachedMessage()
            if len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        missing = [name for name in wanted if getattr(entry, name) is None]
        if not missing:
            return entry
        parsed = mime.from_json(structure)
        for name in missing:
            if name == "envelope":
                entry.envelope = envelope(parsed.envelope)
            elif name == "bodystructure":
                entry.bodystructure = body_structure(parsed.body, True)
            elif name == "body":
                entry.body = body_structure(parsed.body, False)
            elif name == "header_end":
                entry.header_end = parsed.body.header_end
            elif name == "spans":
                entry.spans = text_spans(parsed)
            else:
                entry.search = search_fields(parsed.envelope)
        return entry


@dataclass(frozen=True, slots=True)
class Snapshot:
    highestmodseq: int
    uidnext: int
    uidvalidity: int
    messages: tuple[MessageInfo, ...]


class SnapshotCache:
    def __init__(self, capacity: int = SNAPSHOT_CAPACITY) -> None:
        self.capacity = capacity
        self._snapshots: OrderedDict[int, Snapshot] = OrderedDict()
        self._size = 0
        # A snapshot's messages by UID and its UIDs, made once for every view that selects
        # it (MailboxView.shared), by mailbox id.
        self._indexes: dict[int, tuple[Snapshot, dict[int, MessageInfo], list[int]]] = {}

    async def messages(
        self, head: Mailbox, read: Callable[[int], Awaitable[list[MessageInfo]]]
    ) -> tuple[MessageInfo, ...]:
        """The messages of a mailbox whose state ``head`` was read just before: the last
        reading when nothing has changed since, else a new one (``read(mailbox_id)``)."""
        snapshot = self._snapshots.get(head.id)
        if (
            snapshot is not None
            and snapshot.highestmodseq == head.highestmodseq
            and snapshot.uidnext == head.uidnext
            and snapshot.uidvalidity == head.uidvalidity
        ):
            self._snapshots.move_to_end(head.id)
            return snapshot.messages
        messages = tuple(await read(head.id))
        self._store(head, messages)
        return messages

    def index(
        self, head: Mailbox, messages: tuple[MessageInfo, ...]
    ) -> tuple[dict[int, MessageInfo], list[int]] | None:
        """``messages`` (what ``messages()`` just returned for ``head``) by UID and their
        UIDs, shared with every view of the same snapshot; None when it is not cached."""
        snapshot = self._snapshots.get(head.id)
        if snapshot is None or snapshot.messages is not messages:
            return None
        known = self._indexes.get(head.id)
        if known is not None and known[0] is snapshot:
            return known[1], known[2]
        by_uid = {info.uid: info for info in messages}
        index = (snapshot, by_uid, list(by_uid))
        self._indexes[head.id] = index
        return index[1], index[2]

    def _store(self, head: Mailbox, messages: tuple[MessageInfo, ...]) -> None:
        old = self._snapshots.pop(head.id, None)
        self._indexes.pop(head.id, None)
        if old is not None:
            self._size -= len(old.messages)
        if len(messages) > self.capacity:
            return
        self._snapshots[head.id] = Snapshot(
            head.highestmodseq, head.uidnext, head.uidvalidity, messages
        )
        self._size += len(messages)
        while self._size > self.capacity:
            evicted_id, evicted = self._snapshots.popitem(last=False)
            self._indexes.pop(evicted_id, None)
            self._size -= len(evicted.messages)


class Caches:
    def __init__(self) -> None:
        self.messages = MessageCache()
        self.snapshots = SnapshotCache()


_BY_STORE: weakref.WeakKeyDictionary[Store, Caches] = weakref.WeakKeyDictionary()


def caches(store: Store) -> Caches:
    """The caches of one store (ids mean nothing across stores)."""
    found = _BY_STORE.get(store)
    if found is None:
        found = _BY_STORE[store] = Caches()
    return found
