"""The POP3 wire format, sans-IO: command lines in, status lines and multi-line blocks out.

RFC 1939 section 3: a command is a case-insensitive keyword of three or four characters,
possibly followed by arguments separated by single spaces, ending in CRLF (a bare LF is
accepted, as most servers do). A reply is a status line, ``+OK`` or ``-ERR`` with text;
RFC 2449 section 8 lets the text start with a response code in brackets (``-ERR [IN-USE]``).
A multi-line reply follows its ``+OK`` line with lines ending in CRLF and ends with a line
of a single ``.``; a line of the content that starts with ``.`` gets one more ``.`` in front
(byte-stuffing), which the client removes.

``PASS`` takes the rest of the line as the password, spaces included (RFC 1939 section 7
allows a server to, and passwords have spaces). Everything is decoded as UTF-8 (RFC 6856:
user names and passwords may be UTF-8); a line that is not UTF-8 is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# RFC 2449 section 4: 255 octets for a command line; an AUTH response may be longer
# (RFC 5034 section 4), so lines are read up to the SASL limit and others checked here.
MAX_COMMAND_LINE = 255
_CONTROL = re.compile("[\x00-\x1f\x7f]")  # one search in C, not a test per character


@dataclass(frozen=True, slots=True)
class Command:
    """One parsed command: the keyword upper-cased and its arguments."""

    name: str
    args: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BadCommand:
    """A line that is no command: the reason goes back in ``-ERR``."""

    reason: str


def parse_command(line: bytes, *, sasl_response: bool = False) -> Command | BadCommand:
    """Parse one line (with its line end). ``sasl_response``: inside an AUTH exchange the
    line is a base64 response, not a command, and may be longer; the caller handles it."""
    body = line[:-2] if line.endswith(b"\r\n") else line.rstrip(b"\n")
    if not body:
        return BadCommand("empty command")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return BadCommand("the command is not valid UTF-8")
    if _CONTROL.search(text):
        return BadCommand("control characters in the command")
    keyword, _, rest = text.partition(" ")
    name = keyword.upper()
    if not (3 <= len(name) <= 4 and name.isascii() and name.isalnum()):
        return BadCommand("unknown command")
    if name == "AUTH":  # RFC 5034 section 4: the initial response may exceed 255 octets
        args = tuple(rest.split(" ")) if rest else ()
        return Command(name, args)
    if len(body) + 2 > MAX_COMMAND_LINE:
        return BadCommand(f"command line longer than {MAX_COMMAND_LINE} octets")
    if name == "PASS":
        return Command(name, (rest,) if rest else ())
    args = tuple(rest.split(" ")) if rest else ()
    # RFC 2449 limits an argument to 40 octets, but addresses used as user names are longer.
    if "" in args:
        return BadCommand("malformed arguments")
    return Command(name, args)


def ok(text: str, code: str | None = None) -> bytes:
    return _status("+OK", text, code)


def err(text: str, code: str | None = None) -> bytes:
    return _status("-ERR", text, code)


def _status(indicator: str, text: str, code: str | None) -> bytes:
    # Text that came from elsewhere (an exception, a user name) never breaks the line.
    text = text.replace("\r", " ").replace("\n", " ")
    if code:
        return f"{indicator} [{code}] {text}\r\n".encode()
    return f"{indicator} {text}\r\n".encode()


def block(first: bytes, lines: Iterable[str]) -> bytes:
    """A multi-line reply of short text lines (CAPA, LIST, UIDL): ``first`` is its status
    line; the lines get CRLF and the terminating ``.``."""
    return first + "".join(f"{line}\r\n" for line in lines).encode() + b".\r\n"


def octets(data: bytes) -> int:
    """The size of a message as RETR sends it (RFC 1939 section 11): every line ending in
    CRLF (a bare LF is sent as CRLF, and a last line without an end gets one), byte-stuffing
    and the terminating ``.`` not counted: the octets the client ends up with."""
    size = len(data) + data.count(b"\n") - data.count(b"\r\n")
    return size + 2 if data and not data.endswith(b"\n") else size


@dataclass(frozen=True, slots=True)
class Shape:
    """What sending a message in a multi-line reply needs to know of it besides its bytes:
    its ``octets`` and whether a line of it starts with ``.`` (``dotted``: it needs stuffing).
    A body never changes, so a session learns this once (``shape``) and RETR then scans for
    nothing it already knows is not there."""

    octets: int
    dotted: bool


def shape(data: bytes) -> Shape:
    return Shape(octets(data), data.startswith(b".") or b"\n." in data)


def message_reply(status: bytes, data: bytes, known: Shape) -> bytes:
    """The whole reply to RETR: ``status``, then ``data`` (a whole message as stored, of this
    ``known`` shape) as the content of a multi-line reply, and the terminating ``.`` line.
    What the shape says is not there is not scanned for: a message stored as SMTP delivers it
    (CRLF line ends, so its octets are its length) without dot-led lines is copied once, into
    the reply, and not looked at."""
    if known.octets != len(data) + (2 if data and not data.endswith(b"\n") else 0):
        data = with_crlf(data)  # there are bare LFs: their count is what the octets add
    return b"".join((status, *_content(data, stuff=known.dotted)))


def with_crlf(data: bytes) -> bytes:
    """Bare LFs (a message stored by IMAP APPEND may have them) made CRLF."""
    if data.count(b"\n") == data.count(b"\r\n"):
        return data
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def stuffed(data: bytes) -> bytes:
    """``data`` (a message or a part of one, lines ending in CRLF) as the content of a
    multi-line reply: lines that start with ``.`` byte-stuffed, the last line ended, and the
    terminating ``.`` line added."""
    return b"".join(_content(data, stuff=True))


def _content(data: bytes, *, stuff: bool) -> tuple[bytes, bytes, bytes]:
    """``data`` as the content of a multi-line reply, in three parts to join: a stuffing dot
    for the first line, the lines (stuffed), and what ends the last line and the reply."""
    first = b""
    if stuff:
        first = b"." if data.startswith(b".") else b""
        # One scan when there is nothing to stuff (``replace`` counts first and then returns
        # its argument as it is); a test with ``in`` first would scan twice when there is.
        data = data.replace(b"\n.", b"\n..")
    end = b"\r\n.\r\n" if data and not data.endswith(b"\r\n") else b".\r\n"
    return first, data, end


def top(data: bytes, lines: int) -> bytes:
    """RFC 1939 section 7 TOP: the header, the blank line after it, and the first ``lines``
    lines of the body (``data`` already has CRLF line ends)."""
    end = data.find(b"\r\n\r\n")
    if end < 0:  # no body: the whole message is header
        return data
    head, body = data[: end + 4], data[end + 4 :]
    if lines <= 0 or not body:
        return head
    position = 0
    for _ in range(lines):
        found = body.find(b"\r\n", position)
        if found < 0:
            return head + body
        position = found + 2
    return head + body[:position]
