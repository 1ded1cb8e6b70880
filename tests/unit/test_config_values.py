"""Config value types: every accepted spelling, and what is refused."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from stalwart_py.config.types import (
    parse_bind_address,
    parse_duration,
    parse_file_mode,
    parse_hostname,
    parse_network,
    parse_size,
    parse_tls_version,
)


@pytest.mark.parametrize(
    ("text", "family", "host", "port"),
    [
        ("*:25", socket.AF_INET, "0.0.0.0", 25),
        ("[*]:25", socket.AF_INET6, "::", 25),
        ("[::]:25", socket.AF_INET6, "::", 25),
        ("127.0.0.1:2525", socket.AF_INET, "127.0.0.1", 2525),
        ("[2001:db8::1]:587", socket.AF_INET6, "2001:db8::1", 587),
        ("[2001:0db8:0000:0000:0000:0000:0000:0001]:587", socket.AF_INET6, "2001:db8::1", 587),
        ("[2001:DB8::1]:587", socket.AF_INET6, "2001:db8::1", 587),
        ("[0:0:0:0:0:0:0:1]:0", socket.AF_INET6, "::1", 0),
        ("/run/stalwart/lmtp.sock", socket.AF_UNIX, "/run/stalwart/lmtp.sock", 0),
    ],
)
def test_bind_address_forms(text, family, host, port):
    address = parse_bind_address(text)
    assert (address.family, address.host, address.port) == (family, host, port)


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("25", "no port"),
        ("localhost:25", "'localhost' is not an IPv4 address"),
        ("::1:25", "is not an IPv4 address (IPv6 addresses go in brackets"),
        ("[fe80::zz]:25", "is not an IPv6 address"),
        ("*:70000", "port 70000 is out of range"),
        ("relative/path.sock", "no port"),
    ],
)
def test_bad_bind_addresses(text, detail):
    with pytest.raises(ValueError, match=None) as info:
        parse_bind_address(text)
    assert detail in str(info.value)


def test_bind_address_text_round_trips():
    for text in ("0.0.0.0:25", "[::]:25", "127.0.0.1:1", "[2001:db8::1]:587", "/x.sock"):
        assert str(parse_bind_address(text)) == text


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        (30, 30.0),
        (1.5, 1.5),
        ("30s", 30.0),
        ("500ms", 0.5),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("2d", 172800.0),
        ("1w", 604800.0),
        (" 10 ", 10.0),
        ("0.25s", 0.25),
    ],
)
def test_durations(raw, seconds):
    assert parse_duration(raw) == seconds


@pytest.mark.parametrize("raw", ["5 minutes", "-1s", -3, True, "", "1y", [1]])
def test_bad_durations(raw):
    with pytest.raises(ValueError):
        parse_duration(raw)


@pytest.mark.parametrize(
    ("raw", "size"),
    [
        (1000, 1000),
        ("512K", 512 * 1024),
        ("25M", 25 << 20),
        ("25MB", 25 << 20),
        ("1GiB", 1 << 30),
        ("1.5k", 1536),
        ("10 mb", 10 << 20),
    ],
)
def test_sizes(raw, size):
    assert parse_size(raw) == size


@pytest.mark.parametrize("raw", ["lots", "-1", -1, "5X", False])
def test_bad_sizes(raw):
    with pytest.raises(ValueError):
        parse_size(raw)


@pytest.mark.parametrize(
    ("raw", "mode"), [("0660", 0o660), ("660", 0o660), ("0o600", 0o600), (0o660, 0o660), ("0", 0)]
)
def test_file_modes(raw, mode):
    assert parse_file_mode(raw) == mode


@pytest.mark.parametrize("raw", ["0999", "rw-r--r--", 0o17777, -1, True])
def test_bad_file_modes(raw):
    with pytest.raises(ValueError):
        parse_file_mode(raw)


def test_networks():
    assert parse_network("10.0.0.0/8") == ipaddress.ip_network("10.0.0.0/8")
    assert parse_network("::1") == ipaddress.ip_network("::1/128")
    assert parse_network("10.1.2.3/8") == ipaddress.ip_network("10.0.0.0/8")
    for bad in ("10.0.0.0/33", "example.com", 10):
        with pytest.raises(ValueError):
            parse_network(bad)


def test_tls_versions_and_hostnames():
    assert parse_tls_version("TLSv1.3") == "1.3"
    assert parse_tls_version("1.2") == "1.2"
    with pytest.raises(ValueError):
        parse_tls_version("1.1")
    assert parse_hostname("Mail.Example.COM.") == "mail.example.com"
    for bad in ("-bad.example", "has space.example", "a" * 64 + ".example", ""):
        with pytest.raises(ValueError):
            parse_hostname(bad)
