"""MIME parsing for the store's cache: structure, byte-exact offsets, ENVELOPE, numbering, JSON.

Every message is built as bytes here; every body slice is checked against the exact text.
"""

from __future__ import annotations

import base64

import pytest

from stalwart_py.mime import (
    MAX_ADDRESSES,
    Envelope,
    decode_header_value,
    find_part,
    parse_address_list,
    parse_message,
)
from stalwart_py.mime.headers import TEXT_PLAIN_DEFAULT, parse_content_type, parse_disposition
from tests.support.mime_samples import (
    ALTERNATIVE,
    FORWARDED,
    MIXED,
    PDF,
    PNG,
    SIMPLE,
    A,
    assert_sound,
    body,
    crlf,
    header,
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


def test_a_plain_address_alone_parses_as_the_general_parser_does(monkeypatch):
    """``<a@b>`` and ``a@b`` skip the tokenizer (``_PLAIN_ADDRESS``): every value, near that
    form or not, gives what the general path gives."""
    import random
    import re

    from stalwart_py.mime import addresses

    assert parse_address_list(" <x.y+z@mail.example> ") == (A(None, "x.y+z", "mail.example"),)
    assert parse_address_list("x@example") == (A(None, "x", "example"),)
    assert parse_address_list("<x@example") == (A(None, "x", "example"),)  # general path
    assert parse_address_list("x..y@example") == (A(None, '"x..y"', "example"),)
    picked = random.Random(5)
    near = ["", " ", "\t", "<", ">", "@", ".", "a", "b.c", "-", "_", "!", '"', "(", ",", "é"]
    values = [
        "".join(picked.choice(near) for _ in range(picked.randint(0, 8))) for _ in range(3000)
    ]
    fast = [parse_address_list(value) for value in values]
    monkeypatch.setattr(addresses, "_PLAIN_ADDRESS", re.compile(r"(?!)"))  # never matches
    assert fast == [parse_address_list(value) for value in values]


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
