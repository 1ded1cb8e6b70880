"""The listener registry against real sockets: binds, options, limits, peers, TLS, PROXY."""

from __future__ import annotations

import os
import socket
import ssl
import stat
import struct

import pytest
from cryptography import x509

from stalwart_py.proxy_protocol import build_v1, build_v2
from tests.support.clients import LineClient, connect
from tests.support.netdiag import listen_backlog
from tests.support.servers import METRICS_OF_ONE_WORKER


def test_binds_ipv4_ipv6_and_unix_with_real_ports(start_server, tmp_path):
    sock_path = tmp_path / "probe.sock"
    server = start_server(f"""
[server.listener.probe]
bind = ["127.0.0.1:0", "[::1]:0", "{sock_path}"]
protocol = "probe"
""")
    v4, v6 = server.address("probe"), server.address("probe", socket.AF_INET6)
    assert v4[0] == "127.0.0.1" and v4[1] > 0
    assert v6[0] == "::1" and v6[1] > 0
    for address in (v4, v6, str(sock_path)):
        with LineClient(address) as client:
            info = client.info()
            assert info["listener"] == "probe"
            client.send(b"ping\r\n")
            assert client.readline() == b"ping\r\n"
    with LineClient(v6) as client:
        assert client.info()["peer_ip"] == "::1"
    with LineClient(str(sock_path)) as client:
        assert client.info()["peer_ip"] is None


def test_bind_accepts_a_single_string_and_any_ipv6_spelling(start_server):
    server = start_server("""
[server.listener.probe]
bind = "[0:0:0:0:0:0:0:1]:0"
protocol = "probe"
""")
    [address] = server.addresses("probe")
    assert address.host == "::1"


def test_every_socket_option_is_applied(start_server, tmp_path):
    sock_path = tmp_path / "mode.sock"
    server = start_server(f"""
[server.socket]
backlog = 77
reuse-addr = true
reuse-port = true
nodelay = false
ttl = 42
tos = 16
send-buffer-size = "64K"
recv-buffer-size = 131072
linger = 3

[server.listener.probe]
bind = ["127.0.0.1:0", "[::1]:0", "{sock_path}"]
protocol = "probe"
socket.file-mode = "0640"
""")
    runtime = server.registry.listeners["probe"]
    for bound in runtime.sockets.values():
        sock = bound.sock
        if bound.configured.is_unix:
            assert stat.S_IMODE(os.stat(sock_path).st_mode) == 0o640
            continue
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
        assert listen_backlog(bound.actual.family, bound.actual.port) == 77
        if bound.actual.family == socket.AF_INET6:
            assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
    for family in (socket.AF_INET, socket.AF_INET6):
        with LineClient(server.address("probe", family)) as client:
            options = client.info()["sockopts"]
        assert options["nodelay"] == 0
        assert options["ttl"] == 42
        assert options["tos"] == 16
        assert options["sndbuf"] == 2 * 64 * 1024  # Linux doubles what it is given
        assert options["rcvbuf"] == 2 * 131072
        assert options["linger"] == [1, 3]


def test_peer_scope_changes_connection_options_and_protocol_settings(start_server):
    server = start_server("""
[server.probe]
greeting = "server default"

[server.listener.probe]
bind = ["127.0.0.1:0", "[::1]:0"]
protocol = "probe"
socket.ttl = 30

[server.listener.probe.peer."127.0.0.0/8"]
socket.ttl = 99
probe.greeting = "hello loopback v4"
""")
    with LineClient(server.address("probe")) as client:
        info = client.info()
    assert info["sockopts"]["ttl"] == 99
    assert info["greeting"] == "hello loopback v4"
    assert info["scope"] == ['server.listener.probe.peer."127.0.0.0/8"']
    with LineClient(server.address("probe", socket.AF_INET6)) as client:
        info = client.info()
    assert info["sockopts"]["ttl"] == 30
    assert info["greeting"] == "server default"


def test_disabled_listener_is_not_bound(start_server):
    server = start_server("""
[server.listener.on]
bind = "127.0.0.1:0"
protocol = "probe"

[server.listener.off]
bind = "127.0.0.1:0"
protocol = "probe"
enable = false
""")
    assert set(server.registry.listeners) == {"on"}
    assert [item["id"] for item in server.registry.status()] == ["on"]


def _held(address, count):
    clients = [LineClient(address) for _ in range(count)]
    for client in clients:
        assert "listener" in client.info()
    return clients


def _close_all(server, clients):
    for client in clients:
        client.send(b"QUIT\r\n")
        assert client.readline() == b"BYE\n"
        client.close()
    server.wait_until(lambda: server.registry.open_connections == 0)


def test_listener_max_connections(start_server):
    server = start_server("""
[server.listener.probe]
bind = "127.0.0.1:0"
protocol = "probe"
max-connections = 2
""")
    address = server.address("probe")
    held = _held(address, 2)
    with LineClient(address) as extra:
        assert extra.readline() == b"REFUSED listener-limit\n"
        assert extra.readline() == b""  # and closed
    for client in held:  # the others keep working
        client.send(b"still here\r\n")
        assert client.readline() == b"still here\r\n"
    _close_all(server, held)
    assert server.registry.listeners["probe"].open_connections == 0
    with LineClient(address) as again:  # capacity is back
        assert "listener" in again.info()


def test_server_max_connections_counts_every_listener(start_server):
    server = start_server("""
[server]
max-connections = 2

[server.listener.a]
bind = "127.0.0.1:0"
protocol = "probe"

[server.listener.b]
bind = "127.0.0.1:0"
protocol = "probe"
""")
    held = _held(server.address("a"), 1) + _held(server.address("b"), 1)
    with LineClient(server.address("b")) as extra:
        assert extra.readline() == b"REFUSED server-limit\n"
    _close_all(server, held)
    assert server.registry.open_connections == 0
    with LineClient(server.address("a")) as again:
        assert "listener" in again.info()


@pytest.mark.single_worker(METRICS_OF_ONE_WORKER)
def test_peer_scope_max_connections_and_counters_return_to_zero(start_server):
    server = start_server("""
[server.listener.probe]
bind = ["127.0.0.1:0", "[::1]:0"]
protocol = "probe"

[server.listener.probe.peer."127.0.0.0/8"]
max-connections = 1
""")
    held = _held(server.address("probe"), 1)
    with LineClient(server.address("probe")) as extra:
        assert extra.readline() == b"REFUSED peer-limit\n"
    others = _held(server.address("probe", socket.AF_INET6), 3)  # ::1 is outside the scope
    _close_all(server, held + others)
    assert list(server.registry.counts.table.records()) == []  # every count released
    metrics = server.server.context.metrics.render().decode()
    assert 'stalwart_connections_open{listener="probe"} 0.0' in metrics
    assert 'stalwart_connections_refused_total{listener="probe",reason="peer-limit"} 1.0' in (
        metrics
    )
    _close_all(server, _held(server.address("probe"), 1))


def test_denied_peer_scope_is_refused(start_server):
    server = start_server("""
[server.listener.probe]
bind = ["127.0.0.1:0", "[::1]:0"]
protocol = "probe"

[server.peer."127.0.0.1/32"]
allow = false
""")
    with LineClient(server.address("probe")) as denied:
        assert denied.readline() == b"REFUSED peer-denied\n"
        assert denied.readline() == b""
    with LineClient(server.address("probe", socket.AF_INET6)) as allowed:
        assert allowed.info()["peer_ip"] == "::1"
    server.wait_until(lambda: server.registry.open_connections == 0)


def test_most_specific_peer_scope_wins_and_listener_beats_server(start_server):
    server = start_server("""
[server.peer."127.0.0.0/8"]
probe.greeting = "server /8"

[server.peer."127.0.0.1/32"]
probe.greeting = "server /32"
hostname = "from-server-scope.example.test"

[server.listener.probe]
bind = "127.0.0.1:0"
protocol = "probe"

[server.listener.probe.peer."127.0.0.0/16"]
probe.greeting = "listener /16"
""")
    with LineClient(server.address("probe")) as client:
        info = client.info()
    assert info["greeting"] == "listener /16"  # the listener's scope goes on top
    assert info["hostname"] == "from-server-scope.example.test"  # server /32 beat server /8
    assert info["scope"] == [
        'server.peer."127.0.0.1/32"',
        'server.listener.probe.peer."127.0.0.0/16"',
    ]


def test_implicit_tls_with_a_configured_certificate(start_server, server_cert, client_tls):
    cert, key = server_cert
    server = start_server(f"""
[server.listener.probes]
bind = "127.0.0.1:0"
protocol = "probe"
tls.implicit = true
tls.certificate = "{cert}"
tls.private-key = "{key}"
tls.min-version = "1.3"
""")
    with LineClient(
        server.address("probes"), tls=client_tls, server_hostname="mail.example.test"
    ) as client:
        info = client.info()
    assert info["tls"] == "TLSv1.3"
    assert info["sni"] == "mail.example.test"
    plain = connect(server.address("probes"))  # no TLS: the handshake fails, server goes on
    plain.sendall(b"QUIT\r\n")
    assert plain.recv(100) == b""
    plain.close()
    with LineClient(
        server.address("probes"), tls=client_tls, server_hostname="localhost"
    ) as client:
        assert client.info()["tls"] == "TLSv1.3"


def test_a_tls_client_closing_leaves_no_noise_in_the_log(
    start_server, server_cert, client_tls, caplog
):
    """Every TLS connection closed by its client logged asyncio's "returning true from
    eof_received() has no effect when using ssl" (341 times in one test run)."""
    cert, key = server_cert
    server = start_server(f"""
[server.listener.probes]
bind = "127.0.0.1:0"
protocol = "probe"
tls.implicit = true
tls.certificate = "{cert}"
tls.private-key = "{key}"
""")
    for _ in range(3):
        client = LineClient(server.address("probes"), tls=client_tls, server_hostname="localhost")
        assert client.info()["tls"]
        client.sock.unwrap().shutdown(socket.SHUT_WR)  # close_notify, then the TCP FIN
        client.close()
    server.wait_until(lambda: server.registry.listeners["probes"].open_connections == 0)
    assert "eof_received" not in caplog.text


def test_implicit_tls_falls_back_to_a_self_signed_certificate(start_server, tmp_path, caplog):
    server = start_server("""
[server]
hostname = "selfsigned.example.test"

[server.listener.probes]
bind = "127.0.0.1:0"
protocol = "probe"
tls.implicit = true
""")
    assert "self-signed" in caplog.text
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with LineClient(server.address("probes"), tls=context) as client:
        assert client.info()["tls"].startswith("TLSv1.")
        der = client.sock.getpeercert(binary_form=True)
    certificate = x509.load_der_x509_certificate(der)
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert names.value.get_values_for_type(x509.DNSName) == ["selfsigned.example.test"]
    stored = tmp_path / "var" / "tls" / "self-signed-selfsigned.example.test.crt"
    assert stored.exists()
    assert stat.S_IMODE(stored.with_suffix(".key").stat().st_mode) == 0o600


def test_starttls_discards_bytes_sent_before_the_handshake(start_server, server_cert, client_tls):
    cert, key = server_cert
    server = start_server(f"""
[server.tls]
certificate = "{cert}"
private-key = "{key}"

[server.listener.probe]
bind = "127.0.0.1:0"
protocol = "probe"
""")
    with LineClient(server.address("probe")) as client:
        client.info()
        client.send(b"STARTTLS\r\n")
        assert client.readline() == b"GO\n"
        client.start_tls(client_tls, server_hostname="mail.example.test")
        assert client.info()["tls"] is not None
    with LineClient(server.address("probe")) as client:
        client.info()
        client.send(b"STARTTLS\r\nINJECTED\r\n")  # the injection of CVE-2011-0411
        assert client.readline() == b"GO\n"
        client.start_tls(client_tls, server_hostname="mail.example.test")
        client.info()
        client.send(b"after\r\n")
        assert client.readline() == b"after\r\n"  # INJECTED was never echoed


PROXY_CONFIG = """
[server.listener.probe]
bind = ["127.0.0.1:0", "[::1]:0"]
protocol = "probe"
proxy.trusted-networks = ["127.0.0.0/8"]

[server.listener.probe.peer."203.0.113.0/24"]
probe.greeting = "proxied scope"
"""


def test_proxy_v1_from_a_trusted_address(start_server):
    server = start_server(PROXY_CONFIG)
    header = build_v1(("203.0.113.7", 40000), ("192.0.2.1", 25))
    with LineClient(server.address("probe"), prelude=header) as client:
        info = client.info()
    assert info["peer"] == "203.0.113.7:40000"
    assert info["greeting"] == "proxied scope"  # the scope follows the real client


def test_proxy_v2_from_a_trusted_address(start_server):
    server = start_server(PROXY_CONFIG)
    header = build_v2(("2001:db8::7", 40001), ("2001:db8::1", 25))
    with LineClient(server.address("probe"), prelude=header) as client:
        assert client.info()["peer"] == "[2001:db8::7]:40001"
    header = build_v2(("203.0.113.9", 1234), ("192.0.2.1", 25))
    with LineClient(server.address("probe"), prelude=header) as client:
        assert client.info()["peer"] == "203.0.113.9:1234"
    with LineClient(server.address("probe"), prelude=build_v2(None, None)) as client:
        info = client.info()
    # LOCAL names no client: unknown, never the proxy's own (loopback, trusted) address
    assert (info["peer"], info["peer_ip"]) == ("unknown", None)


def test_proxy_header_from_an_untrusted_address_is_just_data(start_server):
    server = start_server(PROXY_CONFIG)
    header = build_v1(("203.0.113.7", 40000), ("::1", 25))
    with LineClient(server.address("probe", socket.AF_INET6), prelude=header) as client:
        info = client.info()
        assert info["peer_ip"] == "::1"
        assert client.readline() == header  # echoed back as an ordinary line


def test_proxy_v2_header_from_an_untrusted_address_is_just_data(start_server):
    server = start_server(PROXY_CONFIG)
    header = build_v2(("203.0.113.7", 40000), ("192.0.2.1", 25))
    assert header.startswith(b"\r\n\r\n\x00\r\nQUIT\n")  # v2's signature
    with LineClient(server.address("probe", socket.AF_INET6), prelude=header) as client:
        assert client.info()["peer_ip"] == "::1"  # not taken as a PROXY header
        # ...but as lines: three echoed, then the probe's own QUIT command answered.
        lines = [client.readline() for _ in range(5)]
    assert lines == [b"\r\n", b"\r\n", b"\x00\r\n", b"BYE\n", b""]


def test_a_bad_proxy_header_closes_only_that_connection(start_server):
    server = start_server(PROXY_CONFIG)
    for garbage in (
        b"HELLO\r\n",
        b"PROXY TCP4 999.1.1.1 1.1.1.1 1 2\r\n",
        b"P" * 200 + b"\r\n",
        b"\r\n\r\n\x00\r\nQUIT\n\x99\x11\x00\x00",
    ):
        with LineClient(server.address("probe"), prelude=garbage) as client:
            assert client.readline() == b""
    header = build_v1(("203.0.113.8", 1), ("192.0.2.1", 25))
    with LineClient(server.address("probe"), prelude=header) as client:
        assert client.info()["peer"] == "203.0.113.8:1"


def test_proxy_header_timeout(start_server):
    server = start_server(
        PROXY_CONFIG.replace(
            'proxy.trusted-networks = ["127.0.0.0/8"]',
            'proxy.trusted-networks = ["127.0.0.0/8"]\nproxy.timeout = "200ms"',
        )
    )
    with LineClient(server.address("probe")) as silent:
        assert silent.readline() == b""  # closed once the header did not come in time


def test_a_line_over_the_limit_is_discarded_and_the_session_goes_on(start_server):
    server = start_server("""
[server.listener.probe]
bind = "127.0.0.1:0"
protocol = "probe"
probe.max-line = 64
""")
    with LineClient(server.address("probe")) as client:
        client.info()
        client.send(b"x" * 500 + b"\r\nshort\r\n")
        assert client.readline() == b"TOO LONG\n"
        assert client.readline() == b"short\r\n"


def test_idle_timeout_closes_a_silent_client(start_server):
    server = start_server("""
[server.listener.probe]
bind = "127.0.0.1:0"
protocol = "probe"
idle-timeout = "300ms"
""")
    with LineClient(server.address("probe")) as client:
        client.info()
        assert client.readline() == b""
    server.wait_until(lambda: server.registry.open_connections == 0)


def test_a_reset_connection_does_not_disturb_the_server(start_server):
    server = start_server("""
[server.listener.probe]
bind = "127.0.0.1:0"
protocol = "probe"
""")
    sock = connect(server.address("probe"))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # RST
    server.wait_until(lambda: server.registry.open_connections == 0)
    with LineClient(server.address("probe")) as client:
        assert client.info()["listener"] == "probe"


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
def test_wildcard_binds(start_server, family):
    text = '"*:0"' if family == socket.AF_INET else '"[*]:0"'
    server = start_server(f"""
[server.listener.probe]
bind = {text}
protocol = "probe"
""")
    port = server.addresses("probe")[0].port
    host = "127.0.0.1" if family == socket.AF_INET else "::1"
    with LineClient((host, port)) as client:
        assert client.info()["peer_ip"] == host
