"""The SNI choice (RFC 6125 6.4.3 wildcards, validity) and the ClientHello reader that lets
TLS-ALPN-01 see the ALPN offer, on real ClientHellos made by Python's own TLS client."""

from __future__ import annotations

import contextlib
import datetime
import ssl
from pathlib import Path

import pytest
import trustme
from hypothesis import given
from hypothesis import strategies as st

from stalwart_py.certificates import Certificate, Index
from stalwart_py.client_hello import HelloReadingSSLObject, client_hello, offered_alpn

NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)


def cert(cid: str, *names: str, default: bool = False, valid: bool = True, days: int = 90):
    start = NOW - DAY if valid else NOW - 10 * DAY
    end = NOW + days * DAY if valid else NOW - 5 * DAY
    return Certificate(
        cid, "file", names, "", "", "1", start, end, "", (Path("c"), Path("k")), (), None, default
    )


def test_exact_names_then_one_label_wildcards():
    index = Index.of(
        [
            cert("exact", "mail.example.com"),
            cert("wild", "*.example.com"),
            cert("partial", "f*.other.com"),
            cert("default", "default.test", default=True),
        ]
    )
    chosen = {
        name: (c.id if (c := index.matching(name)) else None)
        for name in (
            "mail.example.com",
            "MAIL.Example.COM.",
            "imap.example.com",
            "a.b.example.com",
            "example.com",
            ".example.com",
            "foo.other.com",
            "unknown.test",
        )
    }
    assert chosen == {
        "mail.example.com": "exact",  # exact before wildcard
        "MAIL.Example.COM.": "exact",  # case and the root's dot do not matter
        "imap.example.com": "wild",
        "a.b.example.com": None,  # a wildcard is one label
        "example.com": None,  # and never none
        ".example.com": None,  # nor an empty one
        "foo.other.com": None,  # partial wildcards are not honoured
        "unknown.test": None,
    }
    assert index.default is not None and index.default.id == "default"


def test_a_valid_certificate_wins_then_the_one_valid_longest():
    expired = cert("expired", "mail.example.com", valid=False)
    short = cert("short", "mail.example.com", days=10)
    long = cert("long", "mail.example.com", days=80)
    assert Index.of([expired, short, long]).matching("mail.example.com") is long
    assert Index.of([expired, short]).matching("mail.example.com") is short
    assert Index.of([expired]).matching("mail.example.com") is expired  # better than nothing


def hello_from_python(alpn: list[str] | None, server_name: str | None = "mail.example.com"):
    """The ClientHello bytes Python's TLS client sends (as TLS records)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    return outgoing.read()


def test_the_alpn_offer_of_a_real_client_hello():
    data = hello_from_python(["h2", "acme-tls/1"])
    body = client_hello(data)
    assert body and offered_alpn(body) == ("h2", "acme-tls/1")
    assert offered_alpn(client_hello(hello_from_python(None))) == ()
    # bytes arriving a few at a time: not whole until the last
    assert all(client_hello(data[:n]) is None for n in range(len(data)))


def test_a_client_hello_in_two_records():
    data = hello_from_python(["acme-tls/1"])
    message = data[5:]  # one record: its handshake message, split in two (RFC 8446 5.1)
    half = len(message) // 2
    records = b"".join(
        b"\x16\x03\x01" + len(part).to_bytes(2, "big") + part
        for part in (message[:half], message[half:])
    )
    assert offered_alpn(client_hello(records)) == ("acme-tls/1",)


@pytest.mark.parametrize(
    "data",
    [b"GET / HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x00\x04\x02\x00\x00\x00", b"\x17\x03\x03\x00\x00"],
)
def test_what_is_not_a_client_hello(data):
    assert client_hello(data) == b""


@given(st.binary(max_size=400))
def test_garbage_bodies_offer_nothing_and_never_raise(body):
    assert isinstance(offered_alpn(body), tuple)


@given(st.integers(min_value=0, max_value=10_000))
def test_truncated_client_hellos_offer_nothing(cut):
    body = client_hello(hello_from_python(["acme-tls/1"]))
    assert body
    truncated = body[: cut % len(body)]
    assert offered_alpn(truncated) in ((), ("acme-tls/1",))


def test_the_server_object_reads_the_offer_before_openssl_does(tmp_path):
    ca = trustme.CA()
    leaf = ca.issue_cert("mail.example.com")
    leaf.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "c.pem"))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "c.pem")
    server.sslobject_class = HelloReadingSSLObject
    seen = []
    server.sni_callback = lambda obj, name, _ctx: seen.append((name, obj.offered_alpn))
    for wanted, expected in ((True, ("http/1.1", "acme-tls/1")), (False, ())):
        server.wants_client_hello = lambda wanted=wanted: wanted  # type: ignore[attr-defined]
        data = hello_from_python(["http/1.1", "acme-tls/1"])
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = server.wrap_bio(incoming, outgoing, server_side=True)
        for byte in data:  # one byte at a time: each step copies what waits, OpenSSL reads it
            incoming.write(bytes([byte]))
            with contextlib.suppress(ssl.SSLWantReadError):
                obj.do_handshake()
        assert outgoing.pending  # the handshake went on: a ServerHello is waiting
        assert seen.pop() == ("mail.example.com", expected)
