"""Read a listening TCP socket's backlog from the kernel (netlink sock_diag, as ``ss`` does).

The backlog given to listen() cannot be read with getsockopt; inet_diag reports it as the
write-queue field of a listening socket.
"""

from __future__ import annotations

import socket
import struct

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_DONE = 3
TCP_LISTEN = 10


def listen_backlog(family: int, port: int) -> int | None:
    """The backlog of the listening TCP socket on ``port``, or None when there is none."""
    request = struct.pack("BBBBI", family, socket.IPPROTO_TCP, 0, 0, 1 << TCP_LISTEN)
    request += b"\0" * 48  # inet_diag_sockid: match every socket, filter below
    header = struct.pack(
        "IHHII", 16 + len(request), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 1, 0
    )
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as nl:
        nl.sendto(header + request, (0, 0))
        while True:
            data = nl.recv(65536)
            offset = 0
            while offset < len(data):
                length, kind = struct.unpack_from("IH", data, offset)
                if kind == NLMSG_DONE:
                    return None
                body = data[offset + 16 : offset + length]
                sport = struct.unpack_from("!H", body, 4)[0]
                wqueue = struct.unpack_from("I", body, 4 + 48 + 8)[0]
                if sport == port:
                    return wqueue
                offset += (length + 3) & ~3
