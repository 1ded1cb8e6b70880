"""Shared by the SMTP and LMTP tests: a configuration with every listener, and store reads."""

from __future__ import annotations

import smtplib
from pathlib import Path
from typing import Any

from tests.support.servers import InProcessServer

PASSWORD = "correct-horse-battery"


CHECKS_OFF = "".join(
    f'[auth.{method}]\nverify = "disable"\n' for method in ("spf", "dkim", "dmarc", "arc", "iprev")
)


def server_base(cert: tuple[Path, Path]) -> str:
    """The [server] table every mail test starts from: the test host name and certificate,
    no delay after a failed login, and the queue held (queued messages, remote recipients and
    DSNs, stay where the tests look for them)."""
    return f"""
[server]
hostname = "mail.example.test"

[server.tls]
certificate = "{cert[0]}"
private-key = "{cert[1]}"

[directory.throttle]
failure-delay = 0

[queue]
hold = true
"""


def smtp_config(cert: tuple[Path, Path], socket_path: Path, extra: str = "", smtp: str = "") -> str:
    """smtp (MX, loopback may NOT relay, so relay rules can be tested from 127.0.0.1),
    submission (AUTH required), submissions (implicit TLS), lmtp (TCP and a Unix socket).
    The smtp listener is bound on 127.0.0.1 and ::1; the ::1 peer scope changes limits.
    ``smtp`` adds keys to [server.smtp], ``extra`` tables at the end. The checks of mail
    from strangers are off (these tests are about SMTP; tests/support/inbound.py has those):
    with loopback no relay host, they would otherwise ask the host's DNS."""
    return f"""
{server_base(cert)}
{CHECKS_OFF}

[server.smtp]
relay-hosts = []
max-recipients-per-message = 3
{smtp}

[server.smtp.domains."relay.test"]
relay = true

[server.smtp.domains."bounces.example.test"]
oob = true

[server.smtp.domains."*.fbl.test"]
fbl = true

[server.smtp.domains."quiet.fbl.test"]
fbl = false

[server.listener.smtp]
bind = ["127.0.0.1:0", "[::1]:0"]
protocol = "smtp"

[server.listener.smtp.peer."::1/128"]
smtp.max-recipients-per-message = 1
smtp.max-message-size = 2000

[server.listener.submission]
bind = "127.0.0.1:0"
protocol = "smtp"
smtp.auth.require = true

[server.listener.submissions]
bind = "127.0.0.1:0"
protocol = "smtp"
tls.implicit = true
smtp.auth.require = true

[server.listener.lmtp]
bind = ["127.0.0.1:0", "{socket_path}"]
protocol = "lmtp"
{extra}
"""


def mailbox_messages(server: InProcessServer, address: str, mailbox: str = "INBOX") -> list[bytes]:
    """Every stored message of a mailbox, oldest first (the kit's RunningServer.messages)."""
    return server.messages(address, mailbox)


def queue(server: InProcessServer) -> list[Any]:
    return server.run(server.context.store.queue_entries)


def without_trace(stored: bytes) -> bytes:
    """The message as sent: the Return-Path and Received fields prepended on delivery go,
    with the junk filter's X-Spam-* verdict fields after them."""
    assert stored.startswith(b"Return-Path: <"), stored[:80]
    rest = stored.split(b"\r\n", 1)[1]
    assert rest.startswith(b"Received: ")
    # The Received field is folded: its continuation lines start with a tab.
    lines = rest.split(b"\r\n")
    index = 1
    while lines[index].startswith(b"\t"):
        index += 1
    # and the junk filter's verdict on mail that is not submission (stalwart_py/junk)
    while lines[index].startswith((b"X-Spam-Status: ", b"X-Spam-Score: ")):
        index += 1
    return b"\r\n".join(lines[index:])


def metric(server: InProcessServer, name: str, **labels: str) -> float:
    return server.metric(name, **labels)


def connect(server: InProcessServer, listener: str = "smtp", **kwargs: Any) -> smtplib.SMTP:
    host, port = server.address(listener)
    return smtplib.SMTP(host, port, timeout=20, **kwargs)
