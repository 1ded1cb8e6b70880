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
    """``timeout.*`` of a milter's ``[filter."<id>"]`` table."""

    connect: Duration = 30.0  # to connect (and TLS)
    # For each answer before the content (connect, HELO, MAIL, RCPT, DATA).
    command: Duration = 30.0
    # For each answer to the header, body chunks and end of message (a milter's progress
    # reply restarts it).
    data: Duration = 60.0


@dataclass(frozen=True, slots=True)
class MilterSettings:
    """The keys of a ``[filter."<id>"]`` table of ``type = "milter"`` (docs/filters.md)."""

    hostname: str  # the milter's host or IP address, or the path of its Unix socket
    port: Port | None = None  # its port (required on TCP)
    tls: bool = False  # TLS to the milter
    allow_invalid_certs: bool = False  # with tls: accept any certificate (a self-signed milter)
    timeout: MilterTimeouts = field(default_factory=MilterTimeouts)

    def __post_init__(self) -> None:
        if not self.hostname.startswith("/") and self.port is None:
            raise ValueError("a milter on TCP needs a port (or give a Unix socket path)")
        if self.hostname.startswith("/") and self.tls:
            raise ValueError("tls is for a milter on TCP, not on a Unix socket")
