"""The ``Authentication-Results`` header field (RFC 8601) and the removal of forged ones.

We add one field to each checked message, with the server's host name as the authserv-id::

    Authentication-Results: mail.example.com;
        iprev=pass policy.iprev=192.0.2.1 (mx.sender.example);
        spf=pass (sender is authorized) smtp.mailfrom=alice@sender.example;
        spf=pass smtp.helo=mx.sender.example;
        dkim=pass header.d=sender.example header.s=s1 header.b="Abc/dEf+";
        dmarc=pass header.from=sender.example policy.dmarc=reject;
        arc=none

One resinfo per line (folded with a tab), one ``dkim`` per signature; a message nothing was
checked for gets ``none`` (RFC 8601 2.2). A property value is written bare when it is a MIME
token or an address/domain (RFC 8601 2.2 ``pvalue``), else as a quoted-string; a comment is
the check's reason with anything that could end the comment or the field taken out.

Section 5: a header field claiming our authserv-id that arrives with a message is a forgery
(or a leftover of ours that a sender bounced back at us), and a reader that trusts our
authserv-id would believe it; every one is removed before ours is added. The authserv-id is
compared case-insensitively, after any comments, with or without a version suffix
(``mail.example.com 1;``). ``ARC-Authentication-Results`` is left alone: it belongs to the
ARC chain (RFC 8617) and is signed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

FIELD_NAME = b"authentication-results"
MAX_COMMENT = 200  # a reason longer than this is cut: it is for people, not machines

_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+\Z")
_DOT_ATOM = r"[!#$%&'*+\-/=?^_`{|}~0-9A-Za-z]+(?:\.[!#$%&'*+\-/=?^_`{|}~0-9A-Za-z]+)*"
_ADDRESS = re.compile(rf"(?:{_DOT_ATOM})?@[0-9A-Za-z](?:[0-9A-Za-z.\-]*[0-9A-Za-z])?\.?\Z")
_COMMENT_UNSAFE = re.compile(r"[()\\\x00-\x1f\x7f]+")
_FIELD_START = re.compile(rb"^([^\x00-\x20\x7f:]+)[ \t]*:", re.MULTILINE)
_COMMENT = re.compile(r"\((?:[^()\\]|\\.)*\)")


def pvalue(text: str) -> str:
    """A property value as RFC 8601 2.2 allows it: bare when a token or an address, else a
    quoted-string (RFC 2045 ``value``)."""
    if text and (_TOKEN.match(text) or _ADDRESS.match(text)):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = re.sub(r"[\r\n]+", " ", escaped)
    return f'"{escaped}"'


def comment(text: str | None) -> str:
    """`` (text)`` with nothing that could close the comment or the field; "" for none."""
    if not text:
        return ""
    clean = " ".join(_COMMENT_UNSAFE.sub(" ", text).split())
    if len(clean) > MAX_COMMENT:
        clean = clean[: MAX_COMMENT - 3].rstrip() + "..."
    return f" ({clean})" if clean else ""


@dataclass
class AuthenticationResults:
    """The resinfos of one message, in the order they were added."""

    authserv_id: str
    entries: list[str] = field(default_factory=list)

    def add(
        self,
        method: str,
        result: str,
        properties: Iterable[tuple[str, str | None]] = (),
        *,
        reason: str | None = None,
    ) -> None:
        """``method=result (reason) ptype.property=value ...``; properties with a None value
        are left out."""
        text = f"{method}={result}{comment(reason)}"
        for name, value in properties:
            if value is not None:
                text += f" {name}={pvalue(value)}"
        self.entries.append(text)

    def header(self) -> bytes:
        """The whole field, folded at each resinfo, ending in CRLF."""
        body = ";\r\n\t".join(self.entries) if self.entries else "none"
        return f"Authentication-Results: {self.authserv_id};\r\n\t{body}\r\n".encode()


def authserv_id_of(value: str) -> str:
    """The authserv-id of a field value: the first word after comments, unquoted."""
    text = value
    while True:  # nested comments: strip the innermost until none is left
        stripped = _COMMENT.sub(" ", text)
        if stripped == text:
            break
        text = stripped
    text = text.strip()
    if text.startswith('"'):
        end = text.find('"', 1)
        return text[1:end] if end > 0 else text[1:]
    return re.split(r"[\s;]", text, maxsplit=1)[0]


def remove_ours(message: bytes, authserv_id: str) -> tuple[bytes, int]:
    """``message`` without the Authentication-Results fields that carry ``authserv_id``
    (section 5), and how many were removed. Only the header block is looked at."""
    end = _header_end(message)
    wanted = authserv_id.lower().rstrip(".")
    kept: list[bytes] = []
    removed = 0
    starts = [m.start() for m in _FIELD_START.finditer(message, 0, end)]
    if not starts:
        return message, 0
    for index, start in enumerate(starts):
        stop = starts[index + 1] if index + 1 < len(starts) else end
        chunk = message[start:stop]
        name, _, value = chunk.partition(b":")
        if name.rstrip(b" \t").lower() == FIELD_NAME:
            text = value.decode("utf-8", "replace").replace("\r", "").replace("\n", " ")
            if authserv_id_of(text).lower().rstrip(".") == wanted:
                removed += 1
                continue
        kept.append(chunk)
    if not removed:
        return message, 0
    return message[: starts[0]] + b"".join(kept) + message[end:], removed


def _header_end(message: bytes) -> int:
    """Where the field lines end: the blank line (or the end of a message with no body)."""
    crlf = message.find(b"\r\n\r\n")
    lf = message.find(b"\n\n")
    ends = [i + (2 if i == crlf else 1) for i in (crlf, lf) if i >= 0]
    return min(ends) if ends else len(message)
