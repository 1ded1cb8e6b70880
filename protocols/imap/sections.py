"""The octets of a FETCH section (RFC 9051 section 6.4.5) and of BINARY (RFC 3516).

Every section is a slice of the stored message, located by the offsets of the cached MIME
structure (``stalwart_py.mime``): nothing is parsed again but the header lines that
``HEADER.FIELDS`` filters.

* ``BODY[]`` is the whole message; ``HEADER`` its header block, blank line included;
  ``TEXT`` its body.
* ``BODY[1.2]`` is the body of part 1.2 (for a message/rfc822 part: the whole enclosed
  message); ``1.2.MIME`` is the part's own header block; ``1.2.HEADER`` and ``1.2.TEXT``
  are the header and body of the message enclosed in a message/rfc822 part 1.2.
* ``HEADER.FIELDS (A B)`` is the fields named (each field with its continuation lines, in
  message order) then the blank line; ``.NOT`` every field but those.
* A section that names nothing (part 7 of a 2-part message, HEADER of a part that is not a
  message) is the empty string, as most servers answer.
* ``BINARY[part]`` is the part's body with its Content-Transfer-Encoding undone (base64,
  quoted-printable as RFC 2045 section 6.7 says, padding and all; the identity encodings
  as they are); an encoding it cannot undo is
  ``UnknownEncoding`` (``NO [UNKNOWN-CTE]``). ``BINARY[]`` is the whole message as stored.
"""

from __future__ import annotations

import binascii
import functools
import re

from protocols.imap.fetch_items import Section
from stalwart_py.mime import BodyPart, ParsedMessage, find_part

IDENTITY = frozenset(("7bit", "8bit", "binary"))
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")
# RFC 2045 section 6.7 rule 3: whitespace at the end of an encoded line is transport padding
# and is deleted; after that, ``=`` at a line end (rule 5, even when spaces or tabs followed
# it) is a soft line break.
_QP_TRAILING_SPACE = re.compile(rb"[ \t]+(?=\r?\n|\Z)")


class UnknownEncoding(ValueError):
    """BINARY of a part whose Content-Transfer-Encoding is unknown (RFC 3516 UNKNOWN-CTE)."""


def section_bytes(data: bytes, message: ParsedMessage, section: Section) -> bytes:
    """The octets ``BODY[section]`` names (before any partial is applied)."""
    if not section.part:
        return _message_text(data, message.body, section)
    part = find_part(message, section.part)
    if part is None:
        return b""
    if section.text is None:
        return data[part.body_offset : part.body_end]
    if section.text == "MIME":
        return data[part.header_offset : part.header_end]
    if part.message is None:
        return b""
    return _message_text(data, part.message.body, section)


def _message_text(data: bytes, body: BodyPart, section: Section) -> bytes:
    """HEADER, HEADER.FIELDS (.NOT), TEXT or the whole of a message whose top part is
    ``body`` (its header block is the message's header)."""
    if section.text is None:
        return data[body.header_offset : body.body_end]
    if section.text == "TEXT":
        return data[body.body_offset : body.body_end]
    header = data[body.header_offset : body.header_end]
    if section.text == "HEADER":
        return header
    return filter_header(header, section.fields, exclude=section.text.endswith(".NOT"))


def header_fields(header: bytes) -> list[tuple[bytes, bytes]]:
    """(lower-case name, the field's raw octets with its continuation lines) for each field
    of a header block, up to its blank line; a junk line (no colon) is left out."""
    fields: list[tuple[bytes, bytes]] = []
    name: bytes | None = None
    lines: list[bytes] = []
    for line in header.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and name is not None:
            lines.append(line)
            continue
        if name is not None:
            fields.append((name, b"".join(lines)))
            name = None
        if line in (b"\r\n", b"\n"):
            break
        colon = line.find(b":")
        if colon > 0:
            name, lines = line[:colon].rstrip(b" \t").lower(), [line]
    if name is not None:
        fields.append((name, b"".join(lines)))
    return fields


def filter_header(header: bytes, names: tuple[str, ...], *, exclude: bool) -> bytes:
    """HEADER.FIELDS (or .NOT): the chosen fields in message order, then a blank line."""
    if exclude:
        wanted = {name.lower().encode("ascii") for name in names}
        chosen = [raw for name, raw in header_fields(header) if name not in wanted]
    else:
        chosen = _fields_pattern(names).findall(header)
    return b"".join(raw if raw.endswith(b"\n") else raw + b"\r\n" for raw in chosen) + b"\r\n"


@functools.lru_cache(maxsize=256)
def _fields_pattern(names: tuple[str, ...]) -> re.Pattern[bytes]:
    """A field line of one of ``names`` (any case) with its continuation lines; it only
    ever runs over a header block, so a body line cannot match."""
    alternatives = b"|".join(re.escape(name.encode("ascii")) for name in names)
    return re.compile(
        rb"^(?:" + alternatives + rb")[ \t]*:[^\n]*(?:\n|\Z)(?:[ \t][^\n]*(?:\n|\Z))*",
        re.MULTILINE | re.IGNORECASE,
    )


def binary_bytes(data: bytes, message: ParsedMessage, section: Section) -> bytes:
    """``BINARY[section]``: the decoded body of a part (RFC 3516)."""
    if not section.part:
        return data[message.body.header_offset : message.body.body_end]
    part = find_part(message, section.part)
    if part is None:
        return b""
    return decode_body(data[part.body_offset : part.body_end], part.encoding)


def decode_body(raw: bytes, encoding: str) -> bytes:
    """Undo a Content-Transfer-Encoding (RFC 2045 section 6), tolerantly: base64 ignores
    characters outside its alphabet and a missing padding, as mail readers do."""
    if encoding in IDENTITY:
        return raw
    if encoding == "base64":
        cleaned = _NOT_BASE64.sub(b"", raw.split(b"=", 1)[0])
        cleaned = cleaned[: len(cleaned) - len(cleaned) % 4] if len(cleaned) % 4 == 1 else cleaned
        try:
            return binascii.a2b_base64(cleaned + b"=" * (-len(cleaned) % 4))
        except binascii.Error:
            return b""
    if encoding == "quoted-printable":
        return decode_quoted_printable(raw)
    raise UnknownEncoding(encoding)


def decode_quoted_printable(raw: bytes) -> bytes:
    """Quoted-printable (RFC 2045 section 6.7): ``=XX`` is an octet, ``=`` at the end of a
    line a soft line break, and whitespace at the end of a line is padding added in transit,
    so it is dropped, and with it a soft break can be ``=`` followed by spaces or tabs. A
    ``=`` not followed by two hex digits is kept as it is (the robust reading of rule 1).
    Line ends are kept as they are (CRLF, or a bare LF)."""
    # binascii does the octets and the soft breaks (in C), once the padding is gone.
    return binascii.a2b_qp(_QP_TRAILING_SPACE.sub(b"", raw))


def apply_partial(data: bytes, partial: tuple[int, int] | None) -> bytes:
    """``<start.count>``: at most ``count`` octets from ``start`` (empty past the end)."""
    if partial is None:
        return data
    start, count = partial
    return data[start : start + count]
