"""The ENVELOPE of a message with raw UTF-8 header fields (RFC 6532), for a session that did
not ``ENABLE UTF8=ACCEPT`` (RFC 6855 section 3) nor IMAP4rev2.

Such a client expects ASCII in ENVELOPE strings; RFC 6855 section 3 asks the server to
downgrade what it would send. Header values are sent as they are in the header, so a value
with 8-bit octets is rewritten here, and only such a value:

* the date, subject, display names, in-reply-to, message-id: each run of words holding
  8-bit octets becomes RFC 2047 encoded words (``=?utf-8?q?...?=`` or ``?b?``, the shorter,
  each at most 75 characters, split between characters); ASCII words, encoded words the
  sender wrote among them, stay as they are;
* an address's host: its IDNA A-label (``xn--...``) when it has one, else encoded words;
* an address's local part cannot be written in ASCII (RFC 6857 section 3.2 would rewrite
  the whole address as a group): it becomes encoded words too, which a client shows
  decoded and which cannot be mistaken for a deliverable address.

Octets that are not UTF-8 are taken as Latin-1 (what they most often are in old mail).

The work is on the ENVELOPE as the cache holds it (``structure.envelope``), written by our
own writer: parenthesized lists, ``NIL``, quoted strings and ``{n}`` literals, nothing else.
"""

from __future__ import annotations

import base64
import re

from protocols.imap.response import nstring

_TOKEN = re.compile(rb'\(|\)| |NIL|"((?:[^"\\]|\\.)*)"|\{(\d+)\}\r\n', re.DOTALL)
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[BbQq]\?[^?\s]*\?=\Z")
_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
MAX_WORD = 75  # RFC 2047 section 2
_PREFIX_B, _PREFIX_Q, _SUFFIX = "=?utf-8?b?", "=?utf-8?q?", "?="


def downgrade_envelope(envelope: bytes) -> bytes:
    """An ENVELOPE (as ``structure.envelope`` writes it) with every 8-bit string in ASCII."""
    if envelope.isascii():
        return envelope
    out: list[bytes] = []
    path: list[int] = []  # the index at each depth of the list being read
    pos = 0
    while pos < len(envelope):
        match = _TOKEN.match(envelope, pos)
        if match is None:
            raise ValueError(f"not an ENVELOPE at {pos}")
        token = match.group()
        pos = match.end()
        if token == b"(":
            if path:
                path[-1] += 1
            path.append(0)
            out.append(token)
        elif token == b")":
            path.pop()
            out.append(token)
        elif token == b" ":
            out.append(token)
        else:
            path[-1] += 1
            value: bytes | None = None
            if match.group(1) is not None:
                value = re.sub(rb"\\(.)", rb"\1", match.group(1))
            elif match.group(2) is not None:
                size = int(match.group(2))
                value = envelope[pos : pos + size]
                pos += size
            if value is None or value.isascii():
                out.append(token if match.group(2) is None else nstring(value))
                continue
            # an address is (name adl mailbox host) at depth 3; host is its 4th item
            is_host = len(path) == 3 and path[-1] == 4
            out.append(nstring(_host(value) if is_host else encode_words(_text(value))))
    return b"".join(out)


def _text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _host(value: bytes) -> str:
    text = _text(value)
    try:
        return text.encode("idna").decode("ascii")
    except UnicodeError:
        return encode_words(text)


def encode_words(text: str) -> str:
    """``text`` with each run of non-ASCII words as RFC 2047 encoded words."""
    words = text.split(" ")
    out: list[str] = []
    run: list[str] = []
    for word in words:
        if not word.isascii():
            run.append(word)
            continue
        if run:
            out.append(_encode_run(run, after_word=_after_encoded(out)))
            run = []
        out.append(word)
    if run:
        out.append(_encode_run(run, after_word=_after_encoded(out)))
    return " ".join(out)


def _after_encoded(out: list[str]) -> bool:
    return bool(out) and _ENCODED_WORD.match(out[-1].rsplit(" ", 1)[-1]) is not None


def _encode_run(words: list[str], *, after_word: bool) -> str:
    """Encoded words for ``words``. After another encoded word the space between them goes
    inside the first one: decoders drop white space between encoded words (RFC 2047
    section 6.2), and the separator would be lost."""
    text = " ".join(words)
    return " ".join(_encoded_words(" " + text if after_word else text))


def _encoded_words(text: str) -> list[str]:
    """As few encoded words as fit in 75 characters each, never splitting a character."""
    words: list[str] = []
    chunk = ""
    for char in text:
        if chunk and len(_encode(chunk + char)) > MAX_WORD:
            words.append(_encode(chunk))
            chunk = ""
        chunk += char
    if chunk:
        words.append(_encode(chunk))
    return words


def _encode(text: str) -> str:
    data = text.encode("utf-8")
    q = "".join(
        "_" if byte == 0x20 else chr(byte) if byte in _Q_SAFE else f"={byte:02X}" for byte in data
    )
    b = base64.b64encode(data).decode("ascii")
    return _PREFIX_Q + q + _SUFFIX if len(q) <= len(b) else _PREFIX_B + b + _SUFFIX
