"""A probe protocol for the core's tests: it tells the client what the server sees."""

from __future__ import annotations

import json
import socket
import struct
from dataclasses import dataclass
from typing import Any

from stalwart_py.plugin import Connection, ConnectionClosed, LineTooLong, Protocol, Refusal


@dataclass(frozen=True)
class ProbeSettings:
    greeting: str = "probe"
    max_line: int = 1000


def socket_options(sock: socket.socket | None) -> dict[str, Any]:
    if sock is None or sock.family == socket.AF_UNIX:
        return {}
    v6 = sock.family == socket.AF_INET6
    linger_on, linger_seconds = struct.unpack(
        "ii", sock.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8)
    )
    return {
        "nodelay": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
        "ttl": sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS)
        if v6
        else sock.getsockopt(socket.IPPROTO_IP, socket.IP_TTL),
        "tos": sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS)
        if v6
        else sock.getsockopt(socket.IPPROTO_IP, socket.IP_TOS),
        "sndbuf": sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
        "rcvbuf": sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
        "linger": [linger_on, linger_seconds],
    }


def describe(conn: Connection) -> dict[str, Any]:
    return {
        "peer": str(conn.peer),
        "peer_ip": conn.peer.host if conn.peer.ip else None,
        "local": str(conn.local),
        "listener": conn.listener.id,
        "scope": list(conn.listener.scope),
        "hostname": conn.listener.settings.hostname,
        "greeting": conn.settings.greeting,
        "tls": conn.tls.version if conn.tls else None,
        "sni": conn.tls.server_name if conn.tls else None,
        "sockopts": socket_options(conn.raw_socket),
    }


class Probe(Protocol):
    """Sends one JSON line describing the connection, then echoes lines; ``STARTTLS`` upgrades,
    ``QUIT`` ends. A refusal is ``REFUSED <reason>``."""

    name = "probe"
    api_versions = (1, 2)  # uses nothing version 2 added
    settings = ProbeSettings
    starttls = True

    async def handle(self, conn: Connection) -> None:
        await conn.send(json.dumps(describe(conn)).encode() + b"\n")
        while True:
            try:
                line = await conn.readline(conn.settings.max_line)
            except LineTooLong:
                await conn.send(b"TOO LONG\n")
                continue
            except ConnectionClosed:
                return
            command = line.strip().upper()
            if command == b"QUIT":
                await conn.send(b"BYE\n")
                return
            if command == b"STARTTLS":
                await conn.send(b"GO\n")
                await conn.start_tls()
                await conn.send(json.dumps(describe(conn)).encode() + b"\n")
                continue
            await conn.send(line)

    async def refuse(self, conn: Connection, reason: Refusal) -> None:
        await conn.send(f"REFUSED {reason}\n".encode())


PROTOCOLS: dict[str, type[Protocol]] = {"probe": Probe}
