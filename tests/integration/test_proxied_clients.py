"""Clients behind a proxy that sends PROXY headers, as HAProxy, Traefik and nginx do.

Two failures seen in the field: a proxy writes its header and the client's TLS ClientHello in
one segment, and implicit TLS threw the ClientHello away as "sent before the handshake"; and a
header that names no client (``PROXY UNKNOWN``, v2 ``LOCAL``, v2 over a Unix socket or UDP)
left the proxy's own loopback address in place, which the default relay-hosts trust.
The per-address connection limit counts the client that the header names.
"""

from __future__ import annotations

import json
import smtplib
import socket
import ssl
import struct
from pathlib import Path

import pytest

from stalwart_py.proxy_protocol import V2_SIGNATURE, build_v1, build_v2
from tests.support.clients import LineClient

TIMEOUT = 10.0


class HeaderThenTLS:
    """A client that writes the PROXY header and its TLS ClientHello in ONE send, as a proxy
    does, then completes the handshake over a memory BIO."""

    def __init__(
        self, address: tuple[str, int], header: bytes, context: ssl.SSLContext, hostname: str
    ) -> None:
        self.sock = socket.create_connection(address, timeout=TIMEOUT)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname=hostname)
        with pytest.raises(ssl.SSLWantReadError):
            self.tls.do_handshake()
        self.sock.sendall(header + self.outgoing.read())
        self._until_done(self.tls.do_handshake)

    def _until_done(self, step) -> bytes:
        while True:
            try:
                result = step()
            except ssl.SSLWantReadError:
                if pending := self.outgoing.read():
                    self.sock.sendall(pending)
                data = self.sock.recv(65536)
                assert data, "the server closed the connection"
                self.incoming.write(data)
                continue
            if pending := self.outgoing.read():
                self.sock.sendall(pending)
            return result or b""

    def readline(self) -> bytes:
        data = b""
        while not data.endswith(b"\n"):
            data += self._until_done(lambda: self.tls.read(65536))
        return data

    def close(self) -> None:
        self.sock.close()


PROBE_CONFIG = """
[server.tls]
certificate = "{cert}"
private-key = "{key}"

[server.listener.probe-tls]
bind = "127.0.0.1:0"
protocol = "probe"
tls.implicit = true
proxy.trusted-networks = ["127.0.0.0/8"]
"""


@pytest.mark.parametrize("version", [1, 2])
def test_implicit_tls_with_the_client_hello_in_the_proxy_headers_segment(
    start_server, server_cert: tuple[Path, Path], client_tls: ssl.SSLContext, version: int
):
    server = start_server(PROBE_CONFIG.format(cert=server_cert[0], key=server_cert[1]))
    build = build_v1 if version == 1 else build_v2
    header = build(("203.0.113.7", 40000), ("192.0.2.1", 993))
    for _ in range(5):
        client = HeaderThenTLS(server.address("probe-tls"), header, client_tls, "localhost")
        try:
            info = json.loads(client.readline())
        finally:
            client.close()
        assert info["peer"] == "203.0.113.7:40000"
        assert info["tls"]


# -- a header that names no client --------------------------------------------------------

V2_UNIX_STREAM = (
    V2_SIGNATURE + bytes([0x21, 0x31]) + struct.pack("!H", 216) + b"/run/client".ljust(108, b"\0")
)
V2_UNIX_STREAM += b"/run/server".ljust(108, b"\0")
V2_UDP4 = (
    V2_SIGNATURE
    + bytes([0x21, 0x12])
    + struct.pack("!H", 12)
    + socket.inet_aton("198.51.100.9")
    + socket.inet_aton("192.0.2.1")
    + struct.pack("!HH", 5353, 25)
)

SMTP_CONFIG = """
[server]
hostname = "mx.example.test"

[server.listener.mx]
bind = "127.0.0.1:0"
protocol = "smtp"
proxy.trusted-networks = ["127.0.0.0/8"]
"""


@pytest.mark.parametrize(
    "header",
    [b"PROXY UNKNOWN\r\n", build_v2(None, None), V2_UNIX_STREAM, V2_UDP4],
    ids=["v1-unknown", "v2-local", "v2-unix", "v2-udp"],
)
def test_a_header_without_a_client_address_is_no_relay_host(start_server, header: bytes):
    """The default relay-hosts are loopback, and the proxy is on loopback: the client it does
    not describe must not inherit its address (the open relay of the field report)."""
    server = start_server(SMTP_CONFIG)
    host, port = server.address("mx")
    sock = socket.create_connection((host, port), timeout=TIMEOUT)
    sock.sendall(header)
    with smtplib.SMTP(timeout=TIMEOUT) as smtp:
        smtp.sock = sock
        smtp.file = None
        code, _ = smtp.getreply()
        assert code == 220
        assert smtp.ehlo("client.example")[0] == 250
        assert smtp.mail("someone@outside.example")[0] == 250
        code, text = smtp.rcpt("victim@elsewhere.example")
    assert code == 554 and b"Relay access denied" in text, (code, text)


def test_a_header_without_a_client_address_is_logged_as_unknown(start_server):
    server = start_server(PROBE_CONFIG_PLAIN)
    with LineClient(server.address("probe"), prelude=b"PROXY UNKNOWN\r\n") as client:
        info = client.info()
    assert info["peer"] == "unknown" and info["peer_ip"] is None


PROBE_CONFIG_PLAIN = """
[server.listener.probe]
bind = "127.0.0.1:0"
protocol = "probe"
proxy.trusted-networks = ["127.0.0.0/8"]
max-connections-per-ip = 2
"""


# -- max-connections-per-ip ----------------------------------------------------------------


def _probe(server, source: str) -> LineClient:
    header = build_v1((source, 40000), ("192.0.2.1" if ":" not in source else "2001:db8::1", 25))
    return LineClient(server.address("probe"), prelude=header)


def test_one_address_cannot_take_every_connection(start_server):
    server = start_server(PROBE_CONFIG_PLAIN)
    first, second = _probe(server, "203.0.113.7"), _probe(server, "203.0.113.7")
    assert first.info()["peer_ip"] == "203.0.113.7"
    assert second.info()["peer_ip"] == "203.0.113.7"
    with _probe(server, "203.0.113.7") as third:
        assert third.readline() == b"REFUSED ip-limit\n"
    with _probe(server, "203.0.113.8") as other:  # another address is served
        assert other.info()["peer_ip"] == "203.0.113.8"
    first.close()
    server.wait_until(lambda: server.registry.listeners["probe"].open_connections <= 1)
    with _probe(server, "203.0.113.7") as again:  # a slot came free
        assert again.info()["peer_ip"] == "203.0.113.7"
    second.close()


def test_ipv6_clients_count_by_their_64(start_server):
    server = start_server(PROBE_CONFIG_PLAIN)
    held = [_probe(server, "2001:db8:1:2::a"), _probe(server, "2001:db8:1:2::b")]
    for client in held:
        assert client.info()["peer_ip"].startswith("2001:db8:1:2::")
    with _probe(server, "2001:db8:1:2:ffff::1") as same_64:
        assert same_64.readline() == b"REFUSED ip-limit\n"
    with _probe(server, "2001:db8:1:3::a") as next_64:
        assert next_64.info()["peer_ip"] == "2001:db8:1:3::a"
    for client in held:
        client.close()


def test_the_limit_follows_the_merge_rule_into_peer_scopes(start_server):
    server = start_server(
        PROBE_CONFIG_PLAIN
        + """
[server.listener.probe.peer."198.51.100.0/24"]
max-connections-per-ip = 1
"""
    )
    held = _probe(server, "198.51.100.1")
    assert held.info()["peer_ip"] == "198.51.100.1"
    with _probe(server, "198.51.100.1") as second:
        assert second.readline() == b"REFUSED ip-limit\n"
    held.close()
