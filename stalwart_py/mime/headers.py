"""Header blocks (RFC 5322 section 2.2) and the MIME fields (RFC 2045, 2183, 2231, 3282).

``scan_header`` finds where a header block ends, in bytes, without copying the body: the
block is a run of field lines (``name:`` then anything) and continuation lines (starting with
a space or tab), ended by a blank line, which belongs to the block. A line that is neither
ends the block too, without a blank line (the body starts on that line), and so does the end
of the data. ``read_fields`` decodes the block as UTF-8 (RFC 6532), undecodable bytes as
U+FFFD: the values feed ENVELOPE, BODYSTRUCTURE and SEARCH, are stored as JSON in SQLite and
written to clients, and a lone surrogate (``surrogateescape``) would fail at every one of
those places. The exact bytes are always available through the offsets.
"""

from __future__ import annotations

import email.utils
import re
import time
from urllib.parse import unquote_to_bytes

from stalwart_py.mime.charsets import decode_bytes

# Only the first MiB of a header block is read for fields: real ones are a few KiB, and a
# hostile one must not be decoded whole. Offsets are computed over the whole block anyway.
MAX_HEADER_SCAN = 1 << 20

_HEADER_LINES = re.compile(
    rb"(?:[^\x00-\x20\x7f:]++[ \t]*+:[^\n]*+(?:\n|\Z)(?:[ \t][^\n]*+(?:\n|\Z))*+)*+"
)
_FIELD = re.compile(r"^([^\x00-\x20\x7f:]+)[ \t]*:(.*(?:\n[ \t].*)*)", re.MULTILINE)
_NEWLINES = re.compile(r"\r?\n")

_TOKEN = r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+"
_MEDIA_TYPE = re.compile(rf"\s*(?:\([^()]*\)\s*)?({_TOKEN})\s*/\s*({_TOKEN})")
_LEADING_TOKEN = re.compile(rf"\s*(?:\([^()]*\)\s*)?({_TOKEN})")
_PARAMETER = re.compile(
    r';\s*([^\s=;"]+)\s*(?:=\s*(?:"((?:[^"\\]|\\.)*+)(?:"|\\?\Z)|([^;]*+)))?', re.DOTALL
)
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
_EXTENDED_NAME = re.compile(r"(.+?)\*(?:(\d{1,4})(\*)?)?\Z")

TEXT_PLAIN_DEFAULT = ("text", "plain", (("charset", "us-ascii"),))
MESSAGE_DEFAULT = ("message", "rfc822", ())

Params = tuple[tuple[str, str], ...]


def scan_header(data: bytes, start: int, end: int) -> tuple[int, int]:
    """(length of the header block including its blank line, length of the field lines)."""
    match = _HEADER_LINES.match(data, start, end)  # it matches the empty string at least
    fields_end = match.end() if match else start
    if data.startswith(b"\r\n", fields_end, end):
        return fields_end + 2 - start, fields_end - start
    if data.startswith(b"\n", fields_end, end):
        return fields_end + 1 - start, fields_end - start
    return fields_end - start, fields_end - start


def read_fields(data: bytes, start: int, length: int, wanted: frozenset[str]) -> dict[str, str]:
    """The unfolded, stripped values of the ``wanted`` fields (lowercase names); the first
    occurrence of a field wins."""
    fields: dict[str, str] = {}
    if length <= 0:
        return fields
    text = data[start : start + min(length, MAX_HEADER_SCAN)].decode("utf-8", "replace")
    for match in _FIELD.finditer(text):
        name = match.group(1).lower()
        if name in wanted and name not in fields:
            fields[name] = _NEWLINES.sub("", match.group(2)).strip(" \t\r\n")
    return fields


def read_all(data: bytes, name: str) -> list[str]:
    """Every value of the field ``name`` (lowercase) in the header block at the start of
    ``data``, unfolded and stripped, in order: where a repeated field is itself the finding
    (several From fields, RFC 7489 6.6.1), which ``read_fields`` does not show."""
    length = scan_header(data, 0, len(data))[1]
    text = data[: min(length, MAX_HEADER_SCAN)].decode("utf-8", "replace")
    return [
        _NEWLINES.sub("", match.group(2)).strip(" \t\r\n")
        for match in _FIELD.finditer(text)
        if match.group(1).lower() == name
    ]


def parse_content_type(
    value: str | None, default: tuple[str, str, Params]
) -> tuple[str, str, Params]:
    """(type, subtype, params), lowercased type names. ``default`` applies when the field
    is absent; a field without a valid ``type/subtype`` gets text/plain (RFC 2045 5.2) but
    keeps the parameters it has (``Content-Type: text; charset=utf-8`` is common)."""
    if value is None:
        return default
    match = _MEDIA_TYPE.match(value)
    if match is None:
        params = parse_parameters(value, value.find(";"))
        if not any(name == "charset" for name, _ in params):
            params = (("charset", "us-ascii"), *params)
        return "text", "plain", params
    params = parse_parameters(value, match.end())
    return match.group(1).lower(), match.group(2).lower(), params


def parse_disposition(value: str | None) -> tuple[str, Params] | None:
    """(disposition type lowercased, params); a field without a type counts as an
    attachment (RFC 2183 section 2.8), an empty one as absent."""
    if not value:
        return None
    match = _LEADING_TOKEN.match(value)
    if match is None:
        return "attachment", parse_parameters(value, value.find(";"))
    return match.group(1).lower(), parse_parameters(value, match.end())


def parse_encoding(value: str | None) -> str:
    """The Content-Transfer-Encoding token lowercased; "7bit" when absent (RFC 2045 6.1)."""
    if value is None:
        return "7bit"
    match = _LEADING_TOKEN.match(value)
    return match.group(1).lower() if match else "7bit"


def parse_language(value: str | None) -> tuple[str, ...] | None:
    """Content-Language (RFC 3282): the comma-separated tags, or None."""
    if not value:
        return None
    tags = tuple(tag for tag in (part.strip() for part in value.split(",")) if tag)
    return tags or None


def parse_parameters(value: str, position: int) -> Params:
    """The ``; name=value`` list from ``position`` on: names lowercased, quoted strings
    unquoted, RFC 2231 continuations and charset/language-encoded values decoded. Junk
    between parameters is skipped; the first occurrence of a name wins, except that an RFC
    2231 form (``name*``) wins over a plain one (it is the more exact of the two)."""
    if position < 0:
        return ()
    plain: dict[str, str] = {}
    order: dict[str, None] = {}
    extended: dict[str, list[tuple[int, int, bool, str]]] = {}
    for index, match in enumerate(_PARAMETER.finditer(value, position)):
        name, quoted, bare = match.groups()
        if quoted is not None:
            text = _QUOTED_PAIR.sub(r"\1", quoted)
        elif bare is not None:
            text = _without_trailing_comment(bare.strip())
        else:
            continue  # a name without "=": not a parameter
        name = name.lower()
        ext = _EXTENDED_NAME.match(name)
        if ext is None:
            order.setdefault(name)
            plain.setdefault(name, text)
            continue
        base, number, star = ext.groups()
        order.setdefault(base)
        encoded = number is None or star is not None
        extended.setdefault(base, []).append((int(number or 0), index, encoded, text))
    return tuple(
        (name, _join_rfc2231(extended[name]) if name in extended else plain[name]) for name in order
    )


def _without_trailing_comment(text: str) -> str:
    """``us-ascii (Plain text)`` -> ``us-ascii``; ``my (1).pdf`` stays as it is."""
    if text.endswith(")"):
        opening = text.rfind("(")
        if opening > 0 and text[opening - 1] in " \t" and ")" not in text[opening:-1]:
            return text[:opening].rstrip()
    return text


def _join_rfc2231(segments: list[tuple[int, int, bool, str]]) -> str:
    """One RFC 2231 value from its segments: ``*0*``, ``*1``... in number order (the first
    of duplicates wins). Percent-encoded segments carry ``charset'language'`` in the first
    one; consecutive encoded segments are decoded together, so a character split across
    two of them survives."""
    segments.sort()
    charset: str | None = None
    out: list[str] = []
    pending = bytearray()
    seen: set[int] = set()
    for number, _, encoded, text in segments:
        if number in seen:
            continue
        seen.add(number)
        if not encoded:
            if pending:
                out.append(decode_bytes(bytes(pending), charset))
                pending.clear()
            out.append(text)
            continue
        if len(seen) == 1 and text.count("'") >= 2:  # the first segment: charset'language'
            declared, _, text = text.split("'", 2)
            charset = declared or None
        pending += unquote_to_bytes(text)
    if pending:
        out.append(decode_bytes(bytes(pending), charset))
    return "".join(out)


_date_now: tuple[int, str] = (-1, "")


def date_now() -> str:
    """Now as an RFC 5322 date-time in local time (``Tue, 24 Nov 2026 22:40:01 +0000``), for
    the Date and Received fields the server writes. Made once a second: every delivery
    writes a Received field, and formatting a date is slower than the rest of it."""
    global _date_now
    second = int(time.time())
    if _date_now[0] != second:
        _date_now = (second, email.utils.formatdate(second, localtime=True))
    return _date_now[1]
