"""Server responses (RFC 5804 section 4): strings, response lines and the capability list.

::

    response-oksaid = "OK" [SP "(" resp-code ")"] [SP string] CRLF
    response-nobye  = ("NO" / "BYE") [SP "(" resp-code ")"] [SP string] CRLF
    string          = quoted / literal-s2c       ; literal-s2c = "{" number "}" CRLF *OCTET

A string is sent quoted when it is short and holds no CR, LF or NUL, otherwise as a literal.
"""

from __future__ import annotations

MAX_QUOTED = 1024  # RFC 5804: a quoted string holds at most 1024 octets


def string(value: str | bytes) -> bytes:
    data = value.encode("utf-8") if isinstance(value, str) else value
    if len(data) <= MAX_QUOTED and not any(c in data for c in b"\r\n\x00"):
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n" % len(data) + data


def response(kind: str, text: str | None = None, code: str | None = None) -> bytes:
    """``OK``, ``NO`` or ``BYE``, with an optional response code and human text."""
    out = kind.encode("ascii")
    if code is not None:
        out += b" (" + code.encode("utf-8") + b")"
    if text is not None:
        out += b" " + string(text)
    return out + b"\r\n"


def ok(text: str | None = None, code: str | None = None) -> bytes:
    return response("OK", text, code)


def no(text: str, code: str | None = None) -> bytes:
    return response("NO", text, code)


def bye(text: str, code: str | None = None) -> bytes:
    return response("BYE", text, code)


def capabilities(items: list[tuple[str, str | None]]) -> bytes:
    """One line per capability: ``"NAME"`` or ``"NAME" "value"``."""
    lines = []
    for name, value in items:
        lines.append(string(name) + (b" " + string(value) if value is not None else b""))
    return b"\r\n".join(lines) + b"\r\n"
