"""Helpers for the IMAP tests: a server configuration, imaplib sessions, and an independent
reader of IMAP response data (so that ENVELOPE and BODYSTRUCTURE are checked field by field
by code that shares nothing with the server's writer)."""

from __future__ import annotations

import imaplib
import re
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.servers import InProcessServer

PASSWORD = "correct horse battery"
USER = "alice@example.test"
TIMEOUT = 20.0


def config(cert: tuple[Path, Path], extra: str = "") -> str:
    """Three listeners: plain (plaintext login allowed), STARTTLS only, implicit TLS."""
    cert_path, key_path = cert
    return f"""
[server]
hostname = "mail.example.test"

[server.tls]
certificate = "{cert_path}"
private-key = "{key_path}"

[directory.throttle]
failure-delay = "10ms"

[server.listener.imap]
bind = "127.0.0.1:0"
protocol = "imap"
imap.auth.allow-plaintext = true

[server.listener.imap-starttls]
bind = "127.0.0.1:0"
protocol = "imap"

[server.listener.imaps]
bind = "127.0.0.1:0"
protocol = "imap"
tls.implicit = true
{extra}
"""


def start(
    start_server: Callable[..., InProcessServer], cert: tuple[Path, Path], extra: str = ""
) -> InProcessServer:
    server = start_server(config(cert, extra))
    server.add_account(USER, PASSWORD)
    return server


def connect(server: InProcessServer, listener: str = "imap") -> imaplib.IMAP4:
    host, port = server.address(listener)
    return imaplib.IMAP4(host, port, timeout=TIMEOUT)


def login(server: InProcessServer, user: str = USER) -> imaplib.IMAP4:
    client = connect(server)
    client.login(user, PASSWORD)
    return client


def connect_tls(server: InProcessServer, context: ssl.SSLContext) -> imaplib.IMAP4_SSL:
    host, port = server.address("imaps")
    return imaplib.IMAP4_SSL(host, port, ssl_context=context, timeout=TIMEOUT)


def append(
    server: InProcessServer,
    address: str,
    mailbox: str,
    data: bytes,
    *,
    recent: bool = False,
    **kw: Any,
) -> int:
    """Store a message directly (as delivery would); returns its UID. Unless ``recent``,
    it counts as seen by an earlier IMAP4rev1 session (``Store.claim_recent``), as mail
    loaded before a test mostly is: no session of the test sees it as \\Recent."""

    async def run() -> int:
        context = server.context
        account = await context.store.get_account(address)
        assert account is not None
        box = await context.store.get_mailbox(account.id, mailbox)
        assert box is not None
        if not recent:
            # claimed before it exists (the UID it will get: the tests append one at a time),
            # so no session told of the append can claim it first (on PostgreSQL it often
            # would, were the claim made after)
            await context.store.claim_recent(box.id, box.uidnext)
        info = await context.store.append(box.id, data, **kw)
        assert recent or info.uid == box.uidnext, "another append came between"
        return info.uid

    return server.run(run)


def message(subject: str, body: str = "Hello.\r\n", sender: str = "bob@example.org") -> bytes:
    return (
        f"From: Bob <{sender}>\r\nTo: {USER}\r\nSubject: {subject}\r\n"
        f"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <{abs(hash(subject))}@x>\r\n"
        f"\r\n{body}"
    ).encode()


# -- an independent reader of response data -------------------------------------------------

_TOKEN = re.compile(
    rb'\s*(?:(\()|(\))|"((?:[^"\\]|\\.)*)"|(~?)\{(\d+)\+?\}(?:\r\n)?'
    rb"|([^\s()\"{\[]+(?:\[[^\]]*\](?:<\d+>)?)?)|(\[)|(\]))",  # an atom, with a [section]<n>
    re.S,
)


class Literal8(bytes):
    """A ``~{n}`` literal (RFC 3516): allowed only in BINARY answers, so kept distinct."""


class Atom(str):
    """An atom (NIL, flags, item names), kept distinct from a string of the same text."""


def parse_data(data: bytes, *, typed: bool = False) -> list[Any]:
    """IMAP data as nested lists: strings as bytes, NIL as None, numbers as int, atoms as
    bytes. ``{n}`` literals are read in place.

    ``typed`` keeps what plain bytes would blur (the Dovecot differential compares it):
    atoms become :class:`Atom`, ``~{n}`` literals :class:`Literal8`, and the brackets of a
    response code the atoms ``[`` and ``]``."""
    stack: list[list[Any]] = [[]]
    pos = 0
    while pos < len(data):
        match = _TOKEN.match(data, pos)
        if match is None:
            if data[pos:].strip() == b"":
                break
            raise ValueError(f"unreadable response data at {data[pos : pos + 60]!r}")
        pos = match.end()
        opening, closing, quoted, tilde, size, atom, left, _right = match.groups()
        if opening:
            stack.append([])
        elif closing:
            done = stack.pop()
            stack[-1].append(done)
        elif quoted is not None:
            stack[-1].append(re.sub(rb"\\(.)", rb"\1", quoted))
        elif size is not None:
            value = data[pos : pos + int(size)]
            stack[-1].append(Literal8(value) if tilde and typed else bytes(value))
            pos += int(size)
        elif atom is not None:
            if atom == b"NIL":
                stack[-1].append(None)
            elif atom.isdigit():
                stack[-1].append(int(atom))
            else:
                stack[-1].append(Atom(atom.decode("utf-8", "replace")) if typed else atom)
        else:
            bracket = "[" if left else "]"
            stack[-1].append(Atom(bracket) if typed else bracket.encode())
    if len(stack) != 1:
        raise ValueError(f"unbalanced parentheses in {data[:200]!r}")
    return stack[0]


def joined(response: list[Any]) -> bytes:
    """imaplib's FETCH data (strings and (header, literal) tuples) as the bytes on the wire."""
    out = b""
    for part in response:
        if isinstance(part, tuple):
            out += part[0] + part[1]
        elif part is not None:
            out += part
    return out


def fetch_items(client: imaplib.IMAP4, numbers: str, items: str, uid: bool = False) -> dict:
    """FETCH one message and return its items as a dict of upper-case name -> value."""
    if uid:
        typ, data = client.uid("FETCH", numbers, items)
    else:
        typ, data = client.fetch(numbers, items)
    assert typ == "OK", data
    parsed = parse_data(joined(data))
    # [seq, [name, value, name, value, ...]]
    values = parsed[1]
    return {values[i].decode().upper(): values[i + 1] for i in range(0, len(values), 2)}


# -- a raw client, for exact replies ---------------------------------------------------------


class Raw:
    """A line client that reads IMAP responses with their literals (``{n}``) inline."""

    def __init__(
        self,
        server: InProcessServer | tuple[str, int],
        listener: str = "imap",
        *,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        # an (host, port) pair: another server (Dovecot, in the differential tests)
        host, port = server if isinstance(server, tuple) else server.address(listener)
        self.sock: socket.socket | ssl.SSLSocket = socket.create_connection(
            (host, port), timeout=TIMEOUT
        )
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname="mail.example.test")
        self.buffer = b""
        self.greeting = self.line()

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed; unread: {self.buffer!r}")
        self.buffer += chunk

    def line(self) -> bytes:
        """One response, with the octets of its literals (``{n}`` and ``~{n}``) in place."""
        out = b""
        while True:
            while b"\r\n" not in self.buffer:
                self._fill()
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            out += line
            literal = re.search(rb"\{(\d+)\}$", line)  # also ~{n}
            if literal is None:
                return out
            size = int(literal.group(1))
            while len(self.buffer) < size:
                self._fill()
            out += b"\r\n" + self.buffer[:size]
            self.buffer = self.buffer[size:]

    def send(self, data: bytes | str) -> None:
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def command(self, text: bytes | str, tag: str = "t1") -> tuple[list[bytes], bytes]:
        """Send ``tag text`` and read up to the tagged reply: (untagged lines, tagged)."""
        payload = text.encode() if isinstance(text, str) else text
        self.send(tag.encode() + b" " + payload + b"\r\n")
        return self.until(tag)

    def until(self, tag: str) -> tuple[list[bytes], bytes]:
        untagged = []
        while True:
            line = self.line()
            if line.startswith(tag.encode() + b" "):
                return untagged, line
            untagged.append(line)

    def login(self) -> None:
        _, tagged = self.command(f'LOGIN "{USER}" "{PASSWORD}"', "login")
        assert tagged.startswith(b"login OK"), tagged

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Raw:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
