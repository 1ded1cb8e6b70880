"""Sequence sets (RFC 9051 section 9, ``sequence-set``) and their compact output form.

``1,3:5,10:*`` names messages by sequence number, or by UID in UID commands. ``*`` is the
largest number in use (the last message's sequence number or UID). A range may be written
either way round, and ``n:*`` with ``n`` above the largest number still includes the last
message (RFC 9051 section 9, "seq-range"). ``$`` is the result saved by ``SEARCH RETURN
(SAVE)`` (RFC 5182, part of IMAP4rev2).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from protocols.imap.lexer import ParseError, Reader

STAR = 0  # stands for "*" in a parsed range (0 is never a valid number)


@dataclass(frozen=True, slots=True)
class SequenceSet:
    ranges: tuple[tuple[int, int], ...] = ()
    saved: bool = False  # "$": the saved search result

    def resolve(self, largest: int) -> list[tuple[int, int]]:
        """The ranges with ``*`` replaced by ``largest``, each as (low, high)."""
        out = []
        for first, last in self.ranges:
            first = largest if first == STAR else first
            last = largest if last == STAR else last
            out.append((first, last) if first <= last else (last, first))
        return out

    def largest(self, count: int) -> int:
        """The largest number the set names in a mailbox of ``count`` messages ("*" is
        ``count``, and names 1 in an empty one, which has no message 1)."""
        return max(high for _, high in self.resolve(count or 1)) if self.ranges else 0

    def positions(self, count: int) -> list[int]:
        """Sequence numbers (1-based) in a mailbox of ``count`` messages, ascending, each
        once. Numbers above ``count`` name nothing and are left out."""
        chosen: set[int] = set()
        for low, high in self.resolve(count):
            if low > count or high < 1:
                continue
            chosen.update(range(max(low, 1), min(high, count) + 1))
        return sorted(chosen)

    def select_uids(self, uids: Sequence[int]) -> list[int]:
        """The UIDs of ``uids`` (ascending) that the set names, ascending, each once."""
        if not uids:
            return []
        largest = uids[-1]
        picked: list[int] = []
        for low, high in sorted(self.resolve(largest)):
            start = bisect.bisect_left(uids, low)
            stop = bisect.bisect_right(uids, high)
            if picked and start < stop and uids[start] <= picked[-1]:
                start = bisect.bisect_right(uids, picked[-1])
            picked.extend(uids[start:stop])
        return picked

    def contains(self, number: int, largest: int) -> bool:
        return any(low <= number <= high for low, high in self.resolve(largest))


def parse_sequence_set(reader: Reader) -> SequenceSet:
    if reader.skip(b"$"):
        return SequenceSet(saved=True)
    ranges = []
    while True:
        first = _seq_number(reader)
        last = _seq_number(reader) if reader.skip(b":") else first
        ranges.append((first, last))
        if not reader.skip(b","):
            return SequenceSet(tuple(ranges))


def _seq_number(reader: Reader) -> int:
    if reader.skip(b"*"):
        return STAR
    try:
        return reader.nz_number()
    except ParseError:
        raise ParseError("invalid sequence set") from None


def format_set(numbers: Iterable[int]) -> str:
    """Ascending numbers as a compact set: ``1:3,5,7:8`` (empty input gives "")."""
    out: list[str] = []
    start = previous = None
    for number in numbers:
        if previous is not None and number == previous + 1:
            previous = number
            continue
        if start is not None:
            out.append(str(start) if start == previous else f"{start}:{previous}")
        start = previous = number
    if start is not None:
        out.append(str(start) if start == previous else f"{start}:{previous}")
    return ",".join(out)
