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

ENVELOPE_FIELDS = frozenset(("subject", "from", "to", "cc", "bcc"))
WIDE_CHARSETS = ("utf-16", "utf-32", "ucs-2", "ucs2", "utf16", "utf32")


@dataclass
class Candidate:
    """One message and whatever has been read of it so far."""

    info: MessageInfo
    seq: int
    fields: SearchFields | None = None
    spans: tuple[TextSpan, ...] | None = None  # text_spans() of the message
    data: bytes | None = None


@dataclass(frozen=True)
class Context:
    count: int  # messages in the view (for "*" in sequence sets)
    largest_uid: int
    saved: frozenset[int]  # the saved result ($), as UIDs


def fold(text: str) -> str:
    return text.casefold()


def evaluate(key: SearchKey, message: Candidate, context: Context) -> bool | None:
    match key:
        case Constant(value=value):
            return value
        case HasFlag(flag=flag, present=present):
            return _has_flag(message.info.flags, flag) == present
        case SizeCompare(larger=larger, size=size):
            return message.info.size > size if larger else message.info.size < size
        case InSet(numbers=numbers, uid=uid):
            if numbers.saved:
                return message.info.uid in context.saved
            if uid:
                return numbers.contains(message.info.uid, context.largest_uid)
            return numbers.contains(message.seq, context.count)
        case ModSeqAtLeast(modseq=modseq):
            return message.info.modseq >= modseq
        case DateCompare(sent=sent, op=op, date=date):
            if not sent:
                return _compare(_internal_day(message.info), op, date)
            if message.fields is None:
                return None
            return _compare(message.fields.sent or _internal_day(message.info), op, date)
        case HeaderContains(field=field, value=value):
            if field in ENVELOPE_FIELDS:
                if message.fields is None:
                    return None
                return _envelope_contains(message.fields, field, fold(value))
            if message.data is None or message.spans is None:
                return None
            return _header_contains(message, field, fold(value))
        case TextContains(value=value, body_only=body_only):
            if message.data is None or message.spans is None:
                return None
            return text_contains(message.data, message.spans, fold(value), not body_only)
        case Not(key=inner):
            result = evaluate(inner, message, context)
            return None if result is None else not result
        case Or(left=left, right=right):
            first = evaluate(left, message, context)
            if first is True:
                return True
            second = evaluate(right, message, context)
            if second is True:
                return True
            return None if first is None or second is None else False
        case And(keys=keys):
            undecided = False
            for inner in keys:
                result = evaluate(inner, message, context)
                if result is False:
                    return False
                undecided |= result is None
            return None if undecided else True
    raise TypeError(f"unknown search key {key!r}")  # pragma: no cover


def _has_flag(flags: frozenset[str], flag: str) -> bool:
    if flag in flags:
        return True
    if flag.startswith("\\"):
        lowered = flag.lower()
        return any(name.lower() == lowered for name in flags)
    return False


def _compare(day: datetime.date, op: str, date: datetime.date) -> bool:
    if op == "before":
        return day < date
    if op == "on":
        return day == date
    return day >= date


def _internal_day(info: MessageInfo) -> datetime.date:
    return datetime.datetime.fromtimestamp(info.internaldate, datetime.UTC).date()


def _envelope_contains(fields: SearchFields, field: str, needle: str) -> bool:
    if field == "subject":
        return fields.subject is not None and needle in fields.subject
    addresses = fields.addresses[field]
    if addresses is None:
        return False
    return not needle or any(needle in text for text in addresses)


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
