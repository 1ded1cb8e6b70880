"""The client side of SMTP, sans I/O: replies, EHLO capabilities, commands, the DATA body.

Replies (RFC 5321 4.2): one or more lines ``CODE-text`` ending with ``CODE text`` (or a bare
``CODE``); every line of one reply carries the same code. An enhanced status code (RFC 2034,
RFC 3463) may open the text of each line. ``ReplyReader`` takes lines one at a time and gives
a ``Reply`` when the last line arrives; a line that breaks the grammar raises
``ProtocolError``, after which the connection is useless.

Commands follow RFC 5321 4.1.1 with the parameters of the extensions a server announced in
its EHLO reply: SIZE (RFC 1870), BODY=8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531), and RET,
ENVID, NOTIFY and ORCPT (RFC 3461, xtext-encoded).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

MAX_REPLY_LINES = 100  # a server that sends more is broken or hostile
MAX_LINE = 4096  # RFC 5321 4.5.3.1.5 allows 512; be lenient, but bounded

_LINE = re.compile(rb"^([2-5][0-9][0-9])([ -]|\r?\n|$)(.*?)\r?\n?$", re.DOTALL)
_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|$)")


class ProtocolError(Exception):
    """The server broke the SMTP grammar; the connection cannot go on."""


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    lines: tuple[str, ...]  # text of each line, without the code (and enhanced code)
    enhanced: str | None = None  # "2.1.5", from the first line, when the server gave one
    local: bool = False  # made up here (a refusal decided before sending), not received

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 400

    @property
    def transient(self) -> bool:
        return 400 <= self.code < 500

    @property
    def permanent(self) -> bool:
        return self.code >= 500

    @property
    def text(self) -> str:
        return " ".join(line for line in self.lines if line)

    def status(self) -> str:
        """The RFC 3463 status: the server's, or the class of the reply code with 0.0."""
        return self.enhanced or f"{self.code // 100}.0.0"

    def __str__(self) -> str:
        """As a DSN's Diagnostic-Code (RFC 3464 2.3.6): ``550 5.1.1 No such user``."""
        parts = [str(self.code)]
        if self.enhanced:
            parts.append(self.enhanced)
        if self.text:
            parts.append(self.text)
        return " ".join(parts)


class ReplyReader:
    """Collects the lines of one reply (RFC 5321 4.2.1)."""

    def __init__(self) -> None:
        self._code: int | None = None
        self._lines: list[str] = []
        self._enhanced: str | None = None

    def feed(self, line: bytes) -> Reply | None:
        """One line (with or without its CRLF); the whole reply once its last line came."""
        match = _LINE.match(line)
        if match is None:
            raise ProtocolError(f"not an SMTP reply line: {line[:80]!r}")
        code = int(match.group(1))
        if self._code is not None and code != self._code:
            raise ProtocolError(f"reply code changed from {self._code} to {code} in one reply")
        self._code = code
        text = match.group(3).decode("utf-8", "replace").strip()
        enhanced = _ENHANCED.match(text)
        # An enhanced code is one only when its class is the reply's class (RFC 2034 4).
        if enhanced and enhanced.group(1) == str(code)[0]:
            if not self._lines:
                self._enhanced = ".".join(enhanced.groups())
            text = text[enhanced.end() :]
        self._lines.append(text)
        if match.group(2) == b"-":
            if len(self._lines) >= MAX_REPLY_LINES:
                raise ProtocolError(f"a reply of more than {MAX_REPLY_LINES} lines")
            return None
        reply = Reply(code, tuple(self._lines), self._enhanced)
        self.__init__()  # ready for the next reply
        return reply


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a server's EHLO reply announced (RFC 5321 4.1.1.1: one keyword a line)."""

    starttls: bool = False
    pipelining: bool = False
    eightbitmime: bool = False
    smtputf8: bool = False
    dsn: bool = False
    enhanced_status_codes: bool = False
    size: int | None = None  # the announced limit; None: none announced (or 0: no limit)
    auth: tuple[str, ...] = field(default=())

    @classmethod
    def from_ehlo(cls, reply: Reply) -> Capabilities:
        found: dict[str, object] = {}
        for line in reply.lines[1:]:  # the first line is the server's greeting
            keyword, _, rest = line.partition(" ")
            keyword = keyword.upper()
            if keyword == "SIZE":
                found["size"] = int(rest) if rest.strip().isdigit() else None
            elif keyword == "AUTH":
                found["auth"] = tuple(m.upper() for m in rest.split())
            elif keyword in _FLAGS:
                found[_FLAGS[keyword]] = True
        return cls(**found)  # type: ignore[arg-type]


_FLAGS = {
    "STARTTLS": "starttls",
    "PIPELINING": "pipelining",
    "8BITMIME": "eightbitmime",
    "SMTPUTF8": "smtputf8",
    "DSN": "dsn",
    "ENHANCEDSTATUSCODES": "enhanced_status_codes",
}


def xtext(value: str) -> str:
    """RFC 3461 4: characters outside ``!``..``~``, and ``+`` and ``=``, as ``+XX``."""
    out = []
    for byte in value.encode("utf-8"):
        if 33 <= byte <= 126 and byte not in (0x2B, 0x3D):
            out.append(chr(byte))
        else:
            out.append(f"+{byte:02X}")
    return "".join(out)


def needs_smtputf8(mail_from: str, recipients: Iterable[str]) -> bool:
    """Non-ASCII in an envelope address needs SMTPUTF8 (RFC 6531 3.2)."""
    return not all(address.isascii() for address in (mail_from, *recipients))


def is_8bit(data: bytes) -> bool:
    """Whether the message has bytes above 127 (it needs 8BITMIME, RFC 6152)."""
    return not data.isascii()


def mail_command(
    mail_from: str,
    capabilities: Capabilities,
    *,
    size: int,
    eightbit: bool,
    smtputf8: bool,
    ret: str | None = None,
    envid: str | None = None,
) -> bytes:
    params = []
    if capabilities.size is not None:
        params.append(f"SIZE={size}")
    if eightbit and capabilities.eightbitmime:
        params.append("BODY=8BITMIME")
    if smtputf8 and capabilities.smtputf8:
        params.append("SMTPUTF8")
    if capabilities.dsn:
        if ret:
            params.append(f"RET={ret.upper()}")
        if envid:
            params.append(f"ENVID={xtext(envid)}")
    return _command(f"MAIL FROM:<{mail_from}>", params)


def rcpt_command(
    address: str,
    capabilities: Capabilities,
    *,
    notify: Sequence[str] = (),
    orcpt: str | None = None,
) -> bytes:
    params = []
    if capabilities.dsn:
        if notify:
            params.append("NOTIFY=" + ",".join(value.upper() for value in notify))
        if orcpt:
            kind, _, original = orcpt.partition(";")
            params.append(f"ORCPT={kind.strip() or 'rfc822'};{xtext(original.strip())}")
    return _command(f"RCPT TO:<{address}>", params)


def _command(verb: str, params: list[str]) -> bytes:
    return (" ".join([verb, *params]) + "\r\n").encode("utf-8")


def data_body(message: bytes) -> bytes:
    """The DATA content (RFC 5321 4.5.2): lines end in CRLF, a line that starts with ``.``
    gets another, and ``CRLF.CRLF`` ends it."""
    if not message:
        return b".\r\n"
    text = message.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    if not text.endswith(b"\r\n"):
        text += b"\r\n"
    if text.startswith(b"."):
        text = b"." + text
    return text.replace(b"\r\n.", b"\r\n..") + b".\r\n"
