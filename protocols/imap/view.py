"""A session's view of its selected mailbox: sequence numbers, and telling the client about
changes at the moments the protocol allows. Sans-IO: it takes store records and returns the
untagged responses to send.

Sequence numbers (RFC 9051 section 2.3.1.2) are positions in the view, which is the
mailbox as this session last told its client about it, not as it is in the store. The view
changes only when the client is told: a new message becomes ``* n EXISTS``, a flag change
``* n FETCH (FLAGS ...)``, an expunge ``* n EXPUNGE`` (or, once QRESYNC is enabled,
``* VANISHED uids``, RFC 7162 section 3.2.10), so both sides always number alike.

An expunge must not be announced while a FETCH, STORE or SEARCH is in progress, nor when
no command is (RFC 9051 section 7.5.1; IDLE counts as a command in progress): the client
could be using sequence numbers that the EXPUNGE would shift. Those commands call
``apply(..., allow_expunge=False)``: new messages and flag changes are reported, expunged
messages stay in the view (a FETCH of one returns nothing), and are announced at the next
moment that allows it. UID commands do not have the problem and allow it.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

from protocols.imap import response
from protocols.imap.replies import Bad
from protocols.imap.sequence import SequenceSet, format_set
from stalwart_py.store import MailboxChanges, MessageInfo

SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
RECENT = frozenset(("\\Recent",))


@dataclass
class Options:
    """What the client enabled that changes how updates are written."""

    condstore: bool = False  # MODSEQ in every FETCH with flags (RFC 7162 section 3.1.5)
    qresync: bool = False  # VANISHED instead of EXPUNGE (RFC 7162 section 3.2.10)


@dataclass
class MailboxView:
    mailbox_id: int
    name: str
    uidvalidity: int
    read_only: bool
    modseq: int  # every change up to this MODSEQ is reflected in the view
    uidnext: int
    uids: list[int] = field(default_factory=list)  # ascending: uids[seq - 1]
    messages: dict[int, MessageInfo] = field(default_factory=dict)
    deferred: set[int] = field(default_factory=set)  # expunged, not yet announced
    keywords: set[str] = field(default_factory=set)
    saved: list[int] | None = None  # SEARCH RETURN (SAVE): UIDs (RFC 5182)
    recent: set[int] = field(default_factory=set)  # \Recent to this session (recent.py)
    # ``messages`` and ``uids`` are a snapshot's (cache.py), shared by every session that
    # selected the mailbox in the same state: copied before this view first changes them.
    # (Ten thousand sessions in IDLE on mailboxes of a hundred messages hold one copy of
    # each mailbox, not ten thousand: some 5 KiB a session.)
    shared: bool = False

    @classmethod
    def create(
        cls,
        mailbox_id: int,
        name: str,
        uidvalidity: int,
        read_only: bool,
        modseq: int,
        uidnext: int,
        messages: Iterable[MessageInfo],
        *,
        index: tuple[dict[int, MessageInfo], list[int]] | None = None,
    ) -> MailboxView:
        """``index``: ``messages`` by UID and the UIDs ascending, already made (and shared:
        never changed in place, see ``shared``)."""
        view = cls(mailbox_id, name, uidvalidity, read_only, modseq, uidnext)
        if index is not None:
            view.messages, view.uids = index
            view.shared = True
        else:
            view.messages = {info.uid: info for info in messages}
            view.uids = list(view.messages)
        for flags in {info.flags for info in view.messages.values()}:  # few distinct sets
            view._note_keywords(flags)
        if view.uids and view.uids[-1] >= view.uidnext:
            view.uidnext = view.uids[-1] + 1
        return view

    # -- numbering ------------------------------------------------------------------------

    @property
    def exists(self) -> int:
        return len(self.uids)

    def seq_of(self, uid: int) -> int:
        """The sequence number of a UID in the view (0 if it is not there)."""
        index = bisect.bisect_left(self.uids, uid)
        return index + 1 if index < len(self.uids) and self.uids[index] == uid else 0

    def seq_numbers(self, uids: list[int]) -> list[int]:
        """The sequence numbers of many UIDs in the view, in their order (0 for one that is
        not there): one pass over the view, not a search per UID, for SORT and THREAD
        answers that number the whole mailbox."""
        if len(uids) < 64:
            return [self.seq_of(uid) for uid in uids]
        position = {uid: seq for seq, uid in enumerate(self.uids, 1)}
        return [position.get(uid, 0) for uid in uids]

    def select(self, numbers: SequenceSet, uid: bool) -> list[int]:
        """The UIDs a sequence set names, ascending: by UID or by sequence number. ``$`` is
        the saved search result (of the messages still in the view)."""
        if numbers.saved:
            return [u for u in self.saved or () if u in self.messages]
        if uid:
            return numbers.select_uids(self.uids)
        uids = self.uids
        if numbers.ranges and numbers.largest(len(uids)) > len(uids):
            # A sequence number is between 1 and the EXISTS count the client was told, so
            # anything above it (or "*" in an empty mailbox) is the client's error: BAD, as
            # RFC 9051 section 9 asks (UIDs differ: one above the largest merely names nothing).
            raise Bad(f"Message sequence number out of range (there are {len(uids)} messages)")
        return [uids[position - 1] for position in numbers.positions(len(uids))]

    def batches(self, uids: list[int], count: int, octets: int) -> Iterator[list[int]]:
        """``uids`` in runs of at most ``count`` messages and, but for a single message
        larger than that, ``octets`` of message data: what one store read may bring into
        memory."""
        batch: list[int] = []
        size = 0
        for uid in uids:
            message_size = self.messages[uid].size
            if batch and (len(batch) >= count or size + message_size > octets):
                yield batch
                batch, size = [], 0
            batch.append(uid)
            size += message_size
        if batch:
            yield batch

    def flags_list(self) -> bytes:
        return response.flags([*SYSTEM_FLAGS, *self.keywords])

    def first_unseen(self) -> int:
        for index, uid in enumerate(self.uids):
            if "\\Seen" not in self.messages[uid].flags:
                return index + 1
        return 0

    # -- \Recent (protocols/imap/recent.py) -------------------------------------------------

    def mark_recent(self, uids: Iterable[int]) -> None:
        """These messages are recent to this session: their flags carry \\Recent from now
        on, whatever the store says of them."""
        for uid in uids:
            info = self.messages.get(uid)
            if info is not None:
                self._own()
                self.recent.add(uid)
                self.messages[uid] = replace(info, flags=info.flags | RECENT)

    def _own(self) -> None:
        """Copy the shared ``messages`` and ``uids`` before the first change to them."""
        if self.shared:
            self.messages = dict(self.messages)
            self.uids = list(self.uids)
            self.shared = False

    def recent_count(self) -> int:
        return sum(1 for uid in self.recent if uid in self.messages)

    def _marked(self, info: MessageInfo) -> MessageInfo:
        if info.uid in self.recent:
            return replace(info, flags=info.flags | RECENT)
        return info

    # -- changes ----------------------------------------------------------------------------

    def _note_keywords(self, flags: Iterable[str]) -> bool:
        """Remember keywords in use; True when one is new (FLAGS must be sent again)."""
        new = False
        for name in flags:
            if not name.startswith("\\") and name not in self.keywords:
                self.keywords.add(name)
                new = True
        return new

    def fetch_flags(self, info: MessageInfo, options: Options, uid: bool = True) -> bytes:
        """``* n FETCH (UID u FLAGS (...) MODSEQ (m))`` for a message of the view."""
        items = []
        if uid or options.qresync:
            items.append(b"UID %d" % info.uid)
        items.append(b"FLAGS " + response.flags(info.flags))
        if options.condstore:
            items.append(b"MODSEQ (%d)" % info.modseq)
        return b"* %d FETCH (%s)\r\n" % (self.seq_of(info.uid), b" ".join(items))

    def update(self, infos: Iterable[MessageInfo]) -> bytes:
        """Take new state of messages already in the view (after our own STORE); returns
        a FLAGS response when a new keyword appeared."""
        new_keyword = False
        for info in infos:
            if info.uid in self.messages:
                info = self._marked(info)
                self._own()
                self.messages[info.uid] = info
                new_keyword |= self._note_keywords(info.flags)
        return response.untagged(b"FLAGS " + self.flags_list()) if new_keyword else b""

    def apply(self, changes: MailboxChanges, options: Options, *, allow_expunge: bool) -> bytes:
        """Bring the view up to ``changes`` (read with ``changes_since(self.modseq)``) and
        return what to tell the client, in the order that keeps numbering consistent:
        expunges, then flag changes, then EXISTS for new messages."""
        out: list[bytes] = []
        gone = {uid for uid in changes.vanished if uid in self.messages}
        self.deferred |= gone
        if allow_expunge and self.deferred:
            out.append(self.remove(self.deferred, options))
        appended: list[MessageInfo] = []
        changed_flags: list[MessageInfo] = []
        last = self.uids[-1] if self.uids else 0
        for info in changes.changed:
            current = self.messages.get(info.uid)
            if current is None:
                if info.uid > last:
                    appended.append(info)
                continue
            if info.uid in self.deferred or info.modseq <= current.modseq:
                continue
            info = self._marked(info)
            self._own()
            self.messages[info.uid] = info
            if info.flags != current.flags or options.condstore:
                changed_flags.append(info)
        new_keyword = False
        for info in changed_flags:
            new_keyword |= self._note_keywords(info.flags)
        for info in appended:
            new_keyword |= self._note_keywords(info.flags)
        if new_keyword:
            out.append(response.untagged(b"FLAGS " + self.flags_list()))
        for info in changed_flags:
            out.append(self.fetch_flags(info, options))
        if appended:
            self._own()
            for info in appended:
                self.uids.append(info.uid)
                self.messages[info.uid] = info
            out.append(b"* %d EXISTS\r\n" % len(self.uids))
        self.modseq = max(self.modseq, changes.highestmodseq)
        self.uidnext = max(self.uidnext, changes.uidnext)
        return b"".join(out)

    def remove(self, uids: Iterable[int], options: Options) -> bytes:
        """Take messages out of the view and say so: EXPUNGE for each, highest sequence
        number first (so that no number shifts before it is used), or one VANISHED."""
        present = sorted(uid for uid in set(uids) if uid in self.messages)
        self.deferred.difference_update(uids)
        if not present:
            return b""
        if options.qresync:
            out = response.untagged("VANISHED " + format_set(present))
        else:
            positions = [bisect.bisect_left(self.uids, uid) + 1 for uid in present]
            out = b"".join(b"* %d EXPUNGE\r\n" % position for position in reversed(positions))
        gone = set(present)
        self._own()
        self.uids = [uid for uid in self.uids if uid not in gone]
        for uid in present:
            del self.messages[uid]
        if self.saved is not None:
            self.saved = [uid for uid in self.saved if uid not in gone]
        return out
