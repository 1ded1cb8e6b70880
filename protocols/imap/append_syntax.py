"""The arguments of APPEND with its extensions, as values. Sans-IO.

RFC 9051 section 6.3.12 appends one message; MULTIAPPEND (RFC 3502) lets one command carry
several, each with its own flags and internal date, stored all or none; CATENATE (RFC 4469)
builds a message from parts, literal text and IMAP URLs of messages (or their sections)
already in the account; UTF8=ACCEPT (RFC 6855 section 4) adds the ``UTF8 (~{n})`` form for a
message whose header fields hold raw UTF-8. The grammar, with the extensions merged::

    append          = "APPEND" SP mailbox 1*append-message          ; RFC 3502
    append-message  = append-opts SP append-data
    append-opts     = [SP flag-list] [SP date-time]
    append-data     = literal / literal8 / catenate / utf8-data
    catenate        = "CATENATE" SP "(" cat-part *(SP cat-part) ")" ; RFC 4469
    cat-part        = "TEXT" SP (literal / literal8) / "URL" SP astring / utf8-data
    utf8-data       = "UTF8" SP "(" literal8 ")"                    ; RFC 6855

A bad flag list, date-time or structure anywhere is a ``ParseError`` for the whole command
(BAD), so nothing of a MULTIAPPEND is stored. The size of each literal and of all of them
together was already bounded by the framing layer (``framing.py``) before it was read.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from protocols.imap.lexer import ParseError, Reader
from protocols.imap.search_keys import MONTHS


@dataclass(frozen=True, slots=True)
class TextPart:
    """A CATENATE ``TEXT`` (or ``UTF8``) part: octets taken as they are."""

    data: bytes
    utf8: bool = False  # the UTF8 form (RFC 6855 section 4)


@dataclass(frozen=True, slots=True)
class UrlPart:
    """A CATENATE ``URL`` part: an IMAP URL (RFC 5092) still to be resolved (``catenate``)."""

    url: str


CatPart = TextPart | UrlPart


@dataclass(frozen=True, slots=True)
class AppendMessage:
    """One message of an APPEND: either ``data`` or CATENATE ``parts``."""

    flags: tuple[str, ...] = ()
    internaldate: datetime.datetime | None = None
    data: bytes | None = None
    parts: tuple[CatPart, ...] = ()
    utf8: bool = False  # sent in the UTF8 form (RFC 6855), or with a UTF8 part


@dataclass(frozen=True, slots=True)
class Append:
    mailbox: bytes
    messages: tuple[AppendMessage, ...]


# -- pieces shared with other commands -------------------------------------------------------


def flag(reader: Reader) -> str:
    """``flag``: ``\\Seen`` and the other system flags, ``\\``-extensions, or a keyword."""
    if reader.skip(b"\\"):
        return "\\" + reader.atom()
    return reader.atom()


def flag_list(reader: Reader) -> tuple[str, ...]:
    return tuple(reader.parenthesized(flag))


def date_time(reader: Reader) -> datetime.datetime:
    """``"dd-Mon-yyyy hh:mm:ss +zzzz"`` (the day may be space-padded)."""
    raw = reader.quoted()
    try:
        text = raw.decode("ascii").strip()
        day, month, rest = text.split("-", 2)
        month_number = MONTHS.index(month.upper()) + 1
        year, clock, zone = rest.split(" ")
        hour, minute, second = (int(x) for x in clock.split(":"))
        if len(zone) != 5 or zone[0] not in "+-" or not zone[1:].isdigit():
            raise ValueError
        offset = datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5]))
        tz = datetime.timezone(offset if zone[0] == "+" else -offset)
        return datetime.datetime(int(year), month_number, int(day), hour, minute, second, tzinfo=tz)
    except ValueError:
        raise ParseError("invalid date-time") from None


# -- APPEND ------------------------------------------------------------------------------------


def parse_append(reader: Reader, uid: bool = False) -> Append:
    """``APPEND mailbox 1*append-message`` from after the command name."""
    reader.space()
    mailbox = reader.astring()
    messages = []
    while True:
        reader.space()
        messages.append(_message(reader))
        if reader.at_end():
            return Append(mailbox, tuple(messages))


def _message(reader: Reader) -> AppendMessage:
    flags: tuple[str, ...] = ()
    when = None
    if reader.peek() == b"(":
        flags = flag_list(reader)
        reader.space()
    if reader.peek() == b'"':
        when = date_time(reader)
        reader.space()
    if reader.peek() in (b"{", b"~"):
        return AppendMessage(flags, when, data=reader.literal(binary=True))
    if reader.peek_upper(b"UTF8"):
        return AppendMessage(flags, when, data=_utf8(reader), utf8=True)
    if reader.peek_upper(b"CATENATE"):
        reader.pos += len(b"CATENATE")
        reader.space()
        parts = tuple(reader.parenthesized(_cat_part, allow_empty=False))
        utf8 = any(isinstance(part, TextPart) and part.utf8 for part in parts)
        return AppendMessage(flags, when, parts=parts, utf8=utf8)
    raise ParseError("expected the message: a literal, CATENATE or UTF8")


def _utf8(reader: Reader) -> bytes:
    """``UTF8 SP "(" literal8 ")"``: RFC 6855 asks for a literal8 here."""
    reader.pos += len(b"UTF8")
    reader.space()
    reader.expect(b"(", "'('")
    if reader.peek() != b"~":
        raise ParseError("UTF8 takes a literal8 (~{n})")
    data = reader.literal(binary=True)
    reader.expect(b")", "')'")
    return data


def _cat_part(reader: Reader) -> CatPart:
    if reader.peek_upper(b"UTF8"):
        return TextPart(_utf8(reader), utf8=True)
    keyword = reader.keyword()
    reader.space()
    if keyword == "TEXT":
        return TextPart(reader.literal(binary=True))
    if keyword == "URL":
        raw = reader.astring()
        try:
            return UrlPart(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise ParseError("the URL is not valid UTF-8") from None
    raise ParseError(f"unknown CATENATE part {keyword}")
