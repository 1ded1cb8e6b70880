"""PROXY protocol v1/v2 parsing, including arbitrary bytes (hypothesis)."""

from __future__ import annotations

import contextlib
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stalwart_py.proxy_protocol import (
    V2_HEADER_LENGTH,
    ProxyProtocolError,
    build_v1,
    build_v2,
    parse_v1,
    parse_v2,
    v2_body_length,
    version_of,
)


def test_v1_tcp4_and_tcp6():
    header = parse_v1(b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 25\r\n")
    assert header.source == (ipaddress.ip_address("203.0.113.7"), 56324)
    assert header.destination == (ipaddress.ip_address("192.0.2.1"), 25)
    header = parse_v1(b"PROXY TCP6 2001:db8::7 2001:db8::1 1 65535\r\n")
    assert header.source == (ipaddress.ip_address("2001:db8::7"), 1)


def test_v1_unknown_keeps_the_real_address():
    assert parse_v1(b"PROXY UNKNOWN\r\n").source is None
    assert parse_v1(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n").source is None


@pytest.mark.parametrize(
    "line",
    [
        b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 25\n",  # no CR
        b"PROXY TCP4 2001:db8::1 192.0.2.1 1 2\r\n",  # family mismatch
        b"PROXY TCP4 203.0.113.7 192.0.2.1 99999 25\r\n",
        b"PROXY TCP4 203.0.113.7 192.0.2.1 025 25\r\n",  # leading zero
        b"PROXY UDP4 203.0.113.7 192.0.2.1 1 2\r\n",
        b"PROXY TCP4 203.0.113.7\r\n",
        b"HELO x\r\n",
        b"PROXY TCP4 " + b"1" * 100 + b"\r\n",
    ],
)
def test_v1_rejects(line):
    with pytest.raises(ProxyProtocolError):
        parse_v1(line)


def test_v2_round_trip():
    for source, destination in (
        (("203.0.113.7", 1), ("192.0.2.1", 25)),
        (("2001:db8::7", 2), ("2001:db8::1", 587)),
    ):
        data = build_v2(source, destination)
        header = parse_v2(data[:V2_HEADER_LENGTH], data[V2_HEADER_LENGTH:])
        assert header.source == (ipaddress.ip_address(source[0]), source[1])
        assert header.destination == (ipaddress.ip_address(destination[0]), destination[1])
    local = build_v2(None, None)
    assert parse_v2(local[:16], local[16:]).source is None


def test_v2_skips_tlvs_and_rejects_bad_headers():
    data = build_v2(("203.0.113.7", 1), ("192.0.2.1", 25))
    tlv = b"\x04\x00\x03abc"  # a PP2_TYPE_NOOP TLV
    longer = data[:14] + (12 + len(tlv)).to_bytes(2, "big") + data[16:] + tlv
    assert v2_body_length(longer[:16]) == 12 + len(tlv)
    assert parse_v2(longer[:16], longer[16:]).source[1] == 1
    with pytest.raises(ProxyProtocolError):
        v2_body_length(b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x0c")  # version 3
    with pytest.raises(ProxyProtocolError):
        v2_body_length(b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\xff\xff")  # too long
    with pytest.raises(ProxyProtocolError):
        parse_v2(data[:16], data[16:20])  # truncated addresses


def test_version_is_told_by_the_first_byte():
    assert version_of(b"P") == 1
    assert version_of(b"\r") == 2
    with pytest.raises(ProxyProtocolError):
        version_of(b"E")


def test_build_v1_matches_the_specification_example():
    assert build_v1(("192.168.0.1", 56324), ("192.168.0.11", 443)) == (
        b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
    )


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_v1(data):
    with contextlib.suppress(ProxyProtocolError):
        parse_v1(data)


@given(st.binary(min_size=16, max_size=16), st.binary(max_size=600))
def test_arbitrary_bytes_never_crash_v2(prefix, body):
    with contextlib.suppress(ProxyProtocolError):
        parse_v2(b"\r\n\r\n\x00\r\nQUIT\n" + prefix[12:], body)
