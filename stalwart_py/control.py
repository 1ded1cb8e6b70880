"""The control socket: how commands on the same machine talk to the running server.

``stalwart-py listener list|enable|disable`` needs a question and an answer, which a signal
and a status file (how ``reload`` works) cannot carry. So the server listens on a Unix-domain
socket in its data directory, ``<data-dir>/stalwart-py.sock``:

* Only the server's user reaches it: the socket is 0600 in the 0700 data directory, and a
  peer whose credentials say another user (root aside) is turned away. Reaching it is being
  the server's user, who can read the database anyway, so a request needs no password.
* One connection carries one request, a JSON object on one line, and one answer, a JSON
  object on one line: ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``. A request is
  read up to ``MAX_REQUEST`` bytes, and a connection lasts at most ``TIMEOUT`` seconds; at most
  ``MAX_CLIENTS`` are served at once, others are told the server is busy.
* It belongs to the server's task group: it is listening before the server reports ready, and
  it is closed and removed when the server stops. A socket file left by a server that was
  killed is replaced at the next start (the pid file's lock says no server uses it).

Commands (``listener_commands``): ``listeners``; ``disable`` and ``enable`` with ``listener``
(an id), which suspend and resume a listener exactly as the HTTP API's endpoints do.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import stat
import struct
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import SocketAttribute, SocketListener, SocketStream, TaskStatus

from stalwart_py.files import FILE_MODE
from stalwart_py.listeners import ListenerRegistry
from stalwart_py.sockets import remove_unix_socket, unix_socket_identity

log = logging.getLogger("stalwart_py.control")

SOCKET_FILE = "stalwart-py.sock"
MAX_REQUEST = 64 * 1024  # bytes of one request
MAX_ANSWER = 16 * 1024 * 1024  # bytes of one answer, as the client reads it
TIMEOUT = 10.0  # seconds for one connection, either side
MAX_CLIENTS = 8
SUN_PATH_MAX = 107  # bytes of a socket path (sockaddr_un.sun_path, less its final NUL)

Answer = dict[str, Any]
Command = Callable[[dict[str, Any]], Awaitable[Answer]]


class ControlError(Exception):
    """The control socket could not be used, or the server refused the request; the message
    says why, for a person."""


def socket_path(data_dir: Path) -> Path:
    return data_dir / SOCKET_FILE


class ControlServer:
    """Serves ``commands`` on the data directory's control socket; see the module docstring."""

    def __init__(self, data_dir: Path, commands: dict[str, Command]) -> None:
        self.path = socket_path(data_dir)
        self.commands = commands
        self._clients = anyio.CapacityLimiter(MAX_CLIENTS)
        self._sock: socket.socket | None = None
        self._identity: tuple[int, int] | None = None

    def bind(self) -> None:
        """Make the socket (replacing one a killed server left); raises OSError."""
        self._sock = _listening_socket(self.path)
        self._identity = unix_socket_identity(str(self.path))

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Accept until cancelled (``bind`` first); then close the socket and remove it."""
        assert self._sock is not None, "bind() first"
        try:
            listener = await SocketListener.from_socket(self._sock)
            async with listener, anyio.create_task_group() as clients:
                task_status.started()
                while True:
                    try:
                        stream = await listener.accept()
                    except OSError as exc:  # out of file descriptors, say: the server goes on
                        log.warning("control socket: cannot accept: %s", exc.strerror or exc)
                        await anyio.sleep(1)  # ok: a pause before trying again, not a wait
                        continue
                    clients.start_soon(self._serve, stream)
        finally:
            self._sock.close()
            remove_unix_socket(str(self.path), self._identity)

    async def _serve(self, stream: SocketStream) -> None:
        async with stream:
            try:
                self._clients.acquire_on_behalf_of_nowait(stream)
            except anyio.WouldBlock:
                with (
                    anyio.move_on_after(TIMEOUT),
                    contextlib.suppress(OSError, anyio.BrokenResourceError),
                ):
                    await stream.send(_encode({"ok": False, "error": "the server is busy"}))
                return
            try:
                with anyio.fail_after(TIMEOUT):
                    answer = await self._answer(stream)
                    await stream.send(_encode(answer))
            except TimeoutError:
                log.warning("control socket: a client took over %gs; closed", TIMEOUT)
            except (OSError, anyio.BrokenResourceError, anyio.EndOfStream):
                pass  # the client left; nothing to answer
            except Exception:  # a bug here must not end the server's task group
                log.exception("control socket: a request failed")
            finally:
                self._clients.release_on_behalf_of(stream)

    async def _answer(self, stream: SocketStream) -> Answer:
        who = _peer(stream)
        if who is not None and who[1] not in (0, os.geteuid()):
            log.warning("control socket: refused a client of uid %d (pid %d)", who[1], who[0])
            return {"ok": False, "error": "only the server's user may use the control socket"}
        data = await _read_line(stream, MAX_REQUEST)
        if data is None:
            return {"ok": False, "error": f"a request is one line of at most {MAX_REQUEST} bytes"}
        try:
            request = json.loads(data)
        except (ValueError, RecursionError):  # RecursionError: nested past Python's stack
            return {"ok": False, "error": "a request is a JSON object"}
        if not isinstance(request, dict) or not isinstance(request.get("command"), str):
            return {"ok": False, "error": 'a request is a JSON object with a "command"'}
        command = self.commands.get(request["command"])
        if command is None:
            known = ", ".join(sorted(self.commands))
            return {"ok": False, "error": f"unknown command; the commands are: {known}"}
        what = " ".join(
            str(request[key])[:100] for key in ("command", "listener") if key in request
        )
        log.info("control socket: %s (pid %s)", what, who[0] if who else "?")
        try:
            return {"ok": True, **await command(request)}
        except ControlError as exc:
            return {"ok": False, "error": str(exc)}
        except Exception:
            log.exception("control socket: %s failed", request["command"])
            return {"ok": False, "error": "the command failed; the server's log says why"}


def listener_commands(registry: ListenerRegistry) -> dict[str, Command]:
    """``listeners``, ``disable`` and ``enable``, on the running listener registry."""

    def listener_id(request: dict[str, Any]) -> str:
        lid = request.get("listener")
        if not isinstance(lid, str) or lid not in registry.listeners:
            raise ControlError(f"no running listener {lid}")
        return lid

    async def listeners(_request: dict[str, Any]) -> Answer:
        return {"listeners": registry.status()}

    def suspend(suspended: bool) -> Command:
        async def command(request: dict[str, Any]) -> Answer:
            lid = listener_id(request)
            registry.set_suspended(lid, suspended)
            status = registry.status()
            return {"listener": next(s for s in status if s["id"] == lid), "listeners": status}

        return command

    return {"listeners": listeners, "disable": suspend(True), "enable": suspend(False)}


def request(data_dir: Path, message: dict[str, Any], timeout: float = TIMEOUT) -> Answer:
    """Send one request to the server running on ``data_dir`` and return its answer (which
    says ``ok`` or not). Raises ControlError when there is no answer."""
    path = socket_path(data_dir)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            with _addressable(path) as address:
                sock.connect(address)
            sock.sendall(_encode(message))
            sock.shutdown(socket.SHUT_WR)
            data = bytearray()
            while chunk := sock.recv(65536):
                data += chunk
                if len(data) > MAX_ANSWER:
                    raise ControlError(f"the answer on {path} is longer than {MAX_ANSWER} bytes")
    except (FileNotFoundError, ConnectionRefusedError):
        raise ControlError(f"no server is listening on {path}") from None
    except TimeoutError:
        raise ControlError(f"the server did not answer on {path} in {timeout:g}s") from None
    except OSError as exc:
        raise ControlError(f"cannot use {path}: {exc.strerror or exc}") from None
    try:
        answer = json.loads(data)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise ControlError(f"the answer on {path} is not a JSON object")
    return answer


def _listening_socket(path: Path) -> socket.socket:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(mode):
            raise OSError(errno.EEXIST, f"{path} exists and is not a socket")
        # Left by a server that was killed: the pid file's lock, held by now, says that no
        # server uses this data directory.
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with _addressable(path) as address:
            sock.bind(address)
            os.chmod(address, FILE_MODE)  # whatever the umask (the directory is 0700 too)
        sock.listen(MAX_CLIENTS)
    except BaseException:
        sock.close()
        raise
    return sock


@contextlib.contextmanager
def _addressable(path: Path) -> Iterator[str]:
    """A name of ``path`` short enough for a socket address: the path itself, or (for a data
    directory deep in the file system) the same file through ``/proc/self/fd`` on Linux."""
    if len(os.fsencode(path)) <= SUN_PATH_MAX:
        yield str(path)
        return
    if not os.path.isdir("/proc/self/fd"):
        raise OSError(errno.ENAMETOOLONG, f"{path} is too long for a socket address")
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


async def _read_line(stream: SocketStream, limit: int) -> bytes | None:
    """The request: up to its newline or the end of the stream; None past ``limit`` bytes."""
    data = b""
    while b"\n" not in data:
        if len(data) > limit:
            return None
        try:
            data += await stream.receive(65536)
        except anyio.EndOfStream:
            break
    line = data.partition(b"\n")[0]
    return line if len(line) <= limit else None


def _peer(stream: SocketStream) -> tuple[int, int] | None:
    """The peer's pid and uid, where the system says (Linux: SO_PEERCRED)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    raw = stream.extra(SocketAttribute.raw_socket)
    try:
        pid, uid, _gid = struct.unpack("3i", raw.getsockopt(socket.SOL_SOCKET, option, 12))
    except OSError:
        return None
    return pid, uid


def _encode(message: dict[str, Any]) -> bytes:
    return (json.dumps(message) + "\n").encode()
