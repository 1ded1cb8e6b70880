"""MIME parsing of broken, degenerate and hostile messages (what real mail gets wrong),
the cache's JSON form, bounded work on any input, and property tests that no input breaks
the parser. The well-formed messages are in test_mime.py.
"""

from __future__ import annotations

import base64
import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stalwart_py.mime import (
    MAX_DEPTH,
    MAX_PARTS,
    decode_header_value,
    find_part,
    from_json,
    parse_message,
    split_multipart,
    to_json,
)
from stalwart_py.mime import parser as mime_parser
from tests.support.mime_samples import (
    ALTERNATIVE,
    FORWARDED,
    MIXED,
    SIMPLE,
    A,
    assert_sound,
    body,
    crlf,
    header,
    lf,
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
