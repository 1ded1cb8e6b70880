"""Mailbox names on the wire: modified UTF-7 (IMAP4rev1) and UTF-8 (IMAP4rev2).

RFC 3501 section 5.1.3: an IMAP4rev1 client writes non-ASCII names in modified UTF-7.
Printable US-ASCII but ``&`` stands for itself, ``&`` is ``&-``, and any other run of
characters is ``&``, their UTF-16BE code units in base64 with ``,`` for ``/`` and no
padding, then ``-``. RFC 9051 section 5.1: an IMAP4rev2 client (one that sent
``ENABLE IMAP4rev2``) uses UTF-8 instead, where ``&`` is just ``&``.

The store keeps names as Unicode text with ``/`` between levels; ``INBOX`` is
case-insensitive (RFC 9051 section 5.1). ``check_name`` is the rule for new names.
"""

from __future__ import annotations

import base64
import re

INBOX = "INBOX"
DELIMITER = "/"
MAX_NAME_LENGTH = 512  # characters of a full name
MAX_DEPTH = 32  # hierarchy levels

_DIRECT = re.compile(r"[\x20-\x25\x27-\x7e]+")  # printable ASCII except "&"
_SHIFTED = re.compile(rb"&([A-Za-z0-9+,]*)-")


class BadMailboxName(ValueError):
    """A mailbox name that cannot be decoded, or that may not be created."""


def encode_utf7(name: str) -> bytes:
    """Unicode name -> modified UTF-7 bytes."""
    out: list[str] = []
    position = 0
    while position < len(name):
        match = _DIRECT.match(name, position)
        if match is not None:
            out.append(match.group())
            position = match.end()
            continue
        if name[position] == "&":
            out.append("&-")
            position += 1
            continue
        end = position
        while end < len(name) and not ("\x20" <= name[end] <= "\x7e"):
            end += 1
        units = name[position:end].encode("utf-16-be", "surrogatepass")
        encoded = base64.b64encode(units).rstrip(b"=").replace(b"/", b",")
        out.append("&" + encoded.decode("ascii") + "-")
        position = end
    return "".join(out).encode("ascii")


def decode_utf7(raw: bytes) -> str:
    """Modified UTF-7 bytes -> Unicode. Raises BadMailboxName on anything malformed, including
    a shifted run that encodes only printable ASCII (RFC 3501 forbids that spelling)."""
    out: list[str] = []
    position = 0
    while position < len(raw):
        amp = raw.find(b"&", position)
        if amp < 0:
            amp = len(raw)
        plain = raw[position:amp]
        if any(byte < 0x20 or byte > 0x7E for byte in plain):
            raise BadMailboxName("mailbox name is neither modified UTF-7 nor 7-bit")
        out.append(plain.decode("ascii"))
        if amp == len(raw):
            break
        match = _SHIFTED.match(raw, amp)
        if match is None:
            raise BadMailboxName("malformed modified UTF-7 in the mailbox name")
        body = match.group(1)
        if not body:
            out.append("&")
        else:
            padded = body.replace(b",", b"/") + b"=" * (-len(body) % 4)
            try:
                units = base64.b64decode(padded, validate=True)
                if len(units) % 2:
                    raise ValueError
                text = units.decode("utf-16-be")
            except ValueError:
                raise BadMailboxName("malformed modified UTF-7 in the mailbox name") from None
            if any("\x20" <= char <= "\x7e" for char in text):
                raise BadMailboxName("modified UTF-7 must not encode printable ASCII")
            out.append(text)
        position = match.end()
    return "".join(out)


def decode_name(raw: bytes, utf8: bool) -> str:
    """A mailbox name as the client sent it -> the store's name.

    In UTF-8 mode the bytes are UTF-8. Otherwise they are modified UTF-7, except that raw
    UTF-8 is accepted too (RFC 3501 forbids it, but some clients send it, and it cannot be
    mistaken for modified UTF-7, which is 7-bit)."""
    if utf8 or any(byte > 0x7F for byte in raw):
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadMailboxName("mailbox name is not valid UTF-8") from None
    else:
        name = decode_utf7(raw)
    return normalize_inbox(name)


def encode_name(name: str, utf8: bool) -> bytes:
    return name.encode("utf-8") if utf8 else encode_utf7(name)


def normalize_inbox(name: str) -> str:
    """``inbox``, ``Inbox/Sub`` -> ``INBOX``, ``INBOX/Sub``: INBOX is case-insensitive."""
    head, sep, rest = name.partition(DELIMITER)
    if head.upper() == INBOX:
        return INBOX + sep + rest
    return name


def check_name(name: str) -> None:
    """The rules for a name a client creates or renames to: not empty, no empty level
    (``a//b``, a leading or trailing ``/``), no wildcard (``*``, ``%``: they could never
    be listed by name), no control characters, bounded length and depth."""
    if not name:
        raise BadMailboxName("empty mailbox name")
    if len(name) > MAX_NAME_LENGTH:
        raise BadMailboxName("mailbox name too long")
    levels = name.split(DELIMITER)
    if any(not level for level in levels):
        raise BadMailboxName("empty level in the mailbox name")
    if len(levels) > MAX_DEPTH:
        raise BadMailboxName("mailbox hierarchy too deep")
    if any(char in "*%" or char < "\x20" or "\x7f" <= char < "\xa0" for char in name):
        raise BadMailboxName("mailbox names cannot contain wildcards or control characters")


def parents(name: str) -> list[str]:
    """Every superior name, outermost first: ``a/b/c`` -> ``["a", "a/b"]``."""
    levels = name.split(DELIMITER)
    return [DELIMITER.join(levels[:depth]) for depth in range(1, len(levels))]


def pattern_regex(reference: str, pattern: str) -> re.Pattern[str]:
    """LIST wildcards (RFC 9051 section 6.3.9): ``*`` matches anything, ``%`` anything but
    the hierarchy delimiter. The reference is prefixed to the pattern (a delimiter between
    them is not doubled); INBOX matches case-insensitively."""
    if reference and pattern.startswith(DELIMITER) and reference.endswith(DELIMITER):
        pattern = pattern[1:]
    full = normalize_inbox(reference + pattern)
    out = []
    for char in full:
        if char == "*":
            out.append(".*")
        elif char == "%":
            out.append(f"[^{re.escape(DELIMITER)}]*")
        else:
            out.append(re.escape(char))
    return re.compile("".join(out) + r"\Z", re.DOTALL)
