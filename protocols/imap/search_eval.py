"""Evaluating SEARCH criteria against one message, in three stages. Sans-IO.

A key is decided with what is at hand and answers True, False or None ("cannot tell yet").
Flags, sizes, dates, UIDs, sequence numbers and MODSEQ are in the session's view; SUBJECT,
FROM, TO, CC, BCC and the SENT* dates need the cached structure (the ENVELOPE); HEADER,
BODY and TEXT need the message itself. ``And``, ``Or`` and ``Not`` combine the three values
(Kleene logic), so a message is fetched from the store only when the cheaper data cannot
decide it: ``UNSEEN BODY "x"`` reads the bodies of unseen messages only.

Matching (RFC 9051 section 6.4.4): strings match as case-insensitive substrings, after
RFC 2047 decoding of header values and after undoing the Content-Transfer-Encoding and the
charset of text body parts. BEFORE/ON/SINCE compare the internal date's day in UTC;
SENTBEFORE/SENTON/SENTSINCE the day of the Date header in its own time zone (or of the
internal date when the header is missing or unreadable).
"""

from __future__ import annotations

import datetime
import email.utils
from dataclasses import dataclass

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
from stalwart_py.mime import BodyPart, ParsedMessage, decode_header_value
from stalwart_py.mime.charsets import decode_bytes
from stalwart_py.store import MessageInfo

ENVELOPE_FIELDS = frozenset(("subject", "from", "to", "cc", "bcc"))
WIDE_CHARSETS = ("utf-16", "utf-32", "ucs-2", "ucs2", "utf16", "utf32")


@dataclass
class Candidate:
    """One message and whatever has been read of it so far."""

    info: MessageInfo
    seq: int
    parsed: ParsedMessage | None = None
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
            if message.parsed is None:
                return None
            return _compare(_sent_day(message), op, date)
        case HeaderContains(field=field, value=value):
            if field in ENVELOPE_FIELDS:
                if message.parsed is None:
                    return None
                return _envelope_contains(message.parsed, field, fold(value))
            if message.data is None or message.parsed is None:
                return None
            return _header_contains(message, field, fold(value))
        case TextContains(value=value, body_only=body_only):
            if message.data is None or message.parsed is None:
                return None
            return text_contains(message.data, message.parsed, fold(value), not body_only)
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


def _sent_day(message: Candidate) -> datetime.date:
    assert message.parsed is not None
    raw = message.parsed.envelope.date
    if raw:
        parsed = email.utils.parsedate_tz(raw)
        if parsed is not None:
            try:
                return datetime.date(parsed[0], parsed[1], parsed[2])
            except ValueError:
                pass
    return _internal_day(message.info)


def _envelope_contains(parsed: ParsedMessage, field: str, needle: str) -> bool:
    envelope = parsed.envelope
    if field == "subject":
        return envelope.subject is not None and needle in fold(
            decode_header_value(envelope.subject)
        )
    addresses = {
        "from": envelope.from_,
        "to": envelope.to,
        "cc": envelope.cc,
        "bcc": envelope.bcc,
    }[field]
    if addresses is None:
        return False
    if not needle:
        return True
    for address in addresses:
        text = ""
        if address.name:
            text = decode_header_value(address.name) + " "
        if address.mailbox is not None:
            text += f"<{address.mailbox}@{address.host or ''}>"
        if needle in fold(text):
            return True
    return False


def _header_contains(message: Candidate, field: str, needle: str) -> bool:
    assert message.data is not None
    assert message.parsed is not None
    body = message.parsed.body
    header = message.data[body.header_offset : body.header_end]
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


def text_contains(data: bytes, parsed: ParsedMessage, needle: str, with_header: bool) -> bool:
    """Whether the decoded text of the message contains ``needle`` (already casefolded):
    its text parts, and with ``with_header`` its header blocks."""
    ascii_needle = needle.encode("utf-8") if needle.isascii() else None
    return _part_contains(data, parsed.body, needle, ascii_needle, with_header, top=True)


def _part_contains(
    data: bytes,
    part: BodyPart,
    needle: str,
    ascii_needle: bytes | None,
    with_header: bool,
    top: bool = False,
) -> bool:
    if with_header and top:
        header = data[part.header_offset : part.header_end].decode("utf-8", "replace")
        if needle in fold(decode_header_value(header)):
            return True
    if part.parts:
        return any(
            _part_contains(data, child, needle, ascii_needle, with_header) for child in part.parts
        )
    if part.message is not None:
        return _part_contains(data, part.message.body, needle, ascii_needle, with_header, True)
    if part.type != "text":
        return False
    raw = data[part.body_offset : part.body_end]
    charset = (part.param("charset") or "us-ascii").lower()
    identity = part.encoding in ("7bit", "8bit", "binary")
    if ascii_needle is not None and identity and not charset.startswith(WIDE_CHARSETS):
        return ascii_needle in raw.lower()
    try:
        decoded = decode_body(raw, part.encoding)
    except UnknownEncoding:
        decoded = raw
    return needle in fold(decode_bytes(decoded, charset))
