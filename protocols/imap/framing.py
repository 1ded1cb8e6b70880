"""Command framing: where one IMAP command ends, and when to ask for a literal. Sans-IO.

A command is one line, unless a line ends with a literal marker (RFC 9051 section 4.3):
``{n}`` (synchronizing: the client waits for a ``+`` continuation request before sending
the n octets), ``{n+}`` (RFC 7888 LITERAL+: the octets follow at once) or ``~{n}``
(RFC 3516 literal8, for APPEND). After the octets the command goes on with another line,
which may end with another marker, and so on.

The framer is fed lines and literal octets by the connection glue and answers with events:
``LiteralExpected`` (read ``size`` octets, after sending ``+`` when ``synchronizing``),
``CommandComplete`` (the whole command, as it was on the wire) or ``CommandRejected``.

Limits (RFC 9051 section 4.3 lets a server refuse a literal it cannot accept):

* every line and every literal of a command count towards ``max_command_length``, except
  the literals of APPEND, which may each be up to ``max_literal_size`` (the message itself;
  RFC 7889 APPENDLIMIT advertises it) and together up to ``max_append_size`` (MULTIAPPEND,
  RFC 3502, and the TEXT parts of CATENATE, RFC 4469, send several in one command);
* a synchronizing literal over its limit is refused before the client sends it: a tagged
  ``NO [TOOBIG]``, and the command is over (the client does not send the octets);
* a non-synchronizing literal over its limit is already on its way and cannot be skipped
  safely at any size, so the server says ``BYE [TOOBIG]`` and closes (RFC 7888 section 4
  allows exactly this).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from protocols.imap.lexer import TAG

_LITERAL_MARKER = re.compile(rb"(~?)\{(\d{1,19})(\+?)\}\r?\n\Z")
# The tag to answer a refusal with: only a well-formed one (else the refusal is untagged).
_COMMAND_NAME = re.compile(b"(" + TAG.pattern + rb") (?:[Uu][Ii][Dd] )?([A-Za-z]+)")


@dataclass(frozen=True, slots=True)
class CommandComplete:
    data: bytes  # every line and literal of the command, CRLFs included


@dataclass(frozen=True, slots=True)
class LiteralExpected:
    size: int
    synchronizing: bool  # send a continuation request ("+ ...") before reading it


@dataclass(frozen=True, slots=True)
class CommandRejected:
    tag: str  # the command's tag, or "*" when there is none to be read
    text: str
    close: bool  # the connection cannot be kept in step: BYE, and close it


FramerEvent = CommandComplete | LiteralExpected | CommandRejected


class CommandFramer:
    """Collects one command at a time; ``reset()`` (or a complete command) starts another."""

    def __init__(
        self, max_command_length: int, max_literal_size: int, max_append_size: int | None = None
    ) -> None:
        self.max_command_length = max_command_length
        self.max_literal_size = max_literal_size
        self.max_append_size = max_literal_size if max_append_size is None else max_append_size
        self.reset()

    def reset(self) -> None:
        self._parts: list[bytes] = []
        self._length = 0  # octets counted against max_command_length
        self._tag = "*"
        self._is_append = False
        self._append_total = 0  # the octets of the APPEND literals so far
        self._awaiting: int | None = None  # the size of the literal being waited for

    @property
    def line_limit(self) -> int:
        """The longest next line that keeps the command within its limit (at least 3 bytes,
        so that a line can always be read and the error reported properly)."""
        return max(self.max_command_length - self._length, 3)

    def feed_line(self, line: bytes) -> FramerEvent:
        """A line of the command, ending in LF (the glue reads with ``line_limit``)."""
        if self._awaiting is not None:
            raise RuntimeError("a literal was expected, not a line")
        if not self._parts:
            match = _COMMAND_NAME.match(line)
            if match is not None:
                self._tag = match.group(1).decode("ascii", "replace")
                self._is_append = match.group(2).upper() == b"APPEND"
        self._parts.append(line)
        self._length += len(line)
        if self._length > self.max_command_length:
            return self._reject("command too long", close=True)
        marker = _LITERAL_MARKER.search(line)
        if marker is None:
            data = b"".join(self._parts)
            self.reset()
            return CommandComplete(data)
        size = int(marker.group(2))
        synchronizing = not marker.group(3)
        text = None
        if not self._is_append:
            if self._length + size > self.max_command_length:
                text = f"literal of {size} octets is over the limit of {self.max_command_length}"
        elif size > self.max_literal_size:
            text = f"literal of {size} octets is over the limit of {self.max_literal_size}"
        elif self._append_total + size > self.max_append_size:
            text = f"the messages of this APPEND are over the limit of {self.max_append_size}"
        if text is not None:
            return self._reject(text, close=not synchronizing)
        self._awaiting = size
        return LiteralExpected(size, synchronizing)

    def feed_literal(self, data: bytes) -> None:
        """The octets of the literal announced by the last ``LiteralExpected``."""
        if self._awaiting is None or len(data) != self._awaiting:
            raise RuntimeError("literal octets that were not asked for")
        self._awaiting = None
        self._parts.append(data)
        if self._is_append:
            self._append_total += len(data)
        else:
            self._length += len(data)

    def _reject(self, text: str, *, close: bool) -> CommandRejected:
        event = CommandRejected(self._tag, text, close)
        self.reset()
        return event
