"""MIME header fields: RFC 2047 decoding, Content-Type parameters, ENVELOPE addresses."""

from __future__ import annotations

import pytest

from stalwart_py.mime import EnvelopeAddress, decode_header_value, parse_address_list
from stalwart_py.mime.headers import TEXT_PLAIN_DEFAULT, parse_content_type


def A(name, mailbox, host, route=None):  # reads like the ENVELOPE it builds
    return EnvelopeAddress(name, route, mailbox, host)


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
