"""A real HAProxy in front, sending PROXY headers (v1 ``send-proxy`` and v2 ``send-proxy-v2``)
to the implicit-TLS listeners, as deployments behind a load balancer do.

HAProxy writes the PROXY header and the client's first bytes (the TLS ClientHello) in one
segment. In the field, 1 of 18 handshakes succeeded through HAProxy 2.6: the ClientHello was
discarded as "sent before the TLS handshake". Every handshake here must succeed.
"""

from __future__ import annotations

import imaplib
import smtplib
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.integration import imap_support
from tests.support.servers import free_port

pytestmark = pytest.mark.interop

HANDSHAKES = 18
READY_WAIT = 20.0


def haproxy_config(fronts: dict[str, tuple[int, tuple[str, int], str]]) -> str:
    """``fronts``: name -> (front port, backend address, "send-proxy" or "send-proxy-v2")."""
    text = """
global
    log stdout format raw local0 info

defaults
    mode tcp
    log global
    timeout connect 5s
    timeout client 30s
    timeout server 30s
"""
    for name, (port, (host, backend_port), send) in fronts.items():
        text += f"""
frontend {name}
    bind 127.0.0.1:{port}
    default_backend be_{name}

backend be_{name}
    server s1 {host}:{backend_port} {send}
"""
    return text


@pytest.fixture
def server(start_server, server_cert):
    server = imap_support.start(
        start_server,
        server_cert,
        extra="""
proxy.trusted-networks = ["127.0.0.0/8"]

[server.listener.submissions]
bind = "127.0.0.1:0"
protocol = "smtp"
tls.implicit = true
smtp.auth.require = true
proxy.trusted-networks = ["127.0.0.0/8"]
""",
    )
    return server


@pytest.fixture
def fronts(server, tmp_path: Path) -> Iterator[dict[str, int]]:
    """HAProxy with four frontends: {imaps,smtps} x {v1,v2}; yields name -> front port."""
    binary = require_tool("haproxy")
    wanted = {
        f"{service}_{version}": (free_port(), server.address(listener), send)
        for service, listener in (("imaps", "imaps"), ("smtps", "submissions"))
        for version, send in (("v1", "send-proxy"), ("v2", "send-proxy-v2"))
    }
    path = tmp_path / "haproxy.cfg"
    path.write_text(haproxy_config(wanted))
    check = subprocess.run([binary, "-c", "-f", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    process = subprocess.Popen(
        [binary, "-f", str(path), "-db"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        ports = {name: port for name, (port, _, _) in wanted.items()}
        for port in ports.values():
            _wait_listening(port, process)
        yield ports
    finally:
        process.terminate()
        process.wait(10)


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    """Until HAProxy accepts on ``port``: a connect that succeeds is the readiness signal."""
    deadline = time.monotonic() + READY_WAIT
    while True:
        assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # ok: polling HAProxy's bind, which has no other signal


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_imaps_through_haproxy(server, fronts, client_tls: ssl.SSLContext, version: str):
    port = fronts[f"imaps_{version}"]
    for _ in range(HANDSHAKES):
        with imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=client_tls, timeout=10) as client:
            assert client.login(imap_support.USER, imap_support.PASSWORD)[0] == "OK"
            assert client.select("INBOX")[0] == "OK"
            client.logout()


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_submissions_through_haproxy(server, fronts, client_tls: ssl.SSLContext, version: str):
    port = fronts[f"smtps_{version}"]
    for number in range(HANDSHAKES):
        with smtplib.SMTP_SSL("127.0.0.1", port, context=client_tls, timeout=10) as client:
            client.login(imap_support.USER, imap_support.PASSWORD)
            client.sendmail(
                imap_support.USER,
                [imap_support.USER],
                f"Subject: through haproxy {version} {number}\r\n\r\nhello\r\n",
            )
    with imaplib.IMAP4_SSL(
        "127.0.0.1", fronts[f"imaps_{version}"], ssl_context=client_tls, timeout=10
    ) as client:
        client.login(imap_support.USER, imap_support.PASSWORD)
        _, data = client.select("INBOX")
    assert int(data[0]) == HANDSHAKES


def test_a_direct_connection_without_a_header_is_not_served(server, client_tls):
    """The listeners really expect the header: HAProxy's success above is not by accident."""
    with pytest.raises((ssl.SSLError, OSError, imaplib.IMAP4.abort)):
        imaplib.IMAP4_SSL(*server.address("imaps"), ssl_context=client_tls, timeout=5)
