"""Charset decoding shared by RFC 2047 encoded words and RFC 2231 parameters, and
``decode_header_value``: tolerant RFC 2047 decoding for SEARCH and Sieve.

Never raises: an unknown or unusable charset falls back to UTF-8, undecodable bytes become
U+FFFD, and a malformed encoded word is left as it stands.
"""

from __future__ import annotations

import binascii
import re

# Labels seen in real mail that Python does not know, or where a superset decodes more of
# what senders actually wrote (the WHATWG Encoding Standard makes the same substitutions).
_ALIASES = {
    "us-ascii": "utf-8",
    "ascii": "utf-8",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "iso-8859-8-i": "iso-8859-8",
    "x-sjis": "shift_jis",
    "unknown-8bit": "utf-8",
    "x-unknown": "utf-8",
    "unknown": "utf-8",
    "default": "utf-8",
}

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")


def decode_bytes(raw: bytes, charset: str | None) -> str:
    """``raw`` decoded from ``charset`` (an RFC 2231 ``*language`` suffix is ignored)."""
    label = (charset or "utf-8").split("*", 1)[0].strip().lower()
    label = _ALIASES.get(label, label)
    try:
        return raw.decode(label, "replace")
    except (LookupError, ValueError, TypeError):
        # LookupError: unknown or not a text codec; ValueError (UnicodeError): a codec that
        # refuses the "replace" handler (idna) or a label with a NUL in it.
        return raw.decode("utf-8", "replace")


def _word_bytes(encoding: str, text: str) -> bytes | None:
    """The octets of one encoded word's text, or None when it is not decodable."""
    try:
        octets = text.encode("ascii")
    except UnicodeEncodeError:
        octets = text.encode("utf-8")  # raw 8-bit inside a word: keep it, tolerantly
    if encoding in "qQ":
        return binascii.a2b_qp(octets, header=True)
    cleaned = _NOT_BASE64.sub(b"", octets)
    if not cleaned and octets.strip(b"= \t"):
        return None  # nothing but junk
    octets = cleaned + b"=" * (-len(cleaned) % 4)
    try:
        return binascii.a2b_base64(octets)
    except binascii.Error:
        return None


def decode_header_value(raw: str) -> str:
    """Decode RFC 2047 encoded words in an unstructured header value, tolerantly.

    The value is unfolded first. Whitespace between adjacent encoded words is dropped (RFC
    2047 section 6.2), and adjacent words in the same charset are joined before decoding, so
    a multi-byte character split across two words (a common encoder bug) survives. Encoded
    words glued to other text, missing base64 padding and unknown charsets are tolerated;
    an undecodable word stays as written. Text outside encoded words is returned as is.
    """
    value = _FOLD.sub("", raw)
    if "=?" not in value:
        return value
    out: list[str] = []
    pending_charset: str | None = None
    pending = bytearray()
    position = 0
    for match in _ENCODED_WORD.finditer(value):
        between = value[position : match.start()]
        position = match.end()
        charset, encoding, text = match.groups()
        octets = _word_bytes(encoding, text)
        if pending_charset is not None and (octets is None or between.strip(" \t\r\n")):
            out.append(decode_bytes(bytes(pending), pending_charset))
            pending_charset = None
            pending.clear()
        if pending_charset is None:
            out.append(between)
        if octets is None:
            out.append(match.group(0))
            continue
        charset = charset.lower()
        if pending_charset is not None and charset != pending_charset:
            out.append(decode_bytes(bytes(pending), pending_charset))
            pending.clear()
        pending_charset = charset
        pending += octets
    if pending_charset is not None:
        out.append(decode_bytes(bytes(pending), pending_charset))
    out.append(value[position:])
    return "".join(out)
