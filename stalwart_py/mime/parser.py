"""``parse_message``: one pass over the bytes of a message into ENVELOPE, BODYSTRUCTURE and
the byte offsets of every part.

The data is never copied: header blocks and delimiter lines are found with ``bytes.find``
and regexes bounded by ``pos``/``endpos``, and only header blocks are decoded. The work is
linear in the size of the message for each level of nesting, and nesting is bounded.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from stalwart_py.mime.addresses import ENVELOPE_FIELDS, build_envelope
from stalwart_py.mime.headers import (
    MESSAGE_DEFAULT,
    TEXT_PLAIN_DEFAULT,
    Params,
    parse_content_type,
    parse_disposition,
    parse_encoding,
    parse_language,
    read_fields,
    scan_header,
)
from stalwart_py.mime.model import BodyPart, Envelope, ParsedMessage

# Beyond these, a multipart or message/rfc822 is not followed: it becomes an opaque leaf.
MAX_DEPTH = 50  # multipart and message/rfc822 levels below the top
MAX_PARTS = 10_000  # body parts in one message, enclosed messages included

# after "--boundary": "--" (close delimiter), or transport padding and the line break
_LINE_TAIL = re.compile(rb"(?:(--)|[ \t]*+(?:\r?\n|\r?\Z))")
CHEAP_MISSES = 64  # false delimiter candidates before a boundary gets its own regex

IDENTITY_ENCODINGS = frozenset(("7bit", "8bit", "binary"))
ENCAPSULATING = frozenset(("rfc822", "global"))

MIME_FIELDS = frozenset(
    (
        "content-type",
        "content-transfer-encoding",
        "content-id",
        "content-description",
        "content-md5",
        "content-disposition",
        "content-language",
        "content-location",
    )
)
MESSAGE_FIELDS = MIME_FIELDS | ENVELOPE_FIELDS

_EMPTY_ENVELOPE = Envelope(None, None, None, None, None, None, None, None, None, None)


class _Budget:
    """The parts one message may still create (a hostile one must not create millions)."""

    __slots__ = ("left",)

    def __init__(self, left: int) -> None:
        self.left = left


def parse_message(data: bytes, offset: int = 0) -> ParsedMessage:
    """Parse the message that starts at ``data[offset]`` and runs to the end of ``data``.

    Every offset in the result indexes ``data`` itself (the top-level part has
    ``header_offset == offset``), so enclosed messages and parts can be served with one
    slice of the stored bytes. Never raises on any bytes: malformed MIME parses into
    something sensible (see the package docstring); ``bytes`` avoids one copy of the input
    (other buffers are copied once).
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    offset = min(max(offset, 0), len(data))
    try:
        return _parse_message(data, offset, len(data), 0, _Budget(MAX_PARTS))
    except Exception:  # pragma: no cover - a bug, not the input's fault: degrade, don't fail
        return _unparsed(data, offset)


def _parse_message(data: bytes, start: int, end: int, depth: int, budget: _Budget) -> ParsedMessage:
    header_length, fields_length = scan_header(data, start, end)
    fields = read_fields(data, start, fields_length, MESSAGE_FIELDS)
    envelope = build_envelope(fields)
    body = _part(data, start, end, header_length, fields, TEXT_PLAIN_DEFAULT, depth, budget)
    return ParsedMessage(envelope, body, end - start)


def _parse_part(
    data: bytes, start: int, end: int, in_digest: bool, depth: int, budget: _Budget
) -> BodyPart:
    header_length, fields_length = scan_header(data, start, end)
    fields = read_fields(data, start, fields_length, MIME_FIELDS)
    default = MESSAGE_DEFAULT if in_digest else TEXT_PLAIN_DEFAULT
    return _part(data, start, end, header_length, fields, default, depth, budget)


def _part(
    data: bytes,
    start: int,
    end: int,
    header_length: int,
    fields: dict[str, str],
    default: tuple[str, str, Params],
    depth: int,
    budget: _Budget,
) -> BodyPart:
    budget.left -= 1
    body_offset = start + header_length
    type_, subtype, params = parse_content_type(fields.get("content-type"), default)
    encoding = parse_encoding(fields.get("content-transfer-encoding"))
    parts: tuple[BodyPart, ...] = ()
    message: ParsedMessage | None = None
    if type_ == "multipart":
        parts = _children(data, body_offset, end, subtype, params, depth, budget)
        if not parts:
            type_, subtype, params = _opaque(params)
    elif type_ == "message" and subtype in ENCAPSULATING:
        if encoding in IDENTITY_ENCODINGS and depth < MAX_DEPTH and budget.left > 0:
            message = _parse_message(data, body_offset, end, depth + 1, budget)
        else:
            type_, subtype, params = _opaque(params)
    lines = None
    if type_ == "text" or message is not None:
        lines = _count_lines(data, body_offset, end)
    return BodyPart(
        type=type_,
        subtype=subtype,
        params=params,
        id=fields.get("content-id"),
        description=fields.get("content-description"),
        encoding=encoding,
        size=end - body_offset,
        lines=lines,
        md5=fields.get("content-md5"),
        disposition=parse_disposition(fields.get("content-disposition")),
        language=parse_language(fields.get("content-language")),
        location=fields.get("content-location"),
        header_offset=start,
        header_length=header_length,
        body_offset=body_offset,
        body_length=end - body_offset,
        parts=parts,
        message=message,
    )


def _children(
    data: bytes, start: int, end: int, subtype: str, params: Params, depth: int, budget: _Budget
) -> tuple[BodyPart, ...]:
    boundary = next((value for name, value in params if name == "boundary"), "").rstrip()
    if not boundary or depth >= MAX_DEPTH or budget.left <= 0:
        return ()
    delimiter = b"--" + boundary.encode("utf-8", "replace")
    in_digest = subtype == "digest"
    children = []
    for part_start, part_end in split_multipart(data, start, end, delimiter, budget.left):
        if budget.left <= 0:
            break
        children.append(_parse_part(data, part_start, part_end, in_digest, depth + 1, budget))
    return tuple(children)


def split_multipart(
    data: bytes, start: int, end: int, delimiter: bytes, limit: int = MAX_PARTS
) -> list[tuple[int, int]]:
    """(start, end) of each body part between the ``delimiter`` (``--boundary``) lines in
    ``data[start:end]``, at most ``limit`` of them (RFC 2046 section 5.1.1).

    The line break before a delimiter line belongs to the delimiter, not to the part before
    it. The preamble (before the first delimiter) and the epilogue (after the close
    delimiter) are not parts. Without a close delimiter the last part runs to ``end``.
    """
    spans: list[tuple[int, int]] = []
    part_start = -1  # no delimiter seen yet: in the preamble
    for line, next_line, closing in _delimiter_lines(data, start, end, delimiter):
        if part_start >= 0:  # then line > start, and data[line - 1] is a line feed
            part_end = line - 2 if line - 2 >= start and data[line - 2] == 0x0D else line - 1
            spans.append((part_start, max(part_start, part_end)))
            if len(spans) >= limit:
                return spans
        if closing:
            return spans
        part_start = next_line
    if part_start >= 0 and len(spans) < limit:
        spans.append((part_start, end))
    return spans


def _delimiter_lines(
    data: bytes, start: int, end: int, delimiter: bytes
) -> Iterator[tuple[int, int, bool]]:
    """(offset, offset of the next line, is it the close delimiter) of each delimiter line.

    A delimiter line is ``--boundary`` at the start of a line, then only spaces and tabs
    (transport padding) before the line break or the end of the data; a close delimiter is
    ``--boundary--`` followed by anything. Candidates are found with ``bytes.find``; when
    many of them turn out not to be delimiters (a hostile message, or boundaries that are
    prefixes of one another) the search goes on with a regex compiled for this boundary,
    which skips them in C (compiling costs more than a whole ordinary message's search).
    """
    size = len(delimiter)
    if data.startswith(delimiter, start, end):
        tail = _LINE_TAIL.match(data, start + size, end)
        if tail is not None:
            yield start, tail.end(), tail.group(1) is not None
    needle = b"\n" + delimiter
    position, misses = start, 0
    while misses < CHEAP_MISSES:
        found = data.find(needle, position, end)
        if found < 0:
            return
        position = found + 1 + size
        tail = _LINE_TAIL.match(data, position, end)
        if tail is None:
            misses += 1
        else:
            yield found + 1, tail.end(), tail.group(1) is not None
    pattern = re.compile(re.escape(needle) + _LINE_TAIL.pattern)
    while (match := pattern.search(data, position, end)) is not None:
        position = match.start() + 1 + size
        yield match.start() + 1, match.end(), match.group(1) is not None


def _opaque(params: Params) -> tuple[str, str, Params]:
    """A multipart that cannot be split (no boundary, no delimiter line, too deep) or a
    message/rfc822 that cannot be parsed in place (encoded, too deep) is one leaf part of
    the RFC 2045 default type, keeping its parameters other than the boundary."""
    kept = tuple((name, value) for name, value in params if name != "boundary")
    if not any(name == "charset" for name, _ in kept):
        kept = (("charset", "us-ascii"), *kept)
    return "text", "plain", kept


def _count_lines(data: bytes, start: int, end: int) -> int:
    """Lines of a body: its line feeds, plus one for a last line without a line break
    (a part before a delimiter always ends so, since that line break is the delimiter's)."""
    if end <= start:
        return 0
    return data.count(b"\n", start, end) + (data[end - 1] != 0x0A)


def _unparsed(data: bytes, offset: int) -> ParsedMessage:
    size = len(data) - offset
    body = BodyPart(
        *TEXT_PLAIN_DEFAULT,
        id=None,
        description=None,
        encoding="7bit",
        size=size,
        lines=_count_lines(data, offset, len(data)),
        md5=None,
        disposition=None,
        language=None,
        location=None,
        header_offset=offset,
        header_length=0,
        body_offset=offset,
        body_length=size,
    )
    return ParsedMessage(_EMPTY_ENVELOPE, body, size)
