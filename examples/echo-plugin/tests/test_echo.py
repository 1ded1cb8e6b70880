"""The echo plugin's own tests, as a plugin author writes them: a real stalwart-py server on
ephemeral ports from stalwart-py's test kit (the stalwart_* fixtures need no import)."""

from __future__ import annotations

import pytest
from echo_plugin import Echo


@pytest.fixture
def stalwart_config() -> str:
    return """
[server]
hostname = "echo.example.test"

[server.listener.echo]
bind = "127.0.0.1:0"
protocol = "echo"
echo.greeting = "hello from a test"

[server.listener.echo.peer."127.0.0.0/8"]
echo.max-line-length = 20

[server.listener.echos]
bind = "127.0.0.1:0"
protocol = "echo"
tls.implicit = true
max-connections = 1
"""


def test_found_by_its_entry_point(stalwart_protocols):
    assert stalwart_protocols["echo"] is Echo


def test_greets_echoes_and_quits(stalwart_server):
    with stalwart_server.connect("echo") as client:
        assert client.readline() == b"+OK echo.example.test hello from a test\r\n"
        client.send(b"ping\r\n")
        assert client.readline() == b"ping\r\n"
        client.send(b"quit\r\n")
        assert client.readline() == b"+OK bye\r\n"
        assert client.readline() == b""


def test_a_peer_scope_sets_the_line_limit(stalwart_server):
    with stalwart_server.connect("echo") as client:
        client.readline()
        client.send(b"x" * 50 + b"\r\n")
        assert client.readline() == b"-ERR line too long\r\n"
        client.send(b"short\r\n")
        assert client.readline() == b"short\r\n"


def test_implicit_tls_and_a_polite_refusal(stalwart_server):
    with stalwart_server.connect("echos", tls=True) as first:
        assert first.readline() == b"+OK echo.example.test echo ready\r\n"
        assert first.sock.version() in ("TLSv1.2", "TLSv1.3")
        with stalwart_server.connect("echos", tls=True) as second:
            assert second.readline() == b"-ERR Too many connections, try again later\r\n"
