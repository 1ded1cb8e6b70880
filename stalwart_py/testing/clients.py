"""A small blocking line client for line-based protocols (a plugin's, SMTP, POP3...)."""

from __future__ import annotations

import json
import socket
import ssl
from typing import Any

TIMEOUT = 10.0


def connect(address: tuple[str, int] | str, timeout: float = TIMEOUT) -> socket.socket:
    """A blocking socket connected to a TCP (host, port) or a Unix-domain socket path."""
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(address)
        return sock
    return socket.create_connection(address, timeout=timeout)


class LineClient:
    """Connect (optionally sending a PROXY header first, optionally over implicit TLS)."""

    def __init__(
        self,
        address: tuple[str, int] | str,
        *,
        prelude: bytes = b"",
        tls: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        self.sock: socket.socket | ssl.SSLSocket = connect(address, timeout)
        if prelude:
            self.sock.sendall(prelude)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname=server_hostname)
        self._buffer = b""

    def readline(self) -> bytes:
        """The next line with its ``\\n`` (what is left when the server closes first)."""
        while b"\n" not in self._buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                line, self._buffer = self._buffer, b""
                return line
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line + b"\n"

    def info(self) -> dict[str, Any]:
        """The next line as JSON (the core tests' probe protocol describes the connection
        in its first line)."""
        line = self.readline()
        try:
            return json.loads(line)
        except ValueError:
            raise AssertionError(f"expected the probe's JSON line, got {line!r}") from None

    def send(self, data: bytes) -> None:
        """Send every byte of ``data``."""
        self.sock.sendall(data)

    def start_tls(self, context: ssl.SSLContext, server_hostname: str | None = None) -> None:
        """Upgrade the connection (after the protocol's STARTTLS exchange)."""
        assert not self._buffer
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> LineClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
