"""Domain names and addresses taken from clients (``stalwart_py.names``), and paths made from
them (``files.safe_join``): the names of the field failure that wrote a DKIM key outside the
data directory are refused, valid ones come out in one canonical form, and whatever is
accepted is safe as a file name, a log line or a header."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stalwart_py import names
from stalwart_py.files import safe_join

HOSTILE_DOMAINS = [
    "e.x/../../../../evil",  # the field failure: a DKIM key was written outside the data dir
    "..",
    ".",
    "",
    "a/b.example",
    "a\\b.example",
    "e\x00x.test",
    "crlf\r\nx.test",
    "tab\tx.test",
    "sp ace.test",
    "e\uff0fx.test",  # a fullwidth solidus, which the UTS 46 mapping turns into "/"
    "-a.example",
    "a-.example",
    "a_b.example",
    "a..b.example",
    "192.0.2.1",  # an IPv4 address is not a domain name (RFC 3696 2)
    "[192.0.2.1]",
    "xn--zz.example",  # not the encoding of anything
    "\ud800.example",  # a lone surrogate, as JSON can carry it
    "a" * 64 + ".example",  # a label of 64
    ".".join(["a" * 63] * 4) + ".x",  # 256 characters
]

HOSTILE_ADDRESSES = [
    "../../etc/passwd@example.test",  # the field failures of POST /api/accounts
    "a\x00b@example.test",
    "crlf\r\nx@example.test",
    "a@e.x/../../../../evil",
    "no-at-sign.example.test",
    "@example.test",
    "a@",
    "a.@example.test",
    ".a@example.test",
    "a..b@example.test",
    "a b@example.test",
    "a@b@example.test",
    '"a\x07"@example.test',  # a control character, even quoted
    '"a\\\x01"@example.test',
    '""@example.test',
    "a\u202eb@example.test",  # right-to-left override: an address that looks like another
    "a\u200bb@example.test",  # zero-width space
    "a\u00a0b@example.test",  # no-break space
    "\ud800@example.test",
    "a@[192.0.2.1]",  # an address literal names no account here
    "a" * 65 + "@example.test",
    "a@" + ".".join(["a" * 63] * 4),
]


@pytest.mark.parametrize("name", HOSTILE_DOMAINS)
def test_hostile_domains_are_refused_with_what_was_expected(name):
    with pytest.raises(names.InvalidName) as info:
        names.domain(name)
    assert "domain" in str(info.value) or "label" in str(info.value)


@pytest.mark.parametrize("address", HOSTILE_ADDRESSES)
def test_hostile_addresses_are_refused(address):
    with pytest.raises(names.InvalidName):
        names.mailbox(address)
    if address != "@example.test":  # the catch-all of example.test
        with pytest.raises(names.InvalidName):
            names.alias(address)


@pytest.mark.parametrize(
    ("given_name", "canonical"),
    [
        ("Example.TEST", "example.test"),
        ("example.test.", "example.test"),  # the root's dot
        ("localhost", "localhost"),
        ("Bücher.Example", "xn--bcher-kva.example"),  # IDNA 2008, A-labels
        ("straße.de", "xn--strae-oqa.de"),  # IDNA 2008 keeps ß (2003 made it "ss")
        ("\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com", "example.com"),  # fullwidth: UTS 46 maps
        ("例子.测试", "xn--fsqu00a.xn--0zwm56d"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("123.example", "123.example"),
    ],
)
def test_domains_in_canonical_form(given_name, canonical):
    assert names.domain(given_name) == canonical


@pytest.mark.parametrize(
    ("given_name", "canonical"),
    [
        ("alice@Example.TEST", "alice@example.test"),
        ('"alice"@example.test', "alice@example.test"),  # RFC 5321 4.1.2: the same mailbox
        ('"a b"@example.test', '"a b"@example.test'),
        ('"a\\"b"@example.test', '"a\\"b"@example.test'),
        ('"a\\b"@example.test', "ab@example.test"),  # a needless quoted pair
        ("etc/passwd@example.test", "etc/passwd@example.test"),  # "/" is atext: safe_join's job
        ("jöhn.o'neil+tag@bücher.example", "jöhn.o'neil+tag@xn--bcher-kva.example"),
        ("用户@例子.测试", "用户@xn--fsqu00a.xn--0zwm56d"),
    ],
)
def test_addresses_in_canonical_form(given_name, canonical):
    assert names.mailbox(given_name) == canonical
    assert names.alias(given_name) == canonical


def test_catch_all_aliases():
    assert names.alias("@Bücher.Example") == "@xn--bcher-kva.example"
    for bad in ("@", "@..", "@a/b", "@@example.test"):
        with pytest.raises(names.InvalidName):
            names.alias(bad)


LDH = set(string.ascii_lowercase + string.digits + "-.")


@given(st.text(max_size=80))
def test_any_text_is_a_valid_domain_or_refused(text):
    try:
        name = names.domain(text)
    except names.InvalidName:
        return
    assert set(name) <= LDH and len(name) <= names.MAX_DOMAIN
    assert all(0 < len(label) <= names.MAX_LABEL for label in name.split("."))
    assert names.domain(name) == name  # canonical: checking it again changes nothing


@given(st.text(max_size=40), st.sampled_from(["example.test", "bücher.example", "a/b", ".."]))
def test_any_text_is_a_valid_address_or_refused(local, domain):
    try:
        address = names.mailbox(f"{local}@{domain}")
    except names.InvalidName:
        return
    assert not any(char in address for char in "\x00\r\n\t")
    assert len(address.encode()) <= names.MAX_ADDRESS
    assert names.mailbox(address) == address
    assert safe_join(Path("/data"), names.domain(address.rpartition("@")[2])).parent == Path(
        "/data"
    )


def test_safe_join_keeps_a_path_inside_its_directory(tmp_path):
    base = tmp_path / "dkim"
    assert safe_join(base, "example.test", "rsa.pem") == base / "example.test" / "rsa.pem"
    for part in ("..", ".", "", "a/b", "e.x/../../../../evil", "/etc", "a\x00b"):
        with pytest.raises(ValueError, match="plain path component"):
            safe_join(base, part)
    base.mkdir()
    (base / "link").symlink_to(tmp_path.parent)  # a link out of the directory
    with pytest.raises(ValueError, match="outside"):
        safe_join(base, "link", "x.pem")
