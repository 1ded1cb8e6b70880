"""The Sieve lexer (RFC 5228 section 2 and the ABNF of section 8.1).

Tokens carry the line and column (both from 1, columns in characters) where they start, so
that every syntax error can say where it is and what was expected there. The rules:

* White space is SP, HTAB, CR and LF. Comments are ``#`` to the end of the line and
  ``/* ... */`` (not nested).
* An identifier is a letter or ``_`` followed by letters, digits and ``_``; a tag is ``:``
  and an identifier. Both are case-insensitive and are lowercased here.
* A number is digits with an optional quantifier ``K``, ``M`` or ``G`` (2^10, 2^20, 2^30).
* A quoted string is ``"..."``; ``\\"`` and ``\\\\`` are escapes, and any other backslash
  is dropped with the character after it kept (section 2.4.2). It may span lines.
* A multi-line string is ``text:``, optional blanks, an optional ``#`` comment, a line break,
  then lines up to one holding a single ``.``; a line starting with ``.`` loses that dot
  (dot-stuffing). Its line breaks are CRLF whatever the script used.
* The punctuation ``; , ( ) { } [ ]``.

Scripts must use CRLF (RFC 5228 section 2.2), but scripts written by hand often use LF alone;
both are accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_NUMBER = (1 << 63) - 1

IDENTIFIER = "identifier"
TAG = "tag"
NUMBER = "number"
STRING = "string"
END = "end"
PUNCTUATION = frozenset(";,(){}[]")

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"[0-9]+([KkMmGg])?")
_BLANKS = re.compile(r"[ \t]*")
_QUANTIFIERS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, None: 1}


class SieveSyntaxError(ValueError):
    """A script that does not follow the grammar or breaks a rule the parser checks.

    ``str()`` gives ``line L, column C: what went wrong``, ready for a ManageSieve ``NO``.
    """

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(f"line {line}, column {column}: {message}")
        self.line = line
        self.column = column
        self.message = message


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # IDENTIFIER, TAG, NUMBER, STRING, END, or the punctuation character itself
    value: str | int
    line: int
    column: int
    multiline: bool = False  # a text: string (for error messages)

    def describe(self) -> str:
        """The token as an error message names it."""
        if self.kind == END:
            return "the end of the script"
        if self.kind == STRING:
            text = str(self.value)
            shown = text if len(text) <= 30 else text[:27] + "..."
            return "a multi-line string" if self.multiline else f'the string "{shown}"'
        if self.kind == NUMBER:
            return f"the number {self.value}"
        if self.kind == TAG:
            return f'the tag ":{self.value}"'
        if self.kind == IDENTIFIER:
            return f'"{self.value}"'
        return f'"{self.kind}"'


class Lexer:
    """Turns a script into tokens, one ``next()`` at a time."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.position = 0
        self.line = 1
        self.line_start = 0  # index of the first character of the current line

    @property
    def column(self) -> int:
        return self.position - self.line_start + 1

    def error(self, message: str, line: int | None = None, column: int | None = None) -> None:
        raise SieveSyntaxError(line or self.line, column or self.column, message)

    def _newlines(self, start: int, end: int) -> None:
        """Account for the line breaks in text[start:end] (the position moves to ``end``)."""
        count = self.text.count("\n", start, end)
        if count:
            self.line += count
            self.line_start = self.text.rindex("\n", start, end) + 1
        self.position = end

    def _skip_blank(self) -> None:
        text, length = self.text, len(self.text)
        while self.position < length:
            char = text[self.position]
            if char in " \t\r\n":
                end = self.position + 1
                while end < length and text[end] in " \t\r\n":
                    end += 1
                self._newlines(self.position, end)
            elif char == "#":
                end = text.find("\n", self.position)
                self.position = length if end < 0 else end
            elif text.startswith("/*", self.position):
                end = text.find("*/", self.position + 2)
                if end < 0:
                    self.error("unterminated comment: expected */ before the end of the script")
                self._newlines(self.position, end + 2)
            else:
                return

    def next(self) -> Token:
        self._skip_blank()
        text, start = self.text, self.position
        line, column = self.line, self.column
        if start >= len(text):
            return Token(END, "", line, column)
        char = text[start]
        if char in PUNCTUATION:
            self.position += 1
            return Token(char, char, line, column)
        if char == '"':
            return Token(STRING, self._quoted(), line, column)
        if char == ":":
            match = _IDENTIFIER.match(text, start + 1)
            if match is None:
                self.error("expected a tag name after ':'", line, column + 1)
            self.position = match.end()
            return Token(TAG, match.group().lower(), line, column)
        if "0" <= char <= "9":
            match = _NUMBER.match(text, start)
            assert match is not None
            self.position = match.end()
            digits = match.group().rstrip("KkMmGg")
            value = int(digits) * _QUANTIFIERS[(match.group(1) or "").lower() or None]
            if value > MAX_NUMBER:
                self.error(f"the number {match.group()} is too large", line, column)
            return Token(NUMBER, value, line, column)
        match = _IDENTIFIER.match(text, start)
        if match is None:
            self.error(f"unexpected character {char!r}")
        name = match.group().lower()
        if name == "text" and text.startswith(":", match.end()):
            self.position = match.end() + 1
            return Token(STRING, self._multiline(line, column), line, column, multiline=True)
        self.position = match.end()
        return Token(IDENTIFIER, name, line, column)

    def _quoted(self) -> str:
        """A quoted string; the position is on its opening quote."""
        text, line, column = self.text, self.line, self.column
        out: list[str] = []
        index = self.position + 1
        while True:
            stop = _next_special(text, index)
            if stop < 0:
                self.error("unterminated string: expected a closing '\"'", line, column)
            out.append(text[index:stop])
            if text[stop] == '"':
                self._newlines(self.position, stop + 1)
                return "".join(out)
            if stop + 1 >= len(text):
                self.error("unterminated string: expected a closing '\"'", line, column)
            out.append(text[stop + 1])  # \" and \\, and any other escaped character as itself
            index = stop + 2

    def _multiline(self, line: int, column: int) -> str:
        """A ``text:`` string; the position is just after the colon."""
        text = self.text
        index = _BLANKS.match(text, self.position).end()
        if text.startswith("#", index):
            index = text.find("\n", index)
            index = len(text) if index < 0 else index
        elif text.startswith("\r\n", index):
            index += 1
        if not text.startswith("\n", index):
            self.error(
                "expected a line break after 'text:'", line, column + 5 + index - self.position
            )
        index += 1
        lines: list[str] = []
        while True:
            end = text.find("\n", index)
            if end < 0:
                if text[index:].removesuffix("\r") == ".":  # the last line, without its break
                    self._newlines(self.position, len(text))
                    return "".join(lines)
                self.error(
                    "unterminated multi-line string: expected a line with a single '.'",
                    line,
                    column,
                )
            content = text[index:end].removesuffix("\r")
            if content == ".":
                self._newlines(self.position, end + 1)
                return "".join(lines)
            lines.append((content[1:] if content.startswith(".") else content) + "\r\n")
            index = end + 1


def _next_special(text: str, index: int) -> int:
    """Index of the next '"' or '\\' from ``index``, or -1."""
    quote = text.find('"', index)
    backslash = text.find("\\", index, quote if quote >= 0 else len(text))
    return backslash if backslash >= 0 else quote
