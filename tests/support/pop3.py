"""Helpers for the POP3 tests: a server configuration (plain with USER allowed, STLS-only and
implicit TLS listeners, IMAP beside them), messages put into INBOX through the store, and
poplib clients."""

from __future__ import annotations

import poplib
import ssl
from collections.abc import Sequence
from pathlib import Path

from tests.support.servers import InProcessServer

USER = "pat@example.test"
PASSWORD = "a pop3 password"
TIMEOUT = 20


def config(cert: tuple[Path, Path] | None, extra: str = "") -> str:
    """The POP3 test configuration; without ``cert``, for the kit's ``start(..., tls=True)``."""
    tls = (
        ""
        if cert is None
        else (f'[server.tls]\ncertificate = "{cert[0]}"\nprivate-key = "{cert[1]}"\n')
    )
    return f"""
[server]
hostname = "mail.example.test"

{tls}

[directory.throttle]
failure-delay = 0

[server.listener.pop3]
bind = "127.0.0.1:0"
protocol = "pop3"
pop3.auth.allow-plaintext = true
{extra}

[server.listener.pop3-stls]
bind = "127.0.0.1:0"
protocol = "pop3"

[server.listener.pop3s]
bind = "127.0.0.1:0"
protocol = "pop3"
tls.implicit = true

[server.listener.imap]
bind = "127.0.0.1:0"
protocol = "imap"
imap.auth.allow-plaintext = true
"""


def message(number: int, body: bytes = b"Hello.\r\n", size: int = 0) -> bytes:
    head = b"From: sender@example.org\r\nTo: %s\r\nSubject: message %d\r\n\r\n" % (
        USER.encode(),
        number,
    )
    filler = b""
    if size:
        line = b"x" * 76 + b"\r\n"
        filler = line * max(0, (size - len(head) - len(body)) // len(line))
    return head + body + filler


def fill(server: InProcessServer, messages: Sequence[bytes], address: str = USER) -> list[int]:
    """Append ``messages`` to the INBOX of ``address`` through the store; their UIDs."""
    store = server.context.store

    async def run() -> list[int]:
        account = await store.get_account(address)
        assert account is not None
        inbox = await store.get_mailbox(account.id, "INBOX")
        assert inbox is not None
        return [(await store.append(inbox.id, data)).uid for data in messages]

    return server.run(run)


def connect(server: InProcessServer, listener: str = "pop3") -> poplib.POP3:
    return poplib.POP3(*server.address(listener), timeout=TIMEOUT)


def login(server: InProcessServer, listener: str = "pop3") -> poplib.POP3:
    client = connect(server, listener)
    client.user(USER)
    client.pass_(PASSWORD)
    return client


def connect_tls(server: InProcessServer, context: ssl.SSLContext) -> poplib.POP3_SSL:
    return poplib.POP3_SSL(*server.address("pop3s"), context=context, timeout=TIMEOUT)
