"""The sample messages and checks the MIME parser's tests share (tests/unit/test_mime*.py).

Every message is built as bytes; ``assert_sound`` holds the invariants every parse keeps.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

from stalwart_py.mime import (
    MAX_PARTS,
    BodyPart,
    EnvelopeAddress,
    ParsedMessage,
    from_json,
    to_json,
)


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


def lf(text: str) -> bytes:
    return text.encode("utf-8")


def body(data: bytes, part: BodyPart) -> bytes:
    return data[part.body_offset : part.body_offset + part.body_length]


def header(data: bytes, part: BodyPart) -> bytes:
    return data[part.header_offset : part.header_offset + part.header_length]


def walk(message: ParsedMessage) -> Iterator[tuple[BodyPart, BodyPart | None]]:
    """Every part with its parent (None for a top-level body), enclosed messages included."""
    stack: list[tuple[BodyPart, BodyPart | None]] = [(message.body, None)]
    while stack:
        part, parent = stack.pop()
        yield part, parent
        stack.extend((child, part) for child in part.parts)
        if part.message is not None:
            stack.append((part.message.body, part))


def A(name, mailbox, host, route=None):  # reads like the ENVELOPE it builds
    return EnvelopeAddress(name, route, mailbox, host)


def assert_sound(data: bytes, message: ParsedMessage, offset: int = 0) -> None:
    """The invariants every parse keeps, whatever the input."""
    assert message.size == len(data) - offset
    assert message.body.header_offset == offset
    assert message.body.body_offset + message.body.body_length == len(data)
    count = 0
    for part, parent in walk(message):
        count += 1
        assert offset <= part.header_offset <= part.body_offset <= len(data)
        assert part.header_offset + part.header_length == part.body_offset
        assert part.body_offset + part.body_length <= len(data)
        assert part.size == part.body_length >= 0
        assert (part.type == "multipart") == bool(part.parts)
        has_message = part.type == "message" and part.subtype in ("rfc822", "global")
        assert has_message == (part.message is not None)
        assert (part.lines is not None) == (part.type == "text" or has_message)
        if parent is not None:
            assert parent.body_offset <= part.header_offset
            assert part.body_offset + part.body_length <= parent.body_offset + parent.body_length
        if part.message is not None:
            assert part.message.body.header_offset == part.body_offset
            assert part.message.size == part.body_length
    assert count <= MAX_PARTS
    assert from_json(to_json(message)) == message


SIMPLE = crlf(
    "Return-Path: <alice@example.net>\n"
    "From: Alice Example <alice@example.net>\n"
    "To: Bob <bob@example.com>\n"
    "Subject: Lunch\n"
    " tomorrow?\n"
    "Date: Mon, 1 Jan 2024 10:00:00 +0000\n"
    "Message-ID: <1@example.net>\n"
    "\n"
    "Hello Bob,\n"
    "lunch tomorrow?\n"
)


ALTERNATIVE = crlf(
    "From: a@example.net\n"
    "MIME-Version: 1.0\n"
    'Content-Type: multipart/alternative; boundary="=_alt"\n'
    "\n"
    "This is a multi-part message in MIME format.\n"
    "--=_alt\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: quoted-printable\n"
    "\n"
    "Caf=C3=A9 at noon.\n"
    "\n"
    "--=_alt\n"
    'Content-Type: text/html; charset="utf-8"\n'
    "\n"
    "<p>Caf&eacute; at noon.</p>\n"
    "--=_alt--\n"
    "epilogue\n"
)


PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(60))).decode()
PDF = base64.encodebytes(b"%PDF-1.4\n" + bytes(range(256)) * 2).decode()
MIXED = crlf(
    "From: Carol <carol@example.org>\n"
    "To: team@example.org\n"
    "Subject: Report\n"
    "Content-Type: multipart/mixed;\n"
    '\tboundary="outer"\n'
    "\n"
    "--outer\n"
    'Content-Type: multipart/related; boundary=related; type="multipart/alternative"\n'
    "\n"
    "--related\n"
    "Content-Type: multipart/alternative; boundary=alt\n"
    "\n"
    "--alt\n"
    "Content-Type: text/plain\n"
    "\n"
    "See the chart.\n"
    "--alt\n"
    "Content-Type: text/html\n"
    "\n"
    '<img src="cid:chart@example.org">\n'
    "--alt--\n"
    "--related\n"
    "Content-Type: image/png\n"
    "Content-ID: <chart@example.org>\n"
    "Content-Disposition: inline\n"
    "Content-Transfer-Encoding: base64\n"
    "Content-Description: The chart\n"
    "\n" + PNG + "\n"
    "--related--\n"
    "\n"
    "--outer\n"
    'Content-Type: application/pdf; name="report.pdf"\n'
    'Content-Disposition: attachment; filename="report.pdf"; size=531\n'
    "Content-Transfer-Encoding: BASE64\n"
    "Content-Language: en, de\n"
    "Content-Location: https://example.org/report.pdf\n"
    "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n"
    "\n" + PDF + "--outer--\n"
)


FORWARDED = crlf(
    "From: Dan <dan@example.com>\n"
    "To: eve@example.com\n"
    "Subject: Fwd: plans\n"
    "Content-Type: multipart/mixed; boundary=fwd\n"
    "\n"
    "--fwd\n"
    "\n"
    "See below.\n"
    "--fwd\n"
    'Content-Type: message/rfc822; name="plans.eml"\n'
    "Content-Disposition: attachment\n"
    "\n"
    "Date: Tue, 2 Jan 2024 09:30:00 +0100\n"
    'From: "Frank, Sr." <frank@example.net>\n'
    "Sender: secretary@example.net\n"
    "Reply-To: plans@example.net\n"
    "To: Dan <dan@example.com>, Gina <gina@example.com>\n"
    "Cc: undisclosed-recipients:;\n"
    "Bcc: boss@example.net\n"
    "Subject: plans\n"
    "Message-ID: <plans-1@example.net>\n"
    "In-Reply-To: <plans-0@example.com>\n"
    "Content-Type: multipart/alternative; boundary=inner\n"
    "\n"
    "--inner\n"
    "Content-Type: text/plain\n"
    "\n"
    "Plan A.\n"
    "Plan B.\n"
    "--inner\n"
    "Content-Type: text/html\n"
    "\n"
    "<p>Plan A.</p>\n"
    "--inner--\n"
    "\n"
    "--fwd--\n"
)
