"""Listening sockets: creation with every configured option, and per-connection options.

The registry (``listeners.py``) is the only caller; keeping the system calls here keeps the
registry about lifecycle and policy. Options that shape the listening socket (reuse-addr,
reuse-port, backlog, file mode) are applied at bind time and updated in place on reload; the
per-connection ones (nodelay, ttl, tos, buffer sizes, linger) are set on every accepted socket
from the settings in force for its peer, since a peer scope may change them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
import struct
from pathlib import Path

from stalwart_py.config import BindAddress, SocketSettings


class BindError(OSError):
    """An address could not be bound; the message names the address and the reason."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


def open_listening_socket(address: BindAddress, options: SocketSettings) -> socket.socket:
    """Create, configure, bind and listen; raises BindError."""
    sock = socket.socket(address.family, socket.SOCK_STREAM)
    try:
        if address.is_unix:
            _clear_stale_unix_socket(Path(address.host))
        else:
            if address.family == socket.AF_INET6:
                # [::]:25 means every IPv6 address only, so *:25 can be bound beside it.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            # Buffer sizes must be set before listen() to shape the window scale of accepted
            # connections, which inherit them.
            apply_connection_options(sock, options, address.family)
        update_listening_options(sock, options, address, bound=False)
        sock.bind(address.sockaddr)
        if address.is_unix and options.file_mode is not None:
            os.chmod(address.host, options.file_mode)
        sock.listen(options.backlog)
        sock.setblocking(False)
    except BindError:
        sock.close()
        raise
    except OSError as exc:
        sock.close()
        hint = BIND_FIXES.get(exc.errno or 0, "")
        raise BindError(exc.errno, f"cannot bind {address}: {exc.strerror}{hint}") from None
    return sock


# What to do about the usual bind failures, said in the one line a failed start prints.
BIND_FIXES = {
    errno.EACCES: (
        " (ports below 1024 need root or CAP_NET_BIND_SERVICE: `setcap "
        "cap_net_bind_service=+ep` on the Python interpreter, as the container image does, "
        "or lower net.ipv4.ip_unprivileged_port_start, or bind a port above 1023)"
    ),
    errno.EADDRINUSE: (
        " (another program listens there: stop it, or change this listener's bind; "
        "`ss -ltnp` names it)"
    ),
    errno.EADDRNOTAVAIL: " (no interface of this machine has that address: fix the bind)",
}


def update_listening_options(
    sock: socket.socket, options: SocketSettings, address: BindAddress, *, bound: bool = True
) -> None:
    """Set the options of a listening socket (again, on reload: listen() takes a new backlog)."""
    if not address.is_unix:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, int(options.reuse_addr))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, int(options.reuse_port))
    if bound:
        sock.listen(options.backlog)
        if address.is_unix and options.file_mode is not None:
            os.chmod(address.host, options.file_mode)


def apply_connection_options(
    sock: socket.socket, options: SocketSettings, family: int | None = None
) -> None:
    """Set nodelay, ttl, tos, buffer sizes and linger on a TCP socket."""
    family = family if family is not None else sock.family
    if family == socket.AF_UNIX:
        return
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(options.nodelay))
    if options.ttl is not None:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, options.ttl)
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, options.ttl)
    if options.tos is not None:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, options.tos)
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, options.tos)
    if options.send_buffer_size is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, options.send_buffer_size)
    if options.recv_buffer_size is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, options.recv_buffer_size)
    if options.linger is not None:
        sock.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, int(options.linger))
        )


def bound_address(sock: socket.socket, configured: BindAddress) -> BindAddress:
    """The address actually bound: the real port when the configuration said 0."""
    if configured.is_unix:
        return configured
    port = sock.getsockname()[1]
    return BindAddress(configured.family, configured.host, port)


def overlaps(a: BindAddress, b: BindAddress) -> bool:
    """Whether binding ``a`` would fail while ``b`` is bound (same port, same or wildcard
    address of the same family, or the same Unix path)."""
    if a.family != b.family:
        return False
    if a.is_unix:
        return a.host == b.host
    if a.port == 0 or a.port != b.port:
        return False
    wildcard = ("0.0.0.0", "::")
    return a.host == b.host or a.host in wildcard or b.host in wildcard


def unix_socket_identity(path: str) -> tuple[int, int] | None:
    with contextlib.suppress(OSError):
        st = os.stat(path)
        return (st.st_dev, st.st_ino)
    return None


def remove_unix_socket(path: str, identity: tuple[int, int] | None) -> None:
    """Unlink our socket file, but not one that another process has put in its place."""
    if identity is not None and unix_socket_identity(path) == identity:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _clear_stale_unix_socket(path: Path) -> None:
    """Remove a socket file left by a server that is gone; refuse one that is in use."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise BindError(errno.EEXIST, f"cannot bind {path}: it exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1)
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        path.unlink(missing_ok=True)
        return
    except OSError:
        return
    finally:
        probe.close()
    raise BindError(errno.EADDRINUSE, f"cannot bind {path}: another server is listening on it")
