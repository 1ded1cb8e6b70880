"""MIME parsing for the store's cache: structure, byte-exact offsets, ENVELOPE, numbering, JSON.

Every message is built as bytes here; every body slice is checked against the exact text.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stalwart_py.mime import (
    MAX_ADDRESSES,
    MAX_DEPTH,
    MAX_PARTS,
    BodyPart,
    Envelope,
    EnvelopeAddress,
    ParsedMessage,
    decode_header_value,
    find_part,
    from_json,
    parse_address_list,
    parse_message,
    split_multipart,
    to_json,
)
from stalwart_py.mime import parser as mime_parser
from stalwart_py.mime.headers import TEXT_PLAIN_DEFAULT, parse_content_type, parse_disposition


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


def test_simple_text_message():
    message = parse_message(SIMPLE)
    part = message.body
    assert (part.type, part.subtype, part.params) == ("text", "plain", (("charset", "us-ascii"),))
    assert part.encoding == "7bit"
    assert header(SIMPLE, part).endswith(b"<1@example.net>\r\n\r\n")
    assert header(SIMPLE, part).startswith(b"Return-Path:")
    assert body(SIMPLE, part) == b"Hello Bob,\r\nlunch tomorrow?\r\n"
    assert part.size == 29 and part.lines == 2
    assert message.size == len(SIMPLE)
    assert message.envelope.subject == "Lunch tomorrow?"
    assert message.envelope.date == "Mon, 1 Jan 2024 10:00:00 +0000"
    assert message.envelope.message_id == "<1@example.net>"
    assert part.parts == () and part.message is None
    assert_sound(SIMPLE, message)


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


def test_multipart_alternative():
    message = parse_message(ALTERNATIVE)
    top = message.body
    assert (top.type, top.subtype, top.params) == (
        "multipart",
        "alternative",
        (("boundary", "=_alt"),),
    )
    assert top.lines is None
    assert body(ALTERNATIVE, top).startswith(b"This is a multi-part") and top.body_length == (
        len(ALTERNATIVE) - top.body_offset
    )
    plain, html = top.parts
    assert (plain.type, plain.subtype, plain.params) == ("text", "plain", (("charset", "utf-8"),))
    assert plain.encoding == "quoted-printable"
    # the CRLF before "--=_alt" belongs to the delimiter; the blank line before it does not
    assert body(ALTERNATIVE, plain) == b"Caf=C3=A9 at noon.\r\n"
    assert plain.lines == 1
    assert header(ALTERNATIVE, plain) == (
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    )
    assert body(ALTERNATIVE, html) == b"<p>Caf&eacute; at noon.</p>"
    assert html.lines == 1 and html.size == len(b"<p>Caf&eacute; at noon.</p>")
    assert html.params == (("charset", "utf-8"),)
    assert_sound(ALTERNATIVE, message)


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


def test_nested_multipart_with_inline_image_and_base64_attachment():
    message = parse_message(MIXED)
    top = message.body
    assert (top.type, top.subtype) == ("multipart", "mixed")
    related, pdf = top.parts
    assert (related.subtype, related.param("type")) == ("related", "multipart/alternative")
    alternative, image = related.parts
    plain, html = alternative.parts
    assert body(MIXED, plain) == b"See the chart."
    assert plain.params == () and plain.lines == 1
    assert body(MIXED, html) == b'<img src="cid:chart@example.org">'
    # the inner multipart's body ends before the CRLF preceding "--related"
    assert body(MIXED, alternative).endswith(b"--alt--")
    assert (image.type, image.subtype, image.encoding) == ("image", "png", "base64")
    assert image.id == "<chart@example.org>"
    assert image.description == "The chart"
    assert image.disposition == ("inline", ())
    assert image.lines is None
    assert body(MIXED, image) == PNG.encode()
    assert base64.b64decode(body(MIXED, image)).startswith(b"\x89PNG")
    assert body(MIXED, related).endswith(b"--related--\r\n")  # the blank line before --outer
    assert (pdf.type, pdf.subtype, pdf.encoding) == ("application", "pdf", "base64")
    assert pdf.params == (("name", "report.pdf"),)
    assert pdf.disposition == ("attachment", (("filename", "report.pdf"), ("size", "531")))
    assert pdf.language == ("en", "de")
    assert pdf.location == "https://example.org/report.pdf"
    assert pdf.md5 == "Q2hlY2sgSW50ZWdyaXR5IQ=="
    # the base64 text ends with a line break of its own; only the one before "--outer" goes
    assert body(MIXED, pdf) == PDF.replace("\n", "\r\n").encode()[:-2]
    assert base64.b64decode(body(MIXED, pdf)).startswith(b"%PDF-1.4")
    assert find_part(message, (1,)) is related
    assert find_part(message, (1, 1)) is alternative
    assert find_part(message, (1, 1, 2)) is html
    assert find_part(message, (1, 2)) is image
    assert find_part(message, (2,)) is pdf
    assert_sound(MIXED, message)


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


def test_message_rfc822_attachment():
    message = parse_message(FORWARDED)
    note, attached = message.body.parts
    assert (note.type, note.subtype, note.header_length) == ("text", "plain", 2)
    assert body(FORWARDED, note) == b"See below."
    assert (attached.type, attached.subtype, attached.params) == (
        "message",
        "rfc822",
        (("name", "plans.eml"),),
    )
    enclosed = attached.message
    assert enclosed is not None
    assert body(FORWARDED, attached).startswith(b"Date: Tue, 2 Jan 2024")
    assert body(FORWARDED, attached).endswith(b"--inner--\r\n")
    assert attached.lines == body(FORWARDED, attached).count(b"\n")
    assert enclosed.size == attached.body_length
    assert enclosed.envelope == Envelope(
        date="Tue, 2 Jan 2024 09:30:00 +0100",
        subject="plans",
        from_=(A("Frank, Sr.", "frank", "example.net"),),
        sender=(A(None, "secretary", "example.net"),),
        reply_to=(A(None, "plans", "example.net"),),
        to=(A("Dan", "dan", "example.com"), A("Gina", "gina", "example.com")),
        cc=(A(None, "undisclosed-recipients", None), A(None, None, None)),
        bcc=(A(None, "boss", "example.net"),),
        in_reply_to="<plans-0@example.com>",
        message_id="<plans-1@example.net>",
    )
    inner = enclosed.body
    assert inner.header_offset == attached.body_offset
    assert header(FORWARDED, inner).endswith(b"boundary=inner\r\n\r\n")
    plain, html = inner.parts
    assert body(FORWARDED, plain) == b"Plan A.\r\nPlan B."
    assert plain.lines == 2
    assert body(FORWARDED, html) == b"<p>Plan A.</p>"
    assert find_part(message, (2,)) is attached
    assert find_part(message, (2, 1)) is plain  # descends into the enclosed message
    assert find_part(message, (2, 2)) is html
    assert find_part(message, (2, 3)) is None
    assert find_part(message, (1, 1)) is None  # a text part has no subparts
    assert message.envelope.subject == "Fwd: plans"
    assert_sound(FORWARDED, message)


def test_find_part_numbering():
    simple = parse_message(SIMPLE)
    assert find_part(simple, (1,)) is simple.body  # non-multipart: part 1 is the body
    assert find_part(simple, (2,)) is None
    assert find_part(simple, (1, 1)) is None
    assert find_part(simple, ()) is simple.body
    assert find_part(simple, (0,)) is None
    assert find_part(simple, (-1,)) is None
    # a message/rfc822 whose enclosed body is not multipart: n.1 is that body
    data = crlf(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\n\n"
        "Subject: inner\n\ninner text\n--b--\n"
    )
    message = parse_message(data)
    attached = find_part(message, (1,))
    assert attached is not None and attached.message is not None
    assert find_part(message, (1, 1)) is attached.message.body
    assert body(data, attached.message.body) == b"inner text"
    assert find_part(message, (1, 2)) is None
    assert find_part(message, (1, 1, 1)) is None
    # a top-level message/rfc822 body: part 1 is the body, 1.1 the enclosed body
    data = crlf("Content-Type: message/rfc822\n\nSubject: x\n\ny\n")
    message = parse_message(data)
    assert find_part(message, (1,)) is message.body
    assert find_part(message, (1, 1)) is message.body.message.body  # type: ignore[union-attr]


def test_envelope_addresses():
    data = crlf(
        'From: "Doe, Jane" <jane.doe@example.com>\n'
        "Sender:\n"
        'To: A Group: "q\\"uoted" <q@example.com>, plain@example.com;, after@example.com,\n'
        " root, <@relay1.example,@relay2.example:route@example.com>\n"
        'Cc: "john smith"@example.com (John Smith), "x"@example.com, <>\n'
        "Bcc: Empty:;\n"
        "Reply-To: =?utf-8?q?J=C3=B6rg?= <joerg@example.de>\n"
        "\n"
    )
    envelope = parse_message(data).envelope
    assert envelope.from_ == (A("Doe, Jane", "jane.doe", "example.com"),)
    assert envelope.sender == envelope.from_  # empty Sender: defaults to From
    assert envelope.reply_to == (A("=?utf-8?q?J=C3=B6rg?=", "joerg", "example.de"),)
    assert envelope.to == (
        A(None, "A Group", None),
        A('q"uoted', "q", "example.com"),
        A(None, "plain", "example.com"),
        A(None, None, None),
        A(None, "after", "example.com"),
        A(None, "root", ""),
        A(None, "route", "example.com", route="@relay1.example,@relay2.example"),
    )
    assert envelope.cc == (
        A("John Smith", '"john smith"', "example.com"),
        A(None, "x", "example.com"),
        A(None, "", ""),
    )
    assert envelope.bcc == (A(None, "Empty", None), A(None, None, None))
    assert envelope.to[0].is_group_start and envelope.to[3].is_group_end
    assert envelope.date is None and envelope.subject is None and envelope.message_id is None


def test_envelope_without_fields_and_odd_addresses():
    envelope = parse_message(b"X-Nothing: here\r\n\r\nbody").envelope
    assert envelope == Envelope(None, None, None, None, None, None, None, None, None, None)
    odd = crlf(
        "From: (Comment only)\n"
        "To: Unclosed <a@example.com, b@example.com\n"
        "Cc: Group: a@example.com\n"
        'Bcc: "unterminated <x@y>\n'
        "Subject:\n"
        "\n"
    )
    envelope = parse_message(odd).envelope
    assert envelope.from_ is None and envelope.sender is None and envelope.reply_to is None
    assert envelope.to == (A("Unclosed", "a", "example.com"), A(None, "b", "example.com"))
    assert envelope.cc == (A(None, "Group", None), A(None, "a", "example.com"), A(None, None, None))
    assert envelope.bcc == (A(None, '"unterminated <x@y>"', ""),)
    assert envelope.subject == ""


def test_envelope_address_limit():
    many = ", ".join(f"u{i}@example.com" for i in range(MAX_ADDRESSES + 50))
    envelope = parse_message(f"To: {many}\r\n\r\n".encode()).envelope
    assert envelope.to is not None and len(envelope.to) == MAX_ADDRESSES


def test_non_ascii_headers():
    data = (
        b"From: =?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>\r\n"
        b"To: J\xc3\xb6rg M\xc3\xbcller <joerg@example.de>\r\n"
        b"Subject: =?utf-8?b?w4lsw6h2ZQ==?= =?utf-8?q?_na=C3=AFve?=\r\n"
        b"Cc: Ren\xe9 <rene@example.fr>\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Disposition: attachment;\r\n filename*0*=utf-8''%E2%82%AC%20;\r\n"
        b" filename*1=rates.txt\r\n"
        b"Content-Description: Gr\xc3\xbc\xc3\x9fe\r\n"
        b"\r\n"
        b"caf\xc3\xa9\r\n"
    )
    message = parse_message(data)
    envelope = message.envelope
    assert envelope.from_ == (A("=?ISO-8859-1?Q?Andr=E9?= Pirard", "PIRARD", "vm1.ulg.ac.be"),)
    assert decode_header_value(envelope.from_[0].name or "") == "André Pirard"
    assert envelope.to == (A("Jörg Müller", "joerg", "example.de"),)  # raw UTF-8 kept (RFC 6532)
    assert envelope.cc == (A("Ren\ufffd", "rene", "example.fr"),)  # invalid UTF-8: U+FFFD
    assert envelope.subject == "=?utf-8?b?w4lsw6h2ZQ==?= =?utf-8?q?_na=C3=AFve?="
    assert decode_header_value(envelope.subject) == "Élève naïve"
    assert message.body.disposition == ("attachment", (("filename", "€ rates.txt"),))
    assert message.body.description == "Grüße"
    assert body(data, message.body) == b"caf\xc3\xa9\r\n"
    assert_sound(data, message)


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("plain text", "plain text"),
        ("=?utf-8?q?a?= =?utf-8?q?b?=", "ab"),  # whitespace between words is dropped
        ("=?utf-8?q?a?=\r\n =?utf-8?q?b?=", "ab"),  # also when folded
        ("x =?utf-8?q?a?= y", "x a y"),
        ("=?utf-8?b?4oI=?= =?utf-8?b?rA==?=", "€"),  # a character split across two words
        ("=?UTF-8?Q?hello_world?=", "hello world"),
        ("=?utf-8?b?aGVsbG8?=", "hello"),  # missing padding
        ("=?x-no-such-charset?q?caf=C3=A9?=", "café"),  # unknown charset: UTF-8
        ("=?iso-8859-1?q?caf=E9?= =?utf-8?q?_ok?=", "café ok"),
        ("=?utf-8*en?q?english?=", "english"),  # RFC 2231 language suffix
        ("=?utf-8?b?!!!?=", "=?utf-8?b?!!!?="),  # undecodable: left as is
        ("pre=?utf-8?q?glued?=post", "pregluedpost"),
        ("=?gb2312?b?1tDOxA==?=", "中文"),
        ("=?utf-8?q?bad=ZZ?=", "bad=ZZ"),
        ("=?idna?q?x?= =?utf-16?b?/w==?=", "x\ufffd"),
    ],
)
def test_decode_header_value(raw: str, decoded: str):
    assert decode_header_value(raw) == decoded


def test_parse_address_list_directly():
    assert parse_address_list(None) is None
    assert parse_address_list("") is None
    assert parse_address_list(" , ,") is None
    assert parse_address_list("a@b (Ann), Bob <bob@c>") == (
        A("Ann", "a", "b"),
        A("Bob", "bob", "c"),
    )
    assert parse_address_list("g: ;") == (A(None, "g", None), A(None, None, None))
    assert parse_address_list('"a\\\\b"@c') == (A(None, '"a\\\\b"', "c"),)


def test_parse_content_type_directly():
    assert parse_content_type(None, TEXT_PLAIN_DEFAULT) == TEXT_PLAIN_DEFAULT
    assert parse_content_type('Multipart/Mixed; Boundary="A;B"', TEXT_PLAIN_DEFAULT) == (
        "multipart",
        "mixed",
        (("boundary", "A;B"),),
    )
    assert parse_content_type("", TEXT_PLAIN_DEFAULT) == TEXT_PLAIN_DEFAULT


def test_rfc2231_first_segment_alone_carries_the_charset():
    value = "attachment; filename*0*=utf-8''; filename*1*=it's'ok%C3%A9; filename*2=.txt"
    assert parse_disposition(value) == ("attachment", (("filename", "it's'oké.txt"),))
    value = "attachment; filename*1*=%E9; filename*0*=iso-8859-1'en'caf"  # out of order
    assert parse_disposition(value) == ("attachment", (("filename", "café"),))


def test_rfc2231_parameters():
    data = crlf(
        "Content-Type: application/octet-stream;\n"
        " name*=iso-8859-1'fr'd%E9j%E0%20vu.txt;\n"
        ' name="fallback.txt"; title*1="second"; title*0="first ";\n'
        ' junk; charset = "a\\"b" (comment); empty=; Odd=unquoted value (x)\n'
        "\n"
    )
    part = parse_message(data).body
    assert part.params == (
        ("name", "déjà vu.txt"),
        ("title", "first second"),
        ("charset", 'a"b'),
        ("empty", ""),
        ("odd", "unquoted value"),
    )


MISSING_CLOSE = crlf(
    "Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b\nContent-Type: text/html\n\ntwo\n"
)


def test_missing_final_boundary():
    message = parse_message(MISSING_CLOSE)
    one, two = message.body.parts
    assert body(MISSING_CLOSE, one) == b"one"
    assert body(MISSING_CLOSE, two) == b"two\r\n"  # runs to the end of the enclosing body
    assert two.lines == 1
    assert_sound(MISSING_CLOSE, message)


def test_nested_multipart_missing_final_boundary_stops_at_the_parent_delimiter():
    data = crlf(
        "Content-Type: multipart/mixed; boundary=outer\n\n"
        "--outer\nContent-Type: multipart/alternative; boundary=inner\n\n"
        "--inner\n\nfirst\n--inner\n\nsecond\n"
        "--outer\n\nthird\n--outer--\n"
    )
    message = parse_message(data)
    inner, third = message.body.parts
    assert [body(data, p) for p in inner.parts] == [b"first", b"second"]
    assert body(data, third) == b"third"
    assert_sound(data, message)


@pytest.mark.parametrize(
    "data",
    [
        crlf("Content-Type: multipart/mixed\n\n--b\n\ntext\n--b--\n"),  # no boundary parameter
        crlf('Content-Type: multipart/mixed; boundary=""\n\n--\n\ntext\n'),  # empty boundary
        crlf("Content-Type: multipart/mixed; boundary=zz\n\nno delimiter at all\n"),
        crlf("Content-Type: multipart/mixed; boundary=zz\n\n--zz--\n"),  # close only: no part
    ],
)
def test_multipart_that_cannot_be_split_is_one_opaque_text_part(data: bytes):
    message = parse_message(data)
    part = message.body
    assert (part.type, part.subtype, part.parts) == ("text", "plain", ())
    assert part.params == (("charset", "us-ascii"),)
    assert body(data, part) == data[data.index(b"\r\n\r\n") + 4 :]
    assert find_part(message, (1,)) is part
    assert_sound(data, message)


def test_preamble_epilogue_and_garbage():
    data = crlf(
        "Content-Type: multipart/mixed; boundary=b\n\n"
        "garbage --b not at line start\n"
        "--bx is a longer boundary, not ours\n"
        "--b\n\nreal part\n--b--\n"
        "--b\n\nepilogue part that is not a part\n"
    )
    message = parse_message(data)
    (part,) = message.body.parts
    assert body(data, part) == b"real part"
    assert body(data, message.body).endswith(b"not a part\r\n")
    assert_sound(data, message)


def test_lf_only_and_mixed_line_endings():
    data = lf(
        "From: a@example.com\nContent-Type: multipart/mixed; boundary=b\n\n"
        "--b\nContent-Type: text/plain\n\nline one\nline two\n--b\r\n"
        "Content-Type: text/plain\r\n\r\ncrlf part\r\n--b--\n"
    )
    message = parse_message(data)
    assert header(data, message.body).endswith(b"boundary=b\n\n")
    one, two = message.body.parts
    assert header(data, one) == b"Content-Type: text/plain\n\n"
    assert body(data, one) == b"line one\nline two"
    assert one.lines == 2
    assert header(data, two) == b"Content-Type: text/plain\r\n\r\n"
    assert body(data, two) == b"crlf part"
    assert message.envelope.from_ == (A(None, "a", "example.com"),)
    assert_sound(data, message)


def test_boundary_with_trailing_whitespace():
    data = crlf(
        'Content-Type: multipart/mixed; boundary="sep "\n\n'
        "--sep \t\n\nfirst\n--sep\n\nsecond\n--sep--  \n"
    )
    message = parse_message(data)
    assert [body(data, p) for p in message.body.parts] == [b"first", b"second"]
    assert_sound(data, message)


def test_adjacent_delimiters_give_an_empty_part():
    data = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\n--b\n\nx\n--b--")
    message = parse_message(data)
    empty, x = message.body.parts
    assert (empty.header_length, empty.body_length, empty.lines) == (0, 0, 0)
    assert body(data, x) == b"x"
    assert_sound(data, message)


@pytest.mark.parametrize(
    ("data", "header_length", "body_text"),
    [
        (b"", 0, b""),
        (b"\r\n", 2, b""),
        (b"\r\nonly a body\r\n", 2, b"only a body\r\n"),
        (b"Subject: header only\r\n", 22, b""),  # no blank line at all
        (b"Subject: header only", 20, b""),
        (b"Subject: x\r\n\r\n", 14, b""),  # empty body
        (b"Subject: x\r\nnot a header line\r\nmore\r\n", 12, b"not a header line\r\nmore\r\n"),
        (b"no header here\r\n", 0, b"no header here\r\n"),
        (b"Subject: folded\r\n \r\n\tstill header\r\n\r\nbody", 37, b"body"),
    ],
)
def test_degenerate_messages(data: bytes, header_length: int, body_text: bytes):
    message = parse_message(data)
    assert message.body.header_length == header_length
    assert body(data, message.body) == body_text
    assert_sound(data, message)


def test_content_type_defaults():
    digest = crlf(
        "Content-Type: multipart/digest; boundary=d\n\n"
        "--d\n\nSubject: first\n\none\n"
        "--d\nContent-Type: text/plain\n\nplain\n--d--\n"
    )
    message = parse_message(digest)
    first, plain = message.body.parts
    assert (first.type, first.subtype) == ("message", "rfc822")  # digest default
    assert first.message is not None and first.message.envelope.subject == "first"
    assert body(digest, first.message.body) == b"one"
    assert (plain.type, plain.subtype) == ("text", "plain")
    for value, expected in [
        ("text", ("text", "plain", (("charset", "us-ascii"),))),
        ("text; charset=utf-8", ("text", "plain", (("charset", "utf-8"),))),
        ("TEXT/HTML; CHARSET=UTF-8", ("text", "html", (("charset", "UTF-8"),))),
        ("(comment) image/png", ("image", "png", ())),
        ("application / pdf ;name=a.pdf", ("application", "pdf", (("name", "a.pdf"),))),
    ]:
        part = parse_message(f"Content-Type: {value}\r\n\r\n".encode()).body
        assert (part.type, part.subtype, part.params) == expected, value
    part = parse_message(b"Content-Transfer-Encoding: Quoted-Printable (yes)\r\n\r\n").body
    assert part.encoding == "quoted-printable"


def test_encoded_message_rfc822_is_opaque():
    inner = base64.b64encode(b"Subject: hidden\r\n\r\nbody\r\n").decode()
    data = crlf(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n"
        "Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n" + inner + "\n--b--\n"
    )
    message = parse_message(data)
    (part,) = message.body.parts
    assert (part.type, part.subtype, part.encoding, part.message) == (
        "text",
        "plain",
        "base64",
        None,
    )
    assert body(data, part) == inner.encode()
    assert_sound(data, message)


def test_parse_at_an_offset_reports_offsets_into_the_whole_buffer():
    prefix = b"stored prefix\r\n"
    data = prefix + ALTERNATIVE
    message = parse_message(data, len(prefix))
    plain_alone = parse_message(ALTERNATIVE).body.parts[0]
    plain = message.body.parts[0]
    assert message.body.header_offset == len(prefix)
    assert plain.body_offset == plain_alone.body_offset + len(prefix)
    assert body(data, plain) == b"Caf=C3=A9 at noon.\r\n"
    assert_sound(data, message, len(prefix))
    assert parse_message(b"abc", 99).size == 0  # clamped, not an error
    assert parse_message(bytearray(SIMPLE)) == parse_message(SIMPLE)


def test_nesting_is_bounded():
    depth = 300
    opening = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
        for i in range(depth)
    )
    data = opening + b"\r\ninnermost\r\n"
    message = parse_message(data)
    levels, part = 0, message.body
    while part.parts:
        part, levels = part.parts[0], levels + 1
    assert levels == MAX_DEPTH
    assert (part.type, part.subtype) == ("text", "plain")
    assert_sound(data, message)
    rfc822 = b"Content-Type: message/rfc822\r\n\r\n" * depth + b"Subject: last\r\n\r\nx"
    message = parse_message(rfc822)
    levels, current = 0, message
    while current.body.message is not None:
        current, levels = current.body.message, levels + 1
    assert levels == MAX_DEPTH
    assert_sound(rfc822, message)


def test_part_count_is_bounded():
    data = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + b"--b\r\n" * (MAX_PARTS + 500)
    message = parse_message(data)
    assert len(message.body.parts) == MAX_PARTS - 1  # the top-level part counts too
    assert_sound(data, message)


def test_split_multipart_directly():
    data = b"pre\r\n--x\r\na\r\n--x \r\nb\n--x--tail\r\nepi"
    assert [data[s:e] for s, e in split_multipart(data, 0, len(data), b"--x")] == [b"a", b"b"]
    assert split_multipart(data, 0, len(data), b"--x", limit=1) == [(10, 11)]
    assert split_multipart(b"--x", 0, 3, b"--x") == [(3, 3)]
    # past CHEAP_MISSES false candidates the search goes on by regex, with the same result
    data = b"--x\r\n" + b"--xy\r\n" * 100 + b"--x\r\n--x\n\nlast\r\n--x--\r\n"
    spans = split_multipart(data, 0, len(data), b"--x")
    assert [data[s:e] for s, e in spans] == [b"--xy\r\n" * 99 + b"--xy", b"", b"\nlast"]


def test_json_round_trip_is_exact_and_compact():
    for data in (SIMPLE, ALTERNATIVE, MIXED, FORWARDED, MISSING_CLOSE):
        message = parse_message(data)
        text = to_json(message)
        assert from_json(text) == message
        assert text == json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)
    text = to_json(parse_message("Subject: Grüße\r\n\r\n".encode()))
    assert "Grüße" in text  # not \u-escaped


@pytest.mark.parametrize("text", ["", "[]", "{}", "[2]", "[1, 2, 3]", '"x"', "[1,[],[],0]", "null"])
def test_from_json_rejects_what_it_did_not_write(text: str):
    with pytest.raises(ValueError):
        from_json(text)


def test_a_large_attachment_is_found_without_copying():
    payload = b"QUJD" * 250_000 + b"\r\n"  # 1 MB of base64-ish text
    data = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nhi\r\n--b\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + payload
        + b"\r\n--b--\r\n"
    )
    message = parse_message(data)
    attachment = message.body.parts[1]
    assert attachment.body_length == len(payload)
    assert body(data, attachment) == payload


@pytest.mark.parametrize(
    "data",
    [
        b"Content-Type: text/plain; a=x" + b" " * 200_000 + b"y\r\n\r\n",
        b"To: " + b"," * 300_000 + b"\r\n\r\n",
        b"From: " + b"(" * 300_000 + b"\r\n\r\n",
        b"Subject: " + b"=?utf-8?q?" * 50_000 + b"\r\n\r\n",
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + b"--bx\r\n" * 300_000,
        b"a:\n" * 300_000 + b"\nbody",
        b"x" * 2_000_000,
    ],
    ids=["spaces", "commas", "comments", "words", "candidates", "fields", "no-lines"],
)
def test_hostile_shapes_are_linear(data: bytes):
    # each takes a few milliseconds; a quadratic path would take minutes
    started = time.perf_counter()
    assert_sound(data, parse_message(data))
    assert time.perf_counter() - started < 5


# ---------------------------------------------------------------------------------------
# Hostile input: arbitrary bytes, and valid messages mutated at random.

SAMPLES = [SIMPLE, ALTERNATIVE, MIXED, FORWARDED, MISSING_CLOSE]
TOKENS = [
    b"\r\n",
    b"\n",
    b"\r",
    b"--",
    b"--b\r\n",
    b"--outer",
    b"--fwd--",
    b":",
    b";",
    b'"',
    b"(",
    b")",
    b"<",
    b">",
    b"@",
    b",",
    b"=?utf-8?b?",
    b"?=",
    b"\xff\xfe",
    b"\xc3",
    b" ",
    b"\t",
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n",
    b"Content-Type: message/rfc822\r\n\r\n",
    b"Content-Type: multipart/digest; boundary=fwd\r\n",
    b"name*0*=utf-8''%E2%82; name*1*=%AC",
]


def check_strictly(data: bytes) -> None:
    """parse_message must not need its last-resort fallback: call the parser behind it."""
    strict = mime_parser._parse_message(data, 0, len(data), 0, mime_parser._Budget(MAX_PARTS))
    assert strict == parse_message(data)
    assert_sound(data, strict)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_break_the_parser(data: bytes):
    check_strictly(data)


@st.composite
def mutated_messages(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "token", "dup"]))
        if action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=20))
        elif action == "delete":
            del data[position : position + draw(st.integers(1, 40))]
        elif action == "replace" and position < len(data):
            data[position] = draw(st.integers(0, 255))
        elif action == "token":
            data[position:position] = draw(st.sampled_from(TOKENS))
        else:
            length = draw(st.integers(1, 200))
            data[position:position] = data[position : position + length]
    return bytes(data)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_messages())
def test_mutated_mime_never_breaks_the_parser(data: bytes):
    check_strictly(data)


@settings(max_examples=300)
@given(st.text(max_size=300))
def test_header_decoding_and_addresses_never_raise(text: str):
    decode_header_value(text)
    data = f"From: {text}\r\nTo: {text}\r\nSubject: {text}\r\nContent-Type: {text}\r\n\r\n"
    check_strictly(data.encode("utf-8", "surrogatepass"))
