"""The ManageSieve command parser (RFC 5804 section 4), sans-IO.

Feed bytes with ``receive_data``; ``next_event`` returns a ``Line`` (a complete command, or
a SASL response: its atoms and strings), a ``BadLine`` (the client's error; the parser has
already skipped past it) or ``NEED_DATA``. The grammar, client to server::

    command   = command-name *(SP argument) CRLF
    argument  = atom / string
    string    = quoted / literal
    quoted    = DQUOTE *QUOTED-CHAR DQUOTE      ; "\\" escapes only "\\" and DQUOTE
    literal   = "{" number [ "+" ] "}" CRLF *OCTET

RFC 5804 clients send non-synchronizing literals ``{n+}``; ``{n}`` is accepted the same way
(the server never sends a continuation for a literal, as Dovecot and Cyrus behave). A bare LF
is accepted for CRLF.

Bounds: the text of one command outside its literals is at most ``max_line`` bytes (longer
is fatal: the stream cannot be resynchronized safely), a literal at most ``max_literal``
bytes. A longer literal is skipped without being buffered (up to ``max_discard`` bytes,
past which it is fatal) and the command is answered with ``BadLine(code="QUOTA/MAXSIZE")``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LITERAL = re.compile(rb"\{([0-9]{1,10})(\+?)\}\Z")
MAX_ITEMS = 32


@dataclass(frozen=True, slots=True)
class Atom:
    text: str  # a command name, a number, or another bare word


@dataclass(frozen=True, slots=True)
class String:
    data: bytes  # a quoted string's content, unescaped, or a literal's octets
    literal: bool = False


Item = Atom | String


@dataclass(frozen=True, slots=True)
class Line:
    items: tuple[Item, ...]


@dataclass(frozen=True, slots=True)
class BadLine:
    reason: str
    code: str | None = None  # a response code for the NO
    fatal: bool = False  # the session must end (BYE): the input cannot be followed


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = _NeedData()
Event = Line | BadLine | _NeedData


class Parser:
    def __init__(
        self, *, max_line: int = 8192, max_literal: int = 1 << 20, max_discard: int = 16 << 20
    ) -> None:
        self.max_line = max_line
        self.max_literal = max_literal
        self.max_discard = max_discard
        self._buffer = bytearray()
        self._scanned = 0
        self._items: list[Item] = []
        self._line_bytes = 0  # command text so far, outside literals
        self._literal = 0  # octets of the literal being read
        self._discard = 0  # octets of an oversized literal still to skip
        self._error: BadLine | None = None  # the answer once the skipped command ends
        self._dead = False

    def receive_data(self, data: bytes) -> None:
        if self._discard:
            skipped = min(self._discard, len(data))
            self._discard -= skipped
            data = data[skipped:]
        self._buffer += data

    def next_event(self) -> Event:
        if self._dead:
            return BadLine("the connection cannot continue", fatal=True)
        while True:
            if self._discard:
                return NEED_DATA
            if self._literal:
                if len(self._buffer) < self._literal:
                    return NEED_DATA
                data = bytes(self._buffer[: self._literal])
                del self._buffer[: self._literal]
                self._literal = 0
                self._scanned = 0
                self._items.append(String(data, literal=True))
                continue
            end = self._buffer.find(b"\n", self._scanned)
            if end < 0:
                self._scanned = len(self._buffer)
                if self._line_bytes + len(self._buffer) > self.max_line:
                    return self._fatal(f"command longer than {self.max_line} bytes")
                return NEED_DATA
            segment = bytes(self._buffer[: end + 1])
            del self._buffer[: end + 1]
            self._scanned = 0
            self._line_bytes += len(segment)
            if self._line_bytes > self.max_line:
                return self._fatal(f"command longer than {self.max_line} bytes")
            event = self._segment(segment.removesuffix(b"\n").removesuffix(b"\r"))
            if event is not None:
                return event

    def _fatal(self, reason: str) -> BadLine:
        self._dead = True
        return BadLine(reason, fatal=True)

    def _finish(self, event: Line | BadLine) -> Line | BadLine:
        self._items = []
        self._line_bytes = 0
        error, self._error = self._error, None
        return error if error is not None else event

    def _segment(self, text: bytes) -> Line | BadLine | None:
        """Tokens of one piece of a command (up to its end, or up to a literal)."""
        literal = _LITERAL.search(text)
        body = text[: literal.start()] if literal else text
        try:
            if self._error is None:
                self._items.extend(tokenize(body))
        except ValueError as exc:
            self._error = BadLine(str(exc))
        if len(self._items) > MAX_ITEMS:
            self._error = self._error or BadLine(f"more than {MAX_ITEMS} arguments")
            self._items = []
        if literal is None:
            return self._finish(Line(tuple(self._items)))
        size = int(literal.group(1))
        if size > self.max_literal:
            if size > self.max_discard:
                return self._fatal(f"a literal of {size} bytes")
            self._error = self._error or BadLine(
                f"a string of {size} bytes is over the limit of {self.max_literal}",
                "QUOTA/MAXSIZE",
            )
            skipped = min(size, len(self._buffer))
            del self._buffer[:skipped]
            self._discard = size - skipped
            return None
        self._literal = size
        if size == 0:
            self._items.append(String(b"", literal=True))
        return None


def tokenize(text: bytes) -> list[Item]:
    """Atoms and quoted strings separated by spaces; ValueError on malformed input."""
    items: list[Item] = []
    index, length = 0, len(text)
    while index < length:
        char = text[index]
        if char in b" \t":
            index += 1
            continue
        if char == 0x22:  # '"'
            out = bytearray()
            index += 1
            while True:
                if index >= length:
                    raise ValueError("unterminated quoted string")
                char = text[index]
                if char == 0x22:
                    index += 1
                    break
                if char == 0x5C:  # backslash
                    if index + 1 >= length or text[index + 1] not in b'"\\':
                        raise ValueError('only \\" and \\\\ may be escaped in a quoted string')
                    index += 1
                    char = text[index]
                if char in b"\r\n\x00":
                    raise ValueError("a quoted string cannot hold CR, LF or NUL")
                out.append(char)
                index += 1
            items.append(String(bytes(out)))
            continue
        end = index
        while end < length and text[end] not in b' \t"':
            end += 1
        word = text[index:end]
        if b"{" in word or b"}" in word or any(c < 0x21 or c > 0x7E for c in word):
            raise ValueError(f"unexpected {word[:20].decode('ascii', 'replace')!r}")
        items.append(Atom(word.decode("ascii")))
        index = end
    return items
