"""A server that receives mail from strangers, for the issue 15 tests: an MX listener that
trusts PROXY headers from loopback (so a test poses as any outside address), a submission
listener, and an IMAP listener to read where each message landed."""

from __future__ import annotations

import imaplib
import re
from pathlib import Path

from tests.support.servers import InProcessServer

PASSWORD = "correct-horse-battery"
USER = "bob@example.test"


def inbound_config(cert: tuple[Path, Path], *, smtp: str = "", extra: str = "") -> str:
    """``smtp`` adds keys to [server.smtp]; ``extra`` adds tables at the end ([auth],
    [spam.dnsbl], [resolver])."""
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

[server.smtp]
relay-hosts = []
{smtp}

[server.listener.mx]
bind = "127.0.0.1:0"
protocol = "smtp"
proxy.trusted-networks = ["127.0.0.0/8"]

[server.listener.submission]
bind = "127.0.0.1:0"
protocol = "smtp"
smtp.auth.require = true
smtp.auth.allow-plaintext = true
proxy.trusted-networks = ["127.0.0.0/8"]

[server.listener.imap]
bind = "127.0.0.1:0"
protocol = "imap"
imap.auth.allow-plaintext = true
{extra}
"""


def fetch_mailbox(
    server: InProcessServer, mailbox: str, user: str = USER
) -> list[tuple[bytes, bytes]]:
    """Over IMAP, as a user's client reads it: (flags, message) for every message of
    ``mailbox``, oldest first."""
    host, port = server.address("imap")
    with imaplib.IMAP4(host, port, timeout=20) as imap:
        imap.login(user, PASSWORD)
        status, _ = imap.select(f'"{mailbox}"', readonly=True)
        assert status == "OK", mailbox
        status, data = imap.fetch("1:*", "(FLAGS BODY.PEEK[])")
        if data == [None]:
            return []
        found = []
        for item in data:
            if isinstance(item, tuple):
                flags = re.search(rb"FLAGS \(([^)]*)\)", item[0])
                found.append((flags.group(1) if flags else b"", item[1]))
        return found


def special_use(server: InProcessServer, use: str, user: str = USER) -> list[str]:
    """Over IMAP: the names of the mailboxes LIST shows with the special use ``use``."""
    host, port = server.address("imap")
    with imaplib.IMAP4(host, port, timeout=20) as imap:
        imap.login(user, PASSWORD)
        _, data = imap.list()
        return [
            line.decode().rsplit(" ", 1)[1].strip('"')
            for line in data
            if isinstance(line, bytes) and use.encode() in line
        ]
