"""The lexical layer of IMAP commands (RFC 9051 section 4 and the formal syntax of section 9).

A ``Reader`` walks one complete command: the bytes of its lines with every literal's octets
inline, exactly as they crossed the wire (``{3}\\r\\nabc``). The framing layer
(``framing.py``) has already read each literal, so a literal here is a length prefix followed
by that many octets, and no read can run past the end of the command. Sans-IO: no sockets.

The atoms of the grammar, as implemented:

* ``atom``: one or more ATOM-CHAR, any CHAR (7-bit, not a control) but the atom-specials
  ``( ) { SP % * " \\ ]``. ``astring`` also allows ``]`` (resp-specials), ``list-mailbox``
  also allows the wildcards ``%`` and ``*``.
* ``quoted``: ``"`` ... ``"`` with ``\\"`` and ``\\\\`` escapes only; any other octet but CR,
  LF and NUL, UTF-8 included (IMAP4rev2 QUOTED-CHAR allows UTF8-2/3/4).
* ``literal``: ``{n}`` (synchronizing), ``{n+}`` (RFC 7888 non-synchronizing), and
  ``~{n}`` (RFC 3516 literal8, APPEND only) then CRLF and exactly n octets. Only ``~{``
  starts a literal8: ``~`` is an ATOM-CHAR, so ``~foo`` is an atom.
* ``string`` = quoted / literal; ``astring`` = atom-with-] / string; ``nstring`` = NIL /
  string; ``number`` fits 32 bits, ``number64`` 63 bits (RFC 9051 section 9).

Every error is a ``ParseError``: the client's fault, answered with ``BAD``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

MAX_NUMBER = 0xFFFFFFFF  # number, nz-number
MAX_NUMBER64 = 0x7FFFFFFFFFFFFFFF  # number64 (mod-sequences, RFC 9051 literal sizes)

# ATOM-CHAR: CHAR (%x01-7F) except CTL (%x00-1F, %x7F), SP and atom-specials.
_ATOM_CHARS = bytes(c for c in range(0x21, 0x7F) if chr(c) not in '(){%*"\\]')
_ATOM = re.compile(rb"[" + re.escape(_ATOM_CHARS) + rb"]+")
# 8-bit octets are not ATOM-CHARs, but some clients send UTF-8 unquoted (a search string,
# a mailbox name); they are taken as part of an astring, as other servers do.
_ASTRING_ATOM = re.compile(rb"[" + re.escape(_ATOM_CHARS + b"]") + rb"\x80-\xff]+")
_LIST_CHARS = re.compile(rb"[" + re.escape(_ATOM_CHARS + b"]%*") + rb"\x80-\xff]+")
_QUOTED_BODY = re.compile(rb'(?:[^"\\\r\n\x00]|\\["\\])*')
_ESCAPE = re.compile(rb'\\(["\\])')
_LITERAL = re.compile(rb"(~?)\{(\d{1,19})(\+?)\}\r?\n")
_NUMBER = re.compile(rb"\d{1,19}")
# tag = 1*<any ASTRING-CHAR except "+"> (RFC 9051 section 9)
TAG = re.compile(rb"[" + re.escape(bytes(c for c in _ATOM_CHARS if c != ord("+")) + b"]") + rb"]+")


T = TypeVar("T")


class ParseError(ValueError):
    """The command does not follow the grammar. ``code`` is an optional response code
    (``BADCHARSET``, ``CLIENTBUG``...) for the tagged BAD or NO."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class Reader:
    """A cursor over one complete command; every method consumes what it returns."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos
        # A command ends with CRLF (a bare LF is accepted, as many servers do).
        end = len(data)
        if data.endswith(b"\r\n"):
            end -= 2
        elif data.endswith(b"\n"):
            end -= 1
        self.end = end

    # -- looking ahead ----------------------------------------------------------------------

    def at_end(self) -> bool:
        return self.pos >= self.end

    def peek(self, count: int = 1) -> bytes:
        return self.data[self.pos : min(self.pos + count, self.end)]

    def peek_upper(self, word: bytes) -> bool:
        """Whether the next octets are ``word`` (ASCII case-insensitive) followed by a
        delimiter (SP, a parenthesis, a bracket or the end)."""
        stop = self.pos + len(word)
        if stop > self.end or self.data[self.pos : stop].upper() != word:
            return False
        return stop == self.end or self.data[stop : stop + 1] in (b" ", b")", b"(", b"[", b"]")

    # -- punctuation ------------------------------------------------------------------------

    def expect(self, token: bytes, what: str | None = None) -> None:
        if self.data.startswith(token, self.pos) and self.pos + len(token) <= self.end:
            self.pos += len(token)
            return
        raise ParseError(f"expected {what or repr(token.decode())}")

    def space(self) -> None:
        self.expect(b" ", "a space")

    def skip(self, token: bytes) -> bool:
        """Consume ``token`` if it comes next."""
        if self.data.startswith(token, self.pos) and self.pos + len(token) <= self.end:
            self.pos += len(token)
            return True
        return False

    def finish(self) -> None:
        """The command must end here."""
        if not self.at_end():
            raise ParseError("unexpected characters at the end of the command")

    # -- tokens -----------------------------------------------------------------------------

    def tag(self) -> str:
        match = TAG.match(self.data, self.pos, self.end)
        if match is None:
            raise ParseError("missing or invalid tag")
        self.pos = match.end()
        return match.group().decode("ascii")

    def atom(self) -> str:
        match = _ATOM.match(self.data, self.pos, self.end)
        if match is None:
            raise ParseError("expected an atom")
        self.pos = match.end()
        return match.group().decode("ascii")

    def keyword(self) -> str:
        """An atom, upper-cased: command names, search keys, fetch items, options."""
        return self.atom().upper()

    def number(self, limit: int = MAX_NUMBER) -> int:
        match = _NUMBER.match(self.data, self.pos, self.end)
        if match is None:
            raise ParseError("expected a number")
        value = int(match.group())
        if value > limit:
            raise ParseError("number out of range")
        self.pos = match.end()
        return value

    def nz_number(self, limit: int = MAX_NUMBER) -> int:
        value = self.number(limit)
        if value == 0:
            raise ParseError("expected a non-zero number")
        return value

    def quoted(self) -> bytes:
        self.expect(b'"', "a quoted string")
        match = _QUOTED_BODY.match(self.data, self.pos, self.end)
        assert match is not None  # the pattern matches the empty string
        self.pos = match.end()
        self.expect(b'"', "the end of the quoted string")
        body = match.group()
        return _ESCAPE.sub(rb"\1", body) if b"\\" in body else body

    def literal(self, *, binary: bool = False) -> bytes:
        """A literal's octets; ``binary`` also accepts a literal8 (``~{n}``)."""
        match = _LITERAL.match(self.data, self.pos)
        if match is None:
            raise ParseError("expected a literal")
        if match.group(1) and not binary:
            raise ParseError("a literal8 (~{n}) is not allowed here")
        size = int(match.group(2))
        start = match.end()
        if start + size > len(self.data):
            raise ParseError("literal shorter than announced")
        data = self.data[start : start + size]
        if not match.group(1) and b"\x00" in data:
            raise ParseError("NUL in a literal (use a literal8)")
        self.pos = start + size
        return data

    def at_literal(self) -> bool:
        """Whether a literal (``{``) or a literal8 (``~{``) comes next; a ``~`` followed by
        anything else begins an atom (``LIST "" ~foo``)."""
        following = self.peek(2)
        return following[:1] == b"{" or following == b"~{"

    def string(self) -> bytes:
        if self.peek() == b'"':
            return self.quoted()
        return self.literal()

    def astring(self) -> bytes:
        following = self.peek()
        if following == b'"':
            return self.quoted()
        if self.at_literal():
            return self.literal()
        match = _ASTRING_ATOM.match(self.data, self.pos, self.end)
        if match is None:
            raise ParseError("expected an atom or a string")
        self.pos = match.end()
        return match.group()

    def nstring(self) -> bytes | None:
        if self.peek_upper(b"NIL"):
            self.pos += 3
            return None
        return self.string()

    def list_mailbox(self) -> bytes:
        """A LIST pattern: list-chars (wildcards included) or a string."""
        following = self.peek()
        if following == b'"':
            return self.quoted()
        if self.at_literal():
            return self.literal()
        match = _LIST_CHARS.match(self.data, self.pos, self.end)
        if match is None:
            raise ParseError("expected a mailbox pattern")
        self.pos = match.end()
        return match.group()

    def text(self, what: str = "text") -> str:
        """An astring as UTF-8 text (user names, passwords, search strings)."""
        raw = self.astring()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError(f"{what} is not valid UTF-8") from None

    def parenthesized(self, item: Callable[[Reader], T], *, allow_empty: bool = True) -> list[T]:
        """``(item SP item ...)``: ``item`` is a function of this reader."""
        self.expect(b"(", "'('")
        items: list[T] = []
        if self.skip(b")"):
            if not allow_empty:
                raise ParseError("empty list")
            return items
        while True:
            items.append(item(self))
            if self.skip(b")"):
                return items
            self.space()
