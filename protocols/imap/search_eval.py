"""Evaluating SEARCH criteria against one message, in three stages. Sans-IO.

A key is decided with what is at hand and answers True, False or None ("cannot tell yet").
Flags, sizes, dates, UIDs, sequence numbers and MODSEQ are in the session's view; SUBJECT,
FROM, TO, CC, BCC and the SENT* dates need the ENVELOPE's values (``cache.SearchFields``,
from the cached structure); HEADER, BODY and TEXT need the message itself. ``And``,
``Or`` and ``Not`` combine the three values (Kleene logic), so a message is fetched from
the store only when the cheaper data cannot decide it: ``UNSEEN BODY "x"`` reads the
bodies of unseen messages only.

Matching (RFC 9051 section 6.4.4): strings match as case-insensitive substrings, after
RFC 2047 decoding of header values and after undoing the Content-Transfer-Encoding and the
charset of text body parts. BEFORE/ON/SINCE compare the internal date's day in UTC;
SENTBEFORE/SENTON/SENTSINCE the day of the Date header in its own time zone (or of the
internal date when the header is missing or unreadable).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from dataclasses import dataclass

from protocols.imap.search_data import SearchFields, TextSpan
from protocols.imap.search_keys import (
    And,
    Constant,
    DateCompare,
    HasFlag,
    HeaderContains,
    InSet,
    ModSeqAtLeast,
    Not,
    Or,
    SearchKey,
    SizeCompare,
    TextContains,
)
from protocols.imap.sections import UnknownEncoding, decode_body, header_fields
from stalwart_py.mime import decode_header_value
from stalwart_py.mime.charsets import decode_bytes
from stalwart_py.store import MessageInfo

_PLAIN_TERM = re.compile(r"[ !#-\[\]-~]+")  # printable ASCII but " and \\
# Every character outside ASCII whose str.casefold() has an ASCII character in it (checked
# against the whole of Unicode by a unit test).
FOLDS_TO_ASCII = (
    "\u00df\u0130\u0149\u017f\u01f0\u1e96\u1e97\u1e98\u1e99\u1e9a"
    "\u1e9e\u212a\ufb00\ufb01\ufb02\ufb03\ufb04\ufb05\ufb06"
)
ENVELOPE_FIELDS = frozenset(("subject", "from", "to", "cc", "bcc"))
WIDE_CHARSETS = ("utf-16", "utf-32", "ucs-2", "ucs2", "utf16", "utf32")


class Candidate:
    """One message and whatever has been read of it so far."""

    __slots__ = ("data", "fields", "info", "seq", "spans")

    def __init__(self, info: MessageInfo, seq: int, fields: SearchFields | None = None) -> None:
        self.info = info
        self.seq = seq
        self.fields = fields
        self.spans: tuple[TextSpan, ...] | None = None  # text_spans() of the message
        self.data: bytes | None = None


@dataclass(frozen=True)
class Context:
    count: int  # messages in the view (for "*" in sequence sets)
    largest_uid: int
    saved: frozenset[int]  # the saved result ($), as UIDs


Predicate = Callable[[Candidate], "bool | None"]


def fold(text: str) -> str:
    return text.casefold()


def evaluate(key: SearchKey, message: Candidate, context: Context) -> bool | None:
    return compile_key(key, context)(message)


def compile_key(key: SearchKey, context: Context) -> Predicate:
    """The criteria as one function of a candidate, built once per SEARCH: each key's work
    that does not depend on the message (folding the needle, resolving ``*``, the bounds
    of a day) is done here, not once per message."""
    match key:
        case Constant(value=value):
            return lambda message: value
        case HasFlag(flag=flag, present=present):
            # stored system flags are canonical ("\\Seen"), as are the parser's
            return lambda message: (flag in message.info.flags) == present
        case SizeCompare(larger=True, size=size):
            return lambda message: message.info.size > size
        case SizeCompare(larger=False, size=size):
            return lambda message: message.info.size < size
        case InSet(numbers=numbers, uid=uid):
            if numbers.saved:
                saved = context.saved
                return lambda message: message.info.uid in saved
            ranges = numbers.resolve(context.largest_uid if uid else context.count)
            if uid:
                return lambda message: any(lo <= message.info.uid <= hi for lo, hi in ranges)
            return lambda message: any(lo <= message.seq <= hi for lo, hi in ranges)
        case ModSeqAtLeast(modseq=modseq):
            return lambda message: message.info.modseq >= modseq
        case DateCompare(sent=False, op=op, date=date):
            start = datetime.datetime(date.year, date.month, date.day, tzinfo=datetime.UTC)
            low = start.timestamp()
            high = low + 86400
            if op == "before":
                return lambda message: message.info.internaldate < low
            if op == "on":
                return lambda message: low <= message.info.internaldate < high
            return lambda message: message.info.internaldate >= low
        case DateCompare(sent=True, op=op, date=date):

            def sent(message: Candidate) -> bool | None:
                if message.fields is None:
                    return None
                day = message.fields.sent or _internal_day(message.info)
                return _compare(day, op, date)

            return sent
        case HeaderContains(field="subject", value=value):
            needle = fold(value)

            def subject(message: Candidate) -> bool | None:
                fields = message.fields
                if fields is None:
                    return None
                return fields.subject is not None and needle in fields.subject

            return subject
        case HeaderContains(field=field, value=value) if field in ENVELOPE_FIELDS:
            needle = fold(value)

            def address(message: Candidate) -> bool | None:
                if message.fields is None:
                    return None
                texts = message.fields.addresses[field]
                return texts is not None and (not needle or any(needle in t for t in texts))

            return address
        case HeaderContains(field=field, value=value):
            needle = fold(value)

            def header(message: Candidate) -> bool | None:
                if message.data is None or message.spans is None:
                    return None
                return _header_contains(message, field, needle)

            return header
        case TextContains(value=value, body_only=body_only):
            needle = fold(value)

            def text(message: Candidate) -> bool | None:
                if message.data is None or message.spans is None:
                    return None
                return text_contains(message.data, message.spans, needle, not body_only)

            return text
        case Not(key=inner):
            test = compile_key(inner, context)

            def negation(message: Candidate) -> bool | None:
                result = test(message)
                return None if result is None else not result

            return negation
        case Or(left=left, right=right):
            first, second = compile_key(left, context), compile_key(right, context)

            def either(message: Candidate) -> bool | None:
                one = first(message)
                if one is True:
                    return True
                other = second(message)
                if other is True:
                    return True
                return None if one is None or other is None else False

            return either
        case And(keys=keys):
            tests = [compile_key(inner, context) for inner in keys]

            def every(message: Candidate) -> bool | None:
                undecided = False
                for test in tests:
                    result = test(message)
                    if result is False:
                        return False
                    if result is None:
                        undecided = True
                return None if undecided else True

            return every
    raise TypeError(f"unknown search key {key!r}")  # pragma: no cover


def _compare(day: datetime.date, op: str, date: datetime.date) -> bool:
    if op == "before":
        return day < date
    if op == "on":
        return day == date
    return day >= date


def _internal_day(info: MessageInfo) -> datetime.date:
    return datetime.datetime.fromtimestamp(info.internaldate, datetime.UTC).date()


def _header_contains(message: Candidate, field: str, needle: str) -> bool:
    assert message.data is not None
    assert message.spans is not None
    top = message.spans[0]
    header = message.data[top.start : top.end]
    wanted = field.encode("utf-8", "replace")
    for name, raw in header_fields(header):
        if name != wanted:
            continue
        if not needle:
            return True
        value = raw.split(b":", 1)[1].decode("utf-8", "replace")
        if needle in fold(decode_header_value(value.strip())):
            return True
    return False


def text_contains(data: bytes, spans: tuple[TextSpan, ...], needle: str, with_header: bool) -> bool:
    """Whether the decoded text of the message contains ``needle`` (already casefolded):
    its text parts, and with ``with_header`` its header blocks."""
    ascii_needle = needle.encode("utf-8") if needle.isascii() else None
    for span in spans:
        raw = data[span.start : span.end]
        if span.header:
            if with_header and needle in fold(decode_header_value(raw.decode("utf-8", "replace"))):
                return True
            continue
        identity = span.encoding in ("7bit", "8bit", "binary")
        if ascii_needle is not None and identity and not span.charset.startswith(WIDE_CHARSETS):
            if ascii_needle in raw.lower():
                return True
            continue
        try:
            decoded = decode_body(raw, span.encoding)
        except UnknownEncoding:
            decoded = raw
        if needle in fold(decode_bytes(decoded, span.charset)):
            return True
    return False


def structure_terms(key: SearchKey) -> frozenset[str] | None:
    """Terms one of which the structure text (the MIME JSON) of every matching message
    contains, for ``Store.structures_matching``; None when there is no such guarantee.

    ``SUBJECT zebra`` guarantees "zebra" (in any case), an encoded word ("=?") that may
    decode to it, or one of the few non-ASCII characters whose case folding holds one of
    its letters (``FOLDS_TO_ASCII``: "Straße" matches "strasse").
    An address needle with a space, ``<``, ``>`` or ``@`` may span the name and the parts
    of an address, stored apart, so it guarantees nothing; nor does a needle that JSON
    would escape. AND takes the smallest guarantee among its keys, OR needs both."""
    match key:
        case HeaderContains(field=field, value=value) if field in ENVELOPE_FIELDS:
            if not value or not _PLAIN_TERM.fullmatch(value):
                return None
            if field != "subject" and any(char in value for char in " <>@"):
                return None
            letters = set(value.lower())
            folding = {char for char in FOLDS_TO_ASCII if letters & set(char.casefold())}
            return frozenset((value.lower(), "=?", *folding))
        case And(keys=keys):
            best = None
            for inner in keys:
                terms = structure_terms(inner)
                if terms is not None and (best is None or len(terms) < len(best)):
                    best = terms
            return best
        case Or(left=left, right=right):
            first, second = structure_terms(left), structure_terms(right)
            return None if first is None or second is None else first | second
    return None


def uses_view(key: SearchKey) -> bool:
    """Whether any key is decided by the view alone (flags, sizes, dates, numbers): if none
    is, evaluating every message of the view first decides nothing."""
    match key:
        case HeaderContains() | TextContains():
            return False
        case DateCompare(sent=sent):
            return not sent
        case Not(key=inner):
            return uses_view(inner)
        case Or(left=left, right=right):
            return uses_view(left) or uses_view(right)
        case And(keys=keys):
            return any(uses_view(inner) for inner in keys)
    return True


def uses_envelope(key: SearchKey) -> bool:
    """Whether any key compares ENVELOPE values (SUBJECT, FROM, TO, CC, BCC, SENT*)."""
    match key:
        case HeaderContains(field=field):
            return field in ENVELOPE_FIELDS
        case DateCompare(sent=sent):
            return sent
        case Not(key=inner):
            return uses_envelope(inner)
        case Or(left=left, right=right):
            return uses_envelope(left) or uses_envelope(right)
        case And(keys=keys):
            return any(uses_envelope(inner) for inner in keys)
    return False
