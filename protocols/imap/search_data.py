"""What SEARCH derives from a message's structure, once (then kept in ``cache``): the
ENVELOPE values it compares, decoded and case-folded, and where the searchable text is."""

from __future__ import annotations

import contextlib
import datetime
import email.utils
from dataclasses import dataclass

from stalwart_py.mime import BodyPart, Envelope, ParsedMessage, decode_header_value

ADDRESS_FIELDS = ("from", "to", "cc", "bcc")


@dataclass(frozen=True, slots=True)
class SearchFields:
    """What SEARCH compares, decoded (RFC 2047) and case-folded once."""

    subject: str | None
    addresses: dict[str, tuple[str, ...] | None]  # from/to/cc/bcc: "name <mailbox@host>"
    sent: datetime.date | None  # the day of the Date header in its own zone


def search_fields(value: Envelope) -> SearchFields:
    subject = None
    if value.subject is not None:
        subject = decode_header_value(value.subject).casefold()
    addresses: dict[str, tuple[str, ...] | None] = {}
    for name, field in zip(
        ADDRESS_FIELDS, (value.from_, value.to, value.cc, value.bcc), strict=True
    ):
        if field is None:
            addresses[name] = None
            continue
        texts = []
        for address in field:
            text = decode_header_value(address.name) + " " if address.name else ""
            if address.mailbox is not None:
                text += f"<{address.mailbox}@{address.host or ''}>"
            texts.append(text.casefold())
        addresses[name] = tuple(texts)
    sent = None
    if value.date:
        parsed = email.utils.parsedate_tz(value.date)
        if parsed is not None:
            with contextlib.suppress(ValueError):
                sent = datetime.date(parsed[0], parsed[1], parsed[2])
    return SearchFields(subject, addresses, sent)


@dataclass(frozen=True, slots=True)
class TextSpan:
    """A header block or a text part's body, by offsets into the message."""

    start: int
    end: int
    header: bool
    encoding: str  # of a text part: its Content-Transfer-Encoding and charset
    charset: str


def text_spans(parsed: ParsedMessage) -> tuple[TextSpan, ...]:
    """Where the searchable text of a message is: its header block first, then each text
    part's body and each enclosed message's header, in order."""
    spans = [TextSpan(parsed.body.header_offset, parsed.body.header_end, True, "", "")]
    _collect(parsed.body, spans)
    return tuple(spans)


def _collect(part: BodyPart, spans: list[TextSpan]) -> None:
    if part.parts:
        for child in part.parts:
            _collect(child, spans)
    elif part.message is not None:
        body = part.message.body
        spans.append(TextSpan(body.header_offset, body.header_end, True, "", ""))
        _collect(body, spans)
    elif part.type == "text":
        charset = (part.param("charset") or "us-ascii").lower()
        spans.append(TextSpan(part.body_offset, part.body_end, False, part.encoding, charset))
