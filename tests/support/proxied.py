"""Clients that connect through a PROXY protocol v1 header naming another client address, as
HAProxy's ``send-proxy`` does: a listener that trusts 127.0.0.0/8 then sees them as coming from
``client`` (any address, 10.0.0.1 or 2001:db8::1, without binding it on this machine)."""

from __future__ import annotations

import http.client
import imaplib
import smtplib
import socket

from stalwart_py.proxy_protocol import build_v1

TIMEOUT = 20.0


def proxy_header(client: str, port: int) -> bytes:
    """The header for a connection from ``client`` to ``port`` on this host."""
    destination = "::1" if ":" in client else "127.0.0.1"
    return build_v1((client, 40000), (destination, port))


def proxied_socket(address: tuple[str, int], client: str, timeout: float = TIMEOUT):
    sock = socket.create_connection(address, timeout=timeout)
    sock.sendall(proxy_header(client, address[1]))
    return sock


class ProxiedSMTP(smtplib.SMTP):
    """smtplib behind a PROXY header that names ``client`` as the peer."""

    def __init__(self, client: str, host: str, port: int) -> None:
        self.client = client
        super().__init__(host, port, timeout=TIMEOUT)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return proxied_socket((host, port), self.client, timeout)


class ProxiedIMAP(imaplib.IMAP4):
    """imaplib behind a PROXY header that names ``client`` as the peer."""

    def __init__(self, client: str, host: str, port: int) -> None:
        self.client = client
        super().__init__(host, port, timeout=TIMEOUT)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return proxied_socket((self.host, self.port), self.client, timeout or TIMEOUT)


class ProxiedHTTP(http.client.HTTPConnection):
    """http.client behind a PROXY header that names ``client`` as the peer."""

    def __init__(self, client: str, host: str, port: int) -> None:
        self.client = client
        super().__init__(host, port, timeout=TIMEOUT)

    def connect(self) -> None:
        self.sock = proxied_socket((self.host, self.port), self.client, self.timeout)
