"""Helpers for the ManageSieve and Sieve delivery tests: a server configuration, a raw line
client, and delivery through the pipeline."""

from __future__ import annotations

from pathlib import Path

from stalwart_py.delivery import Envelope, Origin, Recipient
from tests.support.clients import LineClient

PASSWORD = "correct horse battery"


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
"""


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


def deliver(server, message: bytes, *recipients: str, mail_from: str = "ann@remote.test"):
    """Deliver through the pipeline SMTP uses (until the SMTP listener lands on main)."""
    envelope = Envelope(mail_from, tuple(Recipient(r) for r in recipients))
    return server.run(server.context.delivery.deliver, envelope, message, Origin("ESMTP", "t1"))


def mailbox_contents(server, address: str) -> dict[str, list[tuple[frozenset[str], bytes]]]:
    """Every mailbox of an account with its messages' flags and bytes."""
    store = server.context.store

    async def read() -> dict[str, list[tuple[frozenset[str], bytes]]]:
        account = await store.get_account(address)
        out = {}
        for mailbox in await store.list_mailboxes(account.id):
            infos = await store.messages(mailbox.id)
            blobs = await store.read_blobs([info.blob_id for info in infos])
            out[mailbox.name] = [(info.flags, blobs[info.blob_id]) for info in infos]
        return out

    return server.run(read)


def queued(server) -> list[tuple[str, list[str], str, bytes]]:
    """(MAIL FROM, recipients, source, data) of each queued message."""
    store = server.context.store

    async def read():
        out = []
        for entry in await store.queue_entries():
            data = (await store.read_blobs([entry.blob_id]))[entry.blob_id]
            out.append((entry.mail_from, [r.address for r in entry.recipients], entry.source, data))
        return out

    return server.run(read)
