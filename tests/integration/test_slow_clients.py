"""Clients that send a byte every few seconds (slowloris), and one address that opens every
connection it can.

Found in the field: sending one byte every 5 s kept 50 of 50 SMTP, IMAP and ManageSieve
connections open past a 15 s command timeout, and 300 such MX connections took every slot of
``server.max-connections``, so that IMAP, HTTP and submission refused everyone. Here the gaps
stay well inside every idle timeout; the command's deadline must end each connection anyway,
and the per-address limit keeps the other listeners open.
"""

from __future__ import annotations

import asyncio
import http.client
import imaplib
import time

import anyio
import pytest

TRICKLE_GAP = 0.25  # seconds between bytes: far inside the 5 s idle timeout
COMMAND_TIMEOUT = 1.0
CLIENTS = 50

CONFIG = f"""
[server]
hostname = "mail.example.test"
idle-timeout = "5s"
command-timeout = "{COMMAND_TIMEOUT}s"

[server.smtp.timeout]
command = "5s"
data = "5s"

[server.listener.smtp]
bind = "127.0.0.1:0"
protocol = "smtp"

[server.listener.imap]
bind = "127.0.0.1:0"
protocol = "imap"
imap.auth.allow-plaintext = true

[server.listener.sieve]
bind = "127.0.0.1:0"
protocol = "managesieve"
"""

# What each protocol's slow client sends, a byte at a time, after reading the greeting.
TRICKLES = {
    "smtp": b"EHLO a-very-slow-client.example\r\n",
    "imap": b"a1 CAPABILITY and some more words to keep it going\r\n",
    "sieve": b'AUTHENTICATE "PLAIN" "a-very-long-and-very-slow-argument"\r\n',
}


async def trickle(address: tuple[str, int], data: bytes) -> tuple[float, bytes]:
    """Send ``data`` a byte per TRICKLE_GAP; return how long the server kept the connection
    and what it said last."""
    reader, writer = await asyncio.open_connection(*address)
    started = time.monotonic()
    last = b""
    try:
        await asyncio.wait_for(reader.read(4096), 5)  # the greeting
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            try:
                chunk = await asyncio.wait_for(reader.read(4096), TRICKLE_GAP)
            except TimeoutError:
                continue
            if not chunk:
                break
            last = chunk
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
    return time.monotonic() - started, last


@pytest.mark.parametrize("listener", ["smtp", "imap", "sieve"])
def test_a_trickle_is_cut_off_at_the_command_deadline(start_server, listener: str):
    server = start_server(CONFIG)
    address = server.address(listener)
    durations: list[tuple[float, bytes]] = []

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for _ in range(CLIENTS):
                group.start_soon(lambda: _record(durations, trickle(address, TRICKLES[listener])))

    anyio.run(main)
    assert len(durations) == CLIENTS
    full = len(TRICKLES[listener]) * TRICKLE_GAP  # what the trickle would take, uncut
    for held, _ in durations:
        assert held < full, f"held {held:.1f}s: the whole trickle was read"
        assert held < COMMAND_TIMEOUT + 2.5, f"held {held:.1f}s past the command timeout"
    goodbye = b"421 " if listener == "smtp" else b"BYE"
    assert all(goodbye in last for _, last in durations), durations[:3]


async def _record(into: list, coroutine) -> None:
    into.append(await coroutine)


def test_one_address_cannot_starve_the_other_listeners(start_server):
    """The field report: 300 held MX connections with server.max-connections = 300. With a
    per-address limit, the one address gets its share and the rest stay open."""
    server = start_server(
        CONFIG.replace(
            "[server]\n", "[server]\nmax-connections = 32\nmax-connections-per-ip = 30\n"
        )
        + """
[server.listener.http]
bind = "127.0.0.1:0"
protocol = "http"
"""
    )
    host, port = server.address("smtp")
    held = []
    refused = 0

    async def hold_many() -> None:
        nonlocal refused
        for _ in range(35):
            reader, writer = await asyncio.open_connection(host, port)
            greeting = await asyncio.wait_for(reader.readline(), 5)
            if greeting.startswith(b"421"):
                refused += 1
                writer.close()
            else:
                held.append(writer)

    async def main() -> None:
        await hold_many()
        # The other listeners still serve the same address's neighbours (here: loopback).
        imap = await anyio.to_thread.run_sync(_imap_greeting, server.address("imap"))
        status = await anyio.to_thread.run_sync(_http_status, server.address("http"))
        for writer in held:
            writer.close()
        assert imap.startswith("* OK"), imap
        assert status == 200

    # Loopback is one address here, so the per-address limit is what refuses past 30.
    anyio.run(main)
    assert len(held) == 30 and refused == 5


def _imap_greeting(address: tuple[str, int]) -> str:
    with imaplib.IMAP4(*address, timeout=5) as client:
        return client.welcome.decode()


def _http_status(address: tuple[str, int]) -> int:
    connection = http.client.HTTPConnection(*address, timeout=5)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status
    finally:
        connection.close()
