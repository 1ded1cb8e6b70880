"""``[filter."<id>"]`` keys of a milter (``type = "milter"``), named as Stalwart names its
``[session.milter."<id>"]`` keys::

    [filter."opendkim"]
    type = "milter"
    hostname = "127.0.0.1"        # or the path of a Unix socket ("/run/opendkim/opendkim.sock")
    port = 8891
    tls = false                   # TLS to the milter
    allow-invalid-certs = false   # with tls: accept any certificate (a self-signed milter)
    timeout.connect = "30s"
    timeout.command = "30s"       # each answer before the content
    timeout.data = "60s"          # each answer to header, body and end of message
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stalwart_py.config.types import Duration, Port


@dataclass(frozen=True, slots=True)
class MilterTimeouts:
    connect: Duration = 30.0
    command: Duration = 30.0
    data: Duration = 60.0


@dataclass(frozen=True, slots=True)
class MilterSettings:
    hostname: str
    port: Port | None = None
    tls: bool = False
    allow_invalid_certs: bool = False
    timeout: MilterTimeouts = field(default_factory=MilterTimeouts)

    def __post_init__(self) -> None:
        if not self.hostname.startswith("/") and self.port is None:
            raise ValueError("a milter on TCP needs a port (or give a Unix socket path)")
        if self.hostname.startswith("/") and self.tls:
            raise ValueError("tls is for a milter on TCP, not on a Unix socket")
