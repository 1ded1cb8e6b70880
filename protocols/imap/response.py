"""Writing server responses (RFC 9051 sections 7 and 9): strings that always survive the trip.

A string goes out as a quoted string when that is safe: printable 7-bit ASCII only (``"``
and ``\\`` escaped), and not too long. Anything else (CR, LF, 8-bit octets, long
values) is a literal ``{n}\\r\\n`` followed by the octets, which carries any octet but NUL.
RFC 3516 section 4.2 allows a literal8 ``~{n}`` only in a BINARY response
(``binary_literal``); elsewhere (``BODY[1]`` of a part holding NUL) a NUL is sent as 0x80,
as Dovecot does, so that the literal stays a literal and keeps its length. IMAP4rev1
clients cannot take 8-bit octets in quoted strings, and every client takes literals, so
8-bit text always travels as a literal. Human-readable ``resp-text`` can never be a literal,
so it is flattened to one line of 7-bit text instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from protocols.imap.mailbox_names import encode_name

CRLF = b"\r\n"
MAX_QUOTED = 1024  # longer strings are sent as literals, which clients read in one piece
SYSTEM_FLAG_ORDER = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "\\Recent")

_QUOTABLE = re.compile(rb"[\x20-\x7e]*")
_ATOM_SAFE = re.compile(rb"[!#$&'+,\-./0-9:;<=>?@A-Z\[^_`a-z|}~]+")
_NOT_TEXT = re.compile(r"[^\x20-\x7e]+")


def _bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def literal(data: bytes) -> bytes:
    """``{n}\\r\\n`` and the octets; a NUL, which a literal cannot carry, becomes 0x80."""
    if b"\x00" in data:
        data = data.replace(b"\x00", b"\x80")
    return b"{" + str(len(data)).encode() + b"}\r\n" + data


def binary_literal(data: bytes) -> bytes:
    """The content of a BINARY response: a literal8 ``~{n}`` when it holds NUL (RFC 3516
    section 4.2), else a literal."""
    prefix = b"~{" if b"\x00" in data else b"{"
    return prefix + str(len(data)).encode() + b"}\r\n" + data


def string(value: str | bytes) -> bytes:
    """A quoted string when safe, else a literal."""
    if (
        isinstance(value, str)
        and len(value) <= MAX_QUOTED
        and value.isascii()
        and value.isprintable()
        and '"' not in value
        and "\\" not in value
    ):
        return b'"' + value.encode("ascii") + b'"'  # the common case, decided in C
    data = _bytes(value)
    if len(data) <= MAX_QUOTED and _QUOTABLE.fullmatch(data):
        if b'"' in data or b"\\" in data:
            data = data.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
        return b'"' + data + b'"'
    return literal(data)


def nstring(value: str | bytes | None) -> bytes:
    return b"NIL" if value is None else string(value)


def astring(value: str | bytes) -> bytes:
    """An atom when the value is one (and not NIL), else a string."""
    data = _bytes(value)
    if _ATOM_SAFE.fullmatch(data) and data.upper() != b"NIL":
        return data
    return string(data)


def mailbox(name: str, utf8: bool) -> bytes:
    """A mailbox name, modified UTF-7 for IMAP4rev1 clients, always as a string."""
    return string(encode_name(name, utf8))


def flag_order(flag: str) -> tuple[int, str]:
    try:
        return (SYSTEM_FLAG_ORDER.index(flag), "")
    except ValueError:
        return (len(SYSTEM_FLAG_ORDER), flag)


def flags(names: Iterable[str]) -> bytes:
    """``(\\Seen $Label1)``: system flags first in a fixed order, then keywords sorted."""
    return b"(" + " ".join(sorted(names, key=flag_order)).encode("utf-8") + b")"


def text(value: str) -> bytes:
    """Human-readable text for a status response: one line of printable ASCII."""
    return _NOT_TEXT.sub("?", value.replace("\r", " ").replace("\n", " ")).encode("ascii")


def status(tag: str, condition: str, message: str, code: str | None = None) -> bytes:
    """``tag OK [CODE] text`` (or ``* OK ...`` with tag ``*``); a text is never empty."""
    head = f"{tag} {condition} "
    if code:
        head += f"[{code}] "
    return head.encode("ascii") + text(message or condition) + CRLF


def untagged(data: str | bytes) -> bytes:
    return b"* " + _bytes(data) + CRLF


def continuation(message: str | bytes = b"") -> bytes:
    """``+ text`` (for literals and IDLE) or ``+ base64`` (for SASL)."""
    data = _bytes(message)
    return b"+ " + data + CRLF if data else b"+ \r\n"
