"""Header edits of the "editheader" extension (RFC 5293) on the message bytes.

* ``addheader [:last] name value`` puts a field at the top of the header (after a leading
  ``Return-Path``, which RFC 5321 4.4 wants first and which the delivery put there: a
  choice the RFC leaves open) or, with ``:last``, at the end. A value with non-ASCII
  characters is written as RFC 2047 encoded words; long values are folded at spaces
  (section 4: the result must be a valid RFC 5322 field).
* ``deleteheader [:index n [:last]] [COMPARATOR] [MATCH-TYPE] name [value-patterns]``
  removes the occurrences of ``name`` (the n-th only, counted from the end with ``:last``)
  whose decoded value matches a pattern (all of them with no patterns).
* Protected fields (section 6: a script must not hide or forge trace and loop-prevention
  information): ``Received`` and ``Auto-Submitted`` are never added nor deleted, as in
  Pigeonhole, which ignores such an edit with a warning rather than failing the script;
  so do we (``ProtectedField`` is raised for the interpreter to log and go on).

Every edit gives new bytes; later tests see them and they are what is stored, redirected
or kept (section 5).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable

from stalwart_py.mime import decode_header_value
from stalwart_py.mime.headers import scan_header

PROTECTED = frozenset({"received", "auto-submitted"})
_FOLD_AT = 76
MAX_VALUE = 1 << 14  # characters of an added value; more is a runtime error, not a cut
FIELD_NAME_MAX = 200  # a longer name would not fit a line with its value (RFC 5322 2.1.1)
FIELD_NAME = re.compile(rf"[\x21-\x39\x3b-\x7e]{{1,{FIELD_NAME_MAX}}}\Z")


class ProtectedField(Exception):
    """An edit of a protected field, ignored."""


def _split(data: bytes) -> tuple[list[bytes], memoryview]:
    """The header fields (each with its folded lines and line ends) and what follows them
    (a view: the body is copied once per edit, when the new message is joined)."""
    _, fields_length = scan_header(data, 0, len(data))
    fields: list[bytes] = []
    for line in data[:fields_length].splitlines(keepends=True):
        if fields and line[:1] in (b" ", b"\t"):
            fields[-1] += line
        else:
            fields.append(line)
    return fields, memoryview(data)[fields_length:]


def _name(field: bytes) -> str:
    return field.partition(b":")[0].strip().decode("latin-1").lower()


def _value(field: bytes) -> str:
    raw = field.partition(b":")[2].decode("utf-8", "replace")
    return decode_header_value(re.sub(r"\r?\n", "", raw).strip(" \t\r\n"))


def _encode(value: str) -> str:
    """``value`` as a field body: encoded words when it is not ASCII (RFC 2047 5(1))."""
    # A line break in the value would end the field: it becomes a space (the value is
    # unstructured text, RFC 5293 section 4); other spacing is kept.
    value = re.sub(r"\r\n|[\r\n]", " ", value)
    if value.isascii() and all(len(word) < 900 for word in value.split(" ")):
        return value  # else encoded words, which fold: a line may not pass 998 octets
    words: list[str] = []
    chunk = ""
    for char in value:  # whole characters per word, each word at most 75 characters
        if len((chunk + char).encode()) > 33:
            words.append(chunk)
            chunk = ""
        chunk += char
    words.append(chunk)
    return " ".join(f"=?UTF-8?B?{base64.b64encode(w.encode()).decode()}?=" for w in words)


def _fold(name: str, body: str) -> bytes:
    """``name: body`` with CRLF + space inserted at spaces so lines stay near 78 octets."""
    lines: list[str] = []
    current, words_on_line = f"{name}:", 0
    for word in body.split(" "):
        if words_on_line and len(current) + 1 + len(word) > _FOLD_AT:
            lines.append(current)
            current, words_on_line = "", 0
        current += " " + word
        words_on_line += 1
    lines.append(current)
    return ("\r\n".join(lines) + "\r\n").encode()


def add_header(data: bytes, name: str, value: str, *, last: bool) -> bytes:
    if name.lower() in PROTECTED:
        raise ProtectedField(name)
    fields, rest = _split(data)
    field = _fold(name, _encode(value))
    if last:
        fields.append(field)
    else:
        position = 1 if fields and _name(fields[0]) == "return-path" else 0
        fields.insert(position, field)
    return b"".join([*fields, rest])


def delete_header(
    data: bytes,
    name: str,
    matches: Callable[[str], bool] | None,
    *,
    index: int | None = None,
    last: bool = False,
) -> bytes:
    """``data`` without the chosen occurrences of ``name``; ``matches`` tests a value
    (None: every occurrence)."""
    wanted = name.lower()
    if wanted in PROTECTED:
        raise ProtectedField(name)
    fields, rest = _split(data)
    positions = [number for number, field in enumerate(fields) if _name(field) == wanted]
    if index is not None:
        chosen = len(positions) - index if last else index - 1
        positions = [positions[chosen]] if 0 <= chosen < len(positions) else []
    drop = {p for p in positions if matches is None or matches(_value(fields[p]))}
    if not drop:
        return data
    kept = [field for number, field in enumerate(fields) if number not in drop]
    return b"".join([*kept, rest])
