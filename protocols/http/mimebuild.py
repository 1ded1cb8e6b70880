"""Write header fields and MIME text parts (no I/O): what ``compose.py`` assembles.

The standard library's ``email`` package does all of this too, at about a millisecond per
message (it parses every field it is given, several times); injection is a hot path, so the
few shapes we produce are written here directly, and the tests parse every message we write
back with the ``email`` package and compare.

* Address lists (RFC 5322 3.4): ``a@b``, ``Name <a@b>``, ``"Last, First" <a@b>``, separated
  by commas; a display name that is not ASCII becomes encoded-words (RFC 2047), addresses
  themselves may be UTF-8 (RFC 6532).
* Unstructured fields (Subject, further headers): kept as they are when printable ASCII,
  encoded-words otherwise; folded at whitespace to about 78 characters (RFC 5322 2.1.1, 2.2.3).
* Text bodies: 7bit when ASCII with lines of at most 998 octets, else quoted-printable
  (RFC 2045 6.7) of UTF-8; ``multipart/alternative`` with a boundary that occurs in no part
  (RFC 2046 5.1.1).
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets

FOLD_AT = 78  # RFC 5322 2.1.1: lines SHOULD be no longer than 78 characters
MAX_LINE = 998  # ... and MUST be no longer than 998
ENCODED_CHUNK = 45  # bytes of UTF-8 per encoded-word: 60 base64 characters + 12 <= 75

# One mailbox of an address list, then a comma or the end. A display name is a quoted string
# or a phrase (any text without the specials that would make it something else).
_MAILBOX = re.compile(
    r"""\s*(?:
        (?P<name>"(?:[^"\\\r\n]|\\[^\r\n])*"|[^<>",;:@\\\r\n]*?)\s*<(?P<angle>[^<>\s]*)>
      | (?P<bare>[^<>\s",;:\\()]+)
    )\s*(?:,|$)""",
    re.VERBOSE,
)
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-]+"  # RFC 5322 3.2.3
_ATOM_PHRASE = re.compile(rf"{_ATEXT}(?: {_ATEXT})*")  # words a single space apart
_PRINTABLE = re.compile(r"[ -~\t]*")


class MimeError(ValueError):
    """The value cannot be written as asked; the message says why."""


def parse_address_list(value: str) -> list[tuple[str, str]]:
    """``"Ann <a@x>, b@y"`` -> ``[("Ann", "a@x"), ("", "b@y")]``; the addresses are not
    checked here."""
    found: list[tuple[str, str]] = []
    position = 0
    while position < len(value):
        match = _MAILBOX.match(value, position)
        if match is None or match.end() == position:
            raise MimeError(f"{value!r} is not an address list")
        if match.group("bare") is not None:
            found.append(("", match.group("bare")))
        else:
            name = match.group("name").strip(" \t")
            if name.startswith('"'):
                name = re.sub(r"\\(.)", r"\1", name[1:-1])
            found.append((name, match.group("angle")))
        position = match.end()
    if not found:
        raise MimeError("no address")
    return found


def encoded_words(text: str) -> list[str]:
    """RFC 2047 "B" encoded-words of UTF-8 text, each within 75 characters, never splitting
    a character."""
    words = []
    data = text.encode("utf-8")
    while data:
        cut = min(len(data), ENCODED_CHUNK)
        while cut < len(data) and (data[cut] & 0xC0) == 0x80:  # inside a character
            cut -= 1
        words.append("=?utf-8?b?" + base64.b64encode(data[:cut]).decode("ascii") + "?=")
        data = data[cut:]
    return words


def format_mailbox(name: str, address: str) -> str:
    if not name:
        return address
    if name.isascii() and _PRINTABLE.fullmatch(name):
        if _ATOM_PHRASE.fullmatch(name):
            return f"{name} <{address}>"
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + f'" <{address}>'
    return " ".join(encoded_words(name)) + f" <{address}>"


def _fold(name: str, tokens: list[str], separator: str) -> str:
    """``Name: token1<sep>token2...``, folded before a token when the line would pass 78."""
    line = f"{name}:"
    lines = []
    for index, token in enumerate(tokens):
        piece = token + (separator if index < len(tokens) - 1 else "")
        if len(line) + 1 + len(piece) > FOLD_AT and line.strip() != f"{name}:":
            lines.append(line)
            line = ""
        line += " " + piece
    lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def address_field(name: str, mailboxes: list[tuple[str, str]]) -> str:
    return _fold(name, [format_mailbox(n, a) for n, a in mailboxes], ",")


def unstructured_field(name: str, value: str) -> str:
    """An unstructured field (RFC 5322 3.2.5): as is when printable ASCII and short enough
    once folded at its spaces, otherwise encoded-words."""
    if "\r" in value or "\n" in value or "\0" in value:
        raise MimeError(f"{name}: line breaks are not allowed in a header value")
    if value.isascii() and _PRINTABLE.fullmatch(value) and "=?" not in value:
        folded = _fold(name, value.split(" "), "") if value else f"{name}: \r\n"
        if all(len(line) <= MAX_LINE for line in folded.split("\r\n")):
            return folded
    return _fold(name, encoded_words(value), "")


def _text_lines(text: str) -> list[str]:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline, written back below
    return lines


def text_part(text: str, subtype: str) -> tuple[str, bytes]:
    """(the part's MIME header fields, its body with CRLF line endings)."""
    lines = _text_lines(text)
    if text.isascii() and all(len(line) <= MAX_LINE for line in lines):
        body = "".join(line + "\r\n" for line in lines).encode("ascii")
        return f"Content-Type: text/{subtype}; charset=us-ascii\r\n" + (
            "Content-Transfer-Encoding: 7bit\r\n"
        ), body
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    encoded = binascii.b2a_qp(data, istext=True).replace(b"\n", b"\r\n")
    return f"Content-Type: text/{subtype}; charset=utf-8\r\n" + (
        "Content-Transfer-Encoding: quoted-printable\r\n"
    ), encoded


def alternative(parts: list[tuple[str, bytes]]) -> tuple[str, bytes]:
    """A multipart/alternative entity of the given parts, least preferred first."""
    while True:
        boundary = "=_" + secrets.token_hex(12)
        if not any(boundary.encode() in body for _, body in parts):
            break
    delimiter = b"--" + boundary.encode()
    # the CRLF before a delimiter belongs to it (RFC 2046 5.1.1), not to the part above
    body = b"".join(
        delimiter + b"\r\n" + head.encode() + b"\r\n" + data + b"\r\n" for head, data in parts
    )
    body += delimiter + b"--\r\n"
    return f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n', body
