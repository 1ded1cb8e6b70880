"""Helpers for the ManageSieve and Sieve delivery tests: a server configuration, a raw line
client, scripts activated over ManageSieve (sievelib), delivery over SMTP and LMTP, and
mailboxes read back over IMAP."""

from __future__ import annotations

import imaplib
import smtplib
from dataclasses import dataclass
from pathlib import Path

from sievelib.managesieve import Client

from tests.support.clients import LineClient

PASSWORD = "correct horse battery"
TIMEOUT = 10


def config(cert: tuple[Path, Path] | None = None, extra: str = "") -> str:
    tls = ""
    if cert is not None:
        tls = f'[server.tls]\ncertificate = "{cert[0]}"\nprivate-key = "{cert[1]}"\n\n'
    return f"""
[server]
hostname = "mail.example.test"

{tls}[directory.throttle]
failure-delay = 0

[queue]
hold = true  # redirects and vacation replies stay queued, where the tests look for them

[server.listener.managesieve]
bind = "127.0.0.1:0"
protocol = "managesieve"
{extra}

[server.listener.smtp]
bind = "127.0.0.1:0"
protocol = "smtp"

[server.listener.lmtp]
bind = "127.0.0.1:0"
protocol = "lmtp"

[server.listener.imap]
bind = "127.0.0.1:0"
protocol = "imap"
imap.auth.allow-plaintext = true
"""


def sieve_server(start_server):
    """A server for the Sieve delivery tests (ManageSieve without TLS) with the accounts
    bob@example.test and carol@example.test."""
    server = start_server(config(extra="managesieve.auth.require-tls = false\n"))
    for name in ("bob", "carol"):
        server.add_account(f"{name}@example.test", PASSWORD)
    return server


def activate(server, script: str, user: str = "bob@example.test", name: str = "main", **extra):
    """Upload ``script`` (and the ``extra`` scripts, by name) over ManageSieve and make it
    the active one."""
    host, port = server.address("managesieve")
    client = Client(host, port)
    assert client.connect(user, PASSWORD, authmech="PLAIN")
    for other, text in extra.items():
        assert client.putscript(other, text), client.errmsg
    assert client.putscript(name, script), client.errmsg
    assert client.setactive(name)
    client.logout()


class SieveLineClient(LineClient):
    """A raw ManageSieve client: sends lines, reads responses up to OK/NO/BYE."""

    def response(self) -> list[bytes]:
        """Lines up to and including the final OK/NO/BYE line (literals kept inline)."""
        lines = []
        while True:
            line = self.readline()
            if not line:
                raise ConnectionError(f"closed after {lines!r}")
            lines.append(line)
            if line.rstrip(b"\r\n").endswith(b"}") and b"{" in line:
                size = int(line[line.rindex(b"{") + 1 : -3].rstrip(b"+"))
                data = b""
                while len(data) < size:
                    chunk = self._buffer[: size - len(data)]
                    self._buffer = self._buffer[len(chunk) :]
                    data += chunk
                    if len(data) < size:
                        self._buffer += self.sock.recv(65536)
                lines.append(data)
                continue
            if line[:2] in (b"OK", b"NO") or line[:3] == b"BYE":
                return lines

    def command(self, text: bytes) -> list[bytes]:
        self.send(text + b"\r\n")
        return self.response()


@dataclass(frozen=True)
class Reply:
    code: int
    enhanced: str
    text: str


def _reply(code: int, message: bytes) -> Reply:
    enhanced, _, text = message.decode().partition(" ")
    return Reply(code, enhanced, text)


def deliver(server, message: bytes, *recipients: str, mail_from: str = "ann@remote.test"):
    """Send ``message`` over SMTP; [the reply to its data] (one reply for the transaction)."""
    host, port = server.address("smtp")
    with smtplib.SMTP(host, port, timeout=TIMEOUT) as client:
        client.ehlo("client.remote.test")
        code, text = client.mail(mail_from)
        assert code == 250, text
        for recipient in recipients:
            code, text = client.rcpt(recipient)
            assert code == 250, text
        return [_reply(*client.data(message))]


def deliver_lmtp(server, message: bytes, *recipients: str, mail_from: str = "ann@remote.test"):
    """Send ``message`` over LMTP: one reply per recipient, in order (RFC 2033)."""
    with LineClient(server.address("lmtp")) as client:
        client.readline()
        lines = [f"LHLO client.remote.test\r\nMAIL FROM:<{mail_from}>\r\n".encode()]
        lines += [f"RCPT TO:<{r}>\r\n".encode() for r in recipients]
        client.send(b"".join(lines) + b"DATA\r\n")
        while not client.readline().startswith(b"250 "):  # the end of the LHLO reply
            pass
        for _ in range(1 + len(recipients)):
            assert client.readline().startswith(b"250 ")
        assert client.readline().startswith(b"354 ")
        client.send(message.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        replies = []
        for _ in recipients:
            line = client.readline().rstrip(b"\r\n")
            replies.append(_reply(int(line[:3]), line[4:]))
        return replies


def mailbox_contents(server, address: str) -> dict[str, list[tuple[frozenset[str], bytes]]]:
    """Every mailbox of an account with its messages' flags and bytes, read over IMAP."""
    host, port = server.address("imap")
    out: dict[str, list[tuple[frozenset[str], bytes]]] = {}
    with imaplib.IMAP4(host, port, timeout=TIMEOUT) as client:
        client.login(address, PASSWORD)
        _, listing = client.list()
        for line in listing:
            attributes, _, name = line.decode().partition(') "/" ')
            if "\\Noselect" in attributes or "\\NonExistent" in attributes:
                continue  # a parent that exists only as a path, such as News for News/Daily
            name = name.strip('"')
            _, data = client.select(f'"{name}"', readonly=True)
            messages: list[tuple[frozenset[str], bytes]] = []
            if int(data[0]):
                _, fetched = client.fetch("1:*", "(FLAGS BODY.PEEK[])")
                for item in fetched:
                    if isinstance(item, tuple):
                        flags = frozenset(f.decode() for f in imaplib.ParseFlags(item[0]))
                        # what Sieve set: \\Recent is the server's (new mail, RFC 3501 2.3.2)
                        flags -= {"\\Recent"}
                        messages.append((flags, item[1]))
            out[name] = messages
    return out


def where(server, address="bob@example.test") -> dict[str, list[list[str]]]:
    """Non-empty mailboxes -> the sorted flags of each message."""
    return {
        name: [sorted(flags) for flags, _ in messages]
        for name, messages in mailbox_contents(server, address).items()
        if messages
    }


def queued(server) -> list[tuple[str, list[str], str, bytes]]:
    """(MAIL FROM, recipients, source, data) of each queued message (from the store: the queue
    is the server's own, held in these tests)."""
    store = server.context.store

    async def read():
        out = []
        for entry in await store.queue_entries():
            data = (await store.read_blobs([entry.blob_id]))[entry.blob_id]
            out.append((entry.mail_from, [r.address for r in entry.recipients], entry.source, data))
        return out

    return server.run(read)
