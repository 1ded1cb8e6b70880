"""SEARCH criteria (RFC 9051 sections 6.4.4 and 9, ``search-key``) as a small tree.

Every RFC 9051 key is here, the IMAP4rev1 keys IMAP4rev2 dropped (NEW, OLD, RECENT: about
the \\Recent flag, which only IMAP4rev1 sessions see, ``recent.py``) and CONDSTORE's
``MODSEQ`` (RFC 7162 section 3.1.5). Keys in a row are ANDed;
``OR a b``, ``NOT a`` and ``(a b ...)`` nest, at most ``MAX_DEPTH`` deep.

Strings are UTF-8 (``CHARSET UTF-8`` or ``US-ASCII``; any other charset is refused with
``BADCHARSET``, which RFC 9051 allows: only UTF-8 is required).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from protocols.imap.lexer import MAX_NUMBER64, ParseError, Reader
from protocols.imap.sequence import SequenceSet, parse_sequence_set

MAX_DEPTH = 64
SUPPORTED_CHARSETS = ("UTF-8", "US-ASCII")
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")

FLAG_KEYS = {
    "ANSWERED": ("\\Answered", True),
    "DELETED": ("\\Deleted", True),
    "DRAFT": ("\\Draft", True),
    "FLAGGED": ("\\Flagged", True),
    "SEEN": ("\\Seen", True),
    "UNANSWERED": ("\\Answered", False),
    "UNDELETED": ("\\Deleted", False),
    "UNDRAFT": ("\\Draft", False),
    "UNFLAGGED": ("\\Flagged", False),
    "UNSEEN": ("\\Seen", False),
}
ADDRESS_KEYS = ("BCC", "CC", "FROM", "TO")
DATE_KEYS = {
    "BEFORE": (False, "before"),
    "ON": (False, "on"),
    "SINCE": (False, "since"),
    "SENTBEFORE": (True, "before"),
    "SENTON": (True, "on"),
    "SENTSINCE": (True, "since"),
}


@dataclass(frozen=True, slots=True)
class Constant:
    value: bool  # ALL is True


@dataclass(frozen=True, slots=True)
class HasFlag:
    flag: str  # "\\Seen" or a keyword, as written
    present: bool


@dataclass(frozen=True, slots=True)
class HeaderContains:
    field: str  # lower-case field name
    value: str  # "" matches every message that has the field (RFC 9051 HEADER)


@dataclass(frozen=True, slots=True)
class TextContains:
    value: str
    body_only: bool  # BODY: the body; TEXT: the header and the body


@dataclass(frozen=True, slots=True)
class DateCompare:
    sent: bool  # the Date: header (SENT*) rather than the internal date
    op: str  # "before", "on", "since"
    date: datetime.date


@dataclass(frozen=True, slots=True)
class SizeCompare:
    larger: bool
    size: int


@dataclass(frozen=True, slots=True)
class InSet:
    numbers: SequenceSet
    uid: bool


@dataclass(frozen=True, slots=True)
class ModSeqAtLeast:
    modseq: int


@dataclass(frozen=True, slots=True)
class Not:
    key: SearchKey


@dataclass(frozen=True, slots=True)
class Or:
    left: SearchKey
    right: SearchKey


@dataclass(frozen=True, slots=True)
class And:
    keys: tuple[SearchKey, ...]


SearchKey = (
    Constant
    | HasFlag
    | HeaderContains
    | TextContains
    | DateCompare
    | SizeCompare
    | InSet
    | ModSeqAtLeast
    | Not
    | Or
    | And
)


def parse_date(reader: Reader) -> datetime.date:
    """``date``: ``1-Feb-2024`` or ``"01-Feb-2024"``."""
    quoted = reader.skip(b'"')
    try:
        day = reader.number()
        reader.expect(b"-")
        month = MONTHS.index(reader.data[reader.pos : reader.pos + 3].upper().decode("ascii"))
        reader.pos += 3
        reader.expect(b"-")
        year = reader.number()
        value = datetime.date(year, month + 1, day)
    except (ValueError, UnicodeDecodeError):
        raise ParseError("invalid date (expected dd-Mon-yyyy)") from None
    if quoted:
        reader.expect(b'"')
    return value


class SearchParser:
    """Parses ``search-key *(SP search-key)`` with strings decoded as UTF-8."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    def keys(self) -> SearchKey:
        """Every key up to the end of the command, ANDed."""
        keys = [self.key(0)]
        while not self.reader.at_end():
            self.reader.space()
            keys.append(self.key(0))
        return keys[0] if len(keys) == 1 else And(tuple(keys))

    def key(self, depth: int) -> SearchKey:
        if depth > MAX_DEPTH:
            raise ParseError("search criteria nested too deeply")
        reader = self.reader
        following = reader.peek()
        if following == b"(":
            return self._group(depth)
        if following == b"$" or following == b"*" or following.isdigit():
            return InSet(parse_sequence_set(reader), uid=False)
        name = reader.keyword()
        if name == "ALL":
            return Constant(True)
        if name in FLAG_KEYS:
            flag, present = FLAG_KEYS[name]
            return HasFlag(flag, present)
        if name in ("KEYWORD", "UNKEYWORD"):
            reader.space()
            return HasFlag(reader.atom(), name == "KEYWORD")
        if name in ADDRESS_KEYS or name == "SUBJECT":
            reader.space()
            return HeaderContains(name.lower(), self._string())
        if name == "HEADER":
            reader.space()
            field = self._string().lower()
            reader.space()
            return HeaderContains(field, self._string())
        if name in ("BODY", "TEXT"):
            reader.space()
            return TextContains(self._string(), name == "BODY")
        if name in DATE_KEYS:
            reader.space()
            sent, op = DATE_KEYS[name]
            return DateCompare(sent, op, parse_date(reader))
        if name in ("LARGER", "SMALLER"):
            reader.space()
            return SizeCompare(name == "LARGER", reader.number(MAX_NUMBER64))
        if name == "UID":
            reader.space()
            return InSet(parse_sequence_set(reader), uid=True)
        if name == "NOT":
            reader.space()
            return Not(self.key(depth + 1))
        if name == "OR":
            reader.space()
            left = self.key(depth + 1)
            reader.space()
            return Or(left, self.key(depth + 1))
        if name == "MODSEQ":
            return self._modseq()
        # IMAP4rev1 keys about \Recent (RFC 3501 section 6.4.4), which only a rev1 session's
        # view carries (protocols/imap/recent.py): for a rev2 one RECENT matches nothing.
        if name == "RECENT":
            return HasFlag("\\Recent", True)
        if name == "NEW":
            return And((HasFlag("\\Recent", True), HasFlag("\\Seen", False)))
        if name == "OLD":
            return HasFlag("\\Recent", False)
        raise ParseError(f"unknown search key {name}")

    def _group(self, depth: int) -> SearchKey:
        reader = self.reader
        reader.expect(b"(")
        keys = [self.key(depth + 1)]
        while not reader.skip(b")"):
            reader.space()
            keys.append(self.key(depth + 1))
        return keys[0] if len(keys) == 1 else And(tuple(keys))

    def _modseq(self) -> SearchKey:
        """``MODSEQ [entry-name entry-type-req] mod-sequence-valzer`` (RFC 7162): the
        per-flag entry is accepted and ignored, as this server keeps one MODSEQ a message."""
        reader = self.reader
        reader.space()
        if reader.peek() == b'"':
            reader.quoted()
            reader.space()
            entry_type = reader.keyword()
            if entry_type not in ("PRIV", "SHARED", "ALL"):
                raise ParseError("invalid MODSEQ entry type")
            reader.space()
        return ModSeqAtLeast(reader.number(MAX_NUMBER64))

    def _string(self) -> str:
        raw = self.reader.astring()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError("search string is not valid UTF-8") from None


def uses_modseq(key: SearchKey) -> bool:
    """Whether the criteria use MODSEQ (the response then carries the highest one)."""
    match key:
        case ModSeqAtLeast():
            return True
        case Not(key=inner):
            return uses_modseq(inner)
        case Or(left=left, right=right):
            return uses_modseq(left) or uses_modseq(right)
        case And(keys=keys):
            return any(uses_modseq(k) for k in keys)
    return False


def uses_saved(key: SearchKey) -> bool:
    """Whether the criteria refer to the saved result ``$``."""
    match key:
        case InSet(numbers=numbers):
            return numbers.saved
        case Not(key=inner):
            return uses_saved(inner)
        case Or(left=left, right=right):
            return uses_saved(left) or uses_saved(right)
        case And(keys=keys):
            return any(uses_saved(k) for k in keys)
    return False
