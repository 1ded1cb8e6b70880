"""The HTTP protocol's I/O-free parts: routing, Basic credentials, composition of messages,
request validation; fuzzed with hypothesis where input comes from the network."""

from __future__ import annotations

import base64
import email
import email.policy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.http import Http
from protocols.http.auth import parse_basic
from protocols.http.compose import (
    CompositionError,
    check_envelope_address,
    check_raw,
    compose,
    envelope_of,
    normalize_line_endings,
    parse_address_fields,
)
from protocols.http.messages import HttpError, Request
from protocols.http.mimebuild import MimeError, encoded_words, format_mailbox, parse_address_list
from protocols.http.schemas import COMPONENTS
from protocols.http.validation import SchemaError, validate

ROUTER = Http().app.router


def test_routes_match_by_segment_with_decoded_parameters():
    route, params = ROUTER.match("GET", "/api/accounts/alice%40example.com")
    assert route.name == "get_account" and params == {"address": "alice@example.com"}
    route, params = ROUTER.match("POST", "/api/queue/retry")
    assert route.name == "retry_all" and params == {}
    route, params = ROUTER.match("POST", "/api/queue/17/retry")
    assert route.name == "retry_entry" and params == {"id": "17"}
    assert ROUTER.match("HEAD", "/healthz")[0].name == "healthz"
    with pytest.raises(HttpError) as info:
        ROUTER.match("PUT", "/api/domains")
    assert info.value.status == 405 and info.value.headers == [("Allow", "GET, HEAD, POST")]
    assert ROUTER.match("GET", "/api/accounts/")[0].name == "list_accounts"
    for method in ("GET", "DELETE"):  # the literal /api/queue/retry wins over /api/queue/{id}
        with pytest.raises(HttpError) as info:
            ROUTER.match(method, "/api/queue/retry")
        assert info.value.status == 405 and info.value.headers == [("Allow", "POST")]
    for path in ("/api/nothing", "/api/accounts/%ff", "/"):
        with pytest.raises(HttpError) as info:
            ROUTER.match("GET", path)
        assert info.value.status == 404


@given(st.sampled_from(["GET", "POST", "HEAD", "DELETE", "PATCH", "X"]), st.text(max_size=200))
def test_any_path_is_routed_or_refused_with_404_or_405(method, path):
    try:
        route, params = ROUTER.match(method, "/" + path)
    except HttpError as exc:
        status = exc.status
    else:
        assert route.method == ("GET" if method == "HEAD" else method)
        assert all(params.values())
        return
    assert status in (404, 405)


@given(st.text(max_size=300))
def test_any_request_target_builds_a_request_or_a_400(target):
    try:
        request = Request.build("GET", target, {}, b"", session=None)  # type: ignore[arg-type]
    except HttpError as exc:
        status = exc.status
    else:
        assert "?" not in request.path
        return
    assert status == 400


def test_basic_credentials():
    token = base64.b64encode("jörg@example.com:pa:ss word".encode()).decode()
    assert parse_basic(f"Basic {token}") == ("jörg@example.com", "pa:ss word")
    assert parse_basic(f"basic   {token}  ") == ("jörg@example.com", "pa:ss word")
    for bad in (
        "",
        "Bearer abc",
        "Basic",
        "Basic !!!",
        "Basic " + base64.b64encode(b"nocolon").decode(),
    ):
        assert parse_basic(bad) is None
    assert parse_basic("Basic " + base64.b64encode(b"\xff:x").decode()) is None  # not UTF-8


@given(st.text(max_size=100))
def test_any_authorization_header_parses_or_is_none(header):
    result = parse_basic(header)
    assert result is None or (result[0] and isinstance(result[1], str))


def test_envelope_addresses():
    for good in (
        "a@b.c",
        "first.last+tag@example.com",
        '"with space"@x.test',
        "u@[192.0.2.1]",
        "u@[IPv6:2001:db8::1]",
    ):
        assert check_envelope_address(good, "x") == good
    # the canonical form SMTP gives: IDNs as A-labels, needless quotes dropped
    assert check_envelope_address("jörg@例え.jp", "x") == "jörg@xn--r8jz45g.jp"
    assert check_envelope_address('"ab"@X.test', "x") == "ab@x.test"
    for bad in (
        "",
        "a",
        "a@",
        "@b",
        "a b@c",
        "a..b@c",
        "<a@b>",
        "a@b..c",
        "a@-b.c",
        "x" * 65 + "@b.c",
        "a\x00b@c.test",
        "crlf\r\n@c.test",
        '"a\x01"@c.test',
        "u@[192.0.2.256]",
        "a@e.x/../../evil",
    ):
        with pytest.raises(CompositionError):
            check_envelope_address(bad, "x")


def test_line_endings_become_crlf():
    assert normalize_line_endings(b"a\nb\r\nc\rd") == b"a\r\nb\r\nc\r\nd\r\n"
    assert check_raw(b"Subject: x\n\nbody") == b"Subject: x\r\n\r\nbody\r\n"
    for bad in (b"", b"no header", b": empty name\n", b"\nSubject: x"):
        with pytest.raises(CompositionError):
            check_raw(bad)


def test_compose_builds_alternatives_and_the_envelope():
    data = {
        "from": "Ann <ann@x.test>",
        "to": ["b@y.test", "Cé <c@y.test>"],
        "bcc": "d@z.test",
        "subject": "Ünïcode",
        "text": "é" * 10,
        "html": "<i>hi</i>",
    }
    raw, message_id = compose(data, "mail.x.test")
    assert message_id.endswith("@mail.x.test>")
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["To"] == "b@y.test, Cé <c@y.test>"
    assert parsed.is_multipart() and parsed.get_content_subtype() == "alternative"
    assert b"Bcc" not in raw
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert envelope_of(data) == ("ann@x.test", ["b@y.test", "c@y.test", "d@z.test"])
    assert envelope_of({"sender": "", "recipients": "r@x.test"}) == ("", ["r@x.test"])
    html_only, _ = compose({"from": "a@x.test", "html": "<p>x</p>"}, "h")
    assert email.message_from_bytes(html_only).get_content_type() == "text/html"


@given(
    st.dictionaries(
        st.sampled_from(["from", "to", "cc", "subject", "text", "html", "headers", "reply-to"]),
        st.text(max_size=40) | st.lists(st.text(max_size=20), max_size=3),
        max_size=6,
    )
)
def test_compose_makes_a_message_or_says_why(data):
    if "headers" in data:
        data["headers"] = {"X-Test": data["headers"]} if isinstance(data["headers"], str) else {}
    try:
        validate(data, COMPONENTS["Injection"], COMPONENTS)
    except SchemaError:
        return  # refused before composition
    try:
        raw, _ = compose(data, "h.test")
    except CompositionError:
        return
    assert raw.endswith(b"\r\n") and b"\n" not in raw.replace(b"\r\n", b"")


# Leading and trailing white space, which folding may keep or drop, aside. In display names
# the email package collapses runs of spaces inside an encoded-word and puts a space between
# two adjacent ones (RFC 2047 6.2 says to drop it; its own output does not survive either):
# names here have single spaces and fit one encoded-word.
NAMES = (
    st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=30)
    .map(lambda name: " ".join(name.split()))
    .filter(lambda name: len(name.encode()) <= 45)
)
TEXTS = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"), max_size=300
)


@given(
    name=NAMES,
    other=NAMES,
    subject=st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=200).map(str.strip),
    text=TEXTS,
    html=st.none() | TEXTS,
    header=st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=100).map(str.strip),
)
def test_composed_messages_parse_back_to_what_was_asked(name, other, subject, text, html, header):
    data = {
        "from": format_mailbox(name, "from@x.test"),
        "to": [format_mailbox(other, "to@y.test"), "plain@z.test"],
        "subject": subject,
        "text": text,
        "headers": {"X-Extra": header},
    }
    if html is not None:
        data["html"] = html
    raw, message_id = compose(data, "h.test")
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert b"\n" not in raw.replace(b"\r\n", b"")
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert not parsed.defects
    assert parsed["From"].addresses[0].display_name == name
    assert parsed["From"].addresses[0].addr_spec == "from@x.test"
    assert [a.addr_spec for a in parsed["To"].addresses] == ["to@y.test", "plain@z.test"]
    assert parsed["To"].addresses[0].display_name == other
    assert parsed["Subject"] == subject
    assert parsed["X-Extra"] == header
    assert parsed["Message-ID"] == message_id
    expected = text.replace("\r\n", "\n")
    if expected and not expected.endswith("\n"):
        expected += "\n"
    plain = parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert plain == expected
    if html is not None:
        assert parsed.get_content_type() == "multipart/alternative"
        got = parsed.get_body(("html",)).get_content().replace("\r\n", "\n")
        wanted = html if not html or html.endswith("\n") else html + "\n"
        assert got == wanted


def test_address_lists():
    assert parse_address_list('Ann <a@x.test>, "Last, First" <b@y.test>,c@z.test') == [
        ("Ann", "a@x.test"),
        ("Last, First", "b@y.test"),
        ("", "c@z.test"),
    ]
    for bad in ("", "a@b c@d", "<a@b", "a@b,,", 'x" <a@b>', "Ann <a@b> trailing"):
        with pytest.raises(MimeError):
            parse_address_list(bad)
    assert parse_address_list("Ann") == [("", "Ann")]  # a list, but of no address:
    with pytest.raises(CompositionError, match="'Ann' is not an address"):
        parse_address_fields(["Ann"], "to")


@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=200))
def test_encoded_words_are_short_and_decode_to_the_text(text):
    words = encoded_words(text)
    assert all(len(word) <= 75 for word in words)
    decoded = b"".join(base64.b64decode(word[10:-2]) for word in words)
    assert decoded.decode("utf-8") == text
    for word in words:  # each word alone is whole characters (RFC 2047 5)
        base64.b64decode(word[10:-2]).decode("utf-8")
