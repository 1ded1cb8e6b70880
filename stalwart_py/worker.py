"""What a worker process knows about being one (``server.workers`` > 1, ``supervisor.py``).

A worker is a ``Server`` like the single process of ``workers = 1``, with four differences,
all carried by ``WorkerRole``:

* it never binds: its listener registry takes the supervisor's sockets (``sockets``);
* it does not hold the pid file nor write the status file: the supervisor does, after
  hearing from every worker over ``channel`` (the same JSON lines ``--notify-fd`` carries);
* the outbound queue and other singletons run in whichever worker holds their lease
  (``stalwart_py.singleton``), so exactly one of them delivers at a time;
* the control socket (``stalwart-py listener``) is served by worker 0 alone; what it changes
  is shared by every worker (``stalwart_py.shared``).

The supervisor dying takes its workers with it: on Linux the kernel sends the worker SIGTERM
when its parent exits (``PR_SET_PDEATHSIG``), so a worker drains as on ``stalwart-py stop``;
elsewhere the worker sees its channel close and stops too.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio

from stalwart_py.config import BindAddress, ConfigError
from stalwart_py.listeners import ApplyError, ReloadReport
from stalwart_py.shared import SharedState
from stalwart_py.shared_limits import SharedLimits

if TYPE_CHECKING:
    from stalwart_py.server import Server

log = logging.getLogger("stalwart_py.worker")

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# A listening socket by listener and configured address: two listeners may both say
# 127.0.0.1:0, and each gets its own port.
SocketKey = tuple[str, BindAddress]


@dataclass
class WorkerRole:
    """One worker's place among its siblings; see the module docstring."""

    index: int  # 0 .. workers-1; a restarted worker takes the index of the one it replaces
    supervisor_pid: int
    sockets: dict[SocketKey, socket.socket]  # the supervisor's
    channel: socket.socket  # to and from the supervisor: JSON lines
    shared: SharedState | None = None  # counts and suspended listeners of every worker
    limits: SharedLimits | None = None  # per-client counts of every worker (the supervisor's)

    @property
    def serves_control(self) -> bool:
        return self.index == 0


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel send this process SIGTERM when its parent exits (Linux); exit at once
    if the parent is already gone (it may have died between fork() and here)."""
    if sys.platform.startswith("linux"):
        # The interpreter's own symbols include libc's: find_library would run ldconfig (a
        # process, ~10 ms) in every worker at every start.
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"prctl(PR_SET_PDEATHSIG): {os.strerror(errno)}")
    if os.getppid() != parent_pid:
        os._exit(1)


MAX_MESSAGE = 1 << 20
MAX_FDS = 256


class SupervisorLink:
    """The worker's side of its channel (see ``supervisor.py`` for the messages).

    ``follow`` runs in the server's task group: it applies the supervisor's reloads (taking the
    sockets sent along) and stops the server when the channel closes (the supervisor is gone,
    on a system without PR_SET_PDEATHSIG). ``reload`` is what the worker offers as
    ``ServerContext.reload`` (``POST /api/reload``): it asks the supervisor, which reloads every
    worker, and answers with this worker's outcome.
    """

    def __init__(self, server: Server) -> None:
        assert server.worker is not None
        self.server = server
        self.role = server.worker
        self._waiters: list[_Waiter] = []
        self._applied: ReloadReport | None = None  # this worker's part of the reload under way

    async def follow(self) -> None:
        sock = self.role.channel  # blocking: the server's event lines are written to it
        while True:
            await anyio.wait_readable(sock)
            try:
                data, fds, _flags, _address = socket.recv_fds(
                    sock, MAX_MESSAGE, MAX_FDS, socket.MSG_DONTWAIT
                )
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data, fds = b"", []
            if not data:
                log.warning("the supervisor is gone: stopping")
                self.server.stop()
                return
            message = json.loads(data)
            for (lid, family, host, port), fd in zip(message.get("sockets", []), fds, strict=False):
                address = BindAddress(socket.AddressFamily(family), host, port)
                self.role.sockets[lid, address] = socket.socket(fileno=fd)
            if message.get("cmd") == "reload":
                await self._reload()
            elif message.get("cmd") == "reload-done":
                self._resolve(self._applied, None if self._applied else ApplyError(["no report"]))
            elif message.get("cmd") == "reload-refused":
                errors = message.get("errors", [])
                invalid = message.get("invalid", False)  # the file, not applying it
                self._resolve(None, ConfigError(errors) if invalid else ApplyError(errors))

    async def _reload(self) -> None:
        try:
            report = await self.server.reload()
        except (ConfigError, ApplyError) as exc:
            self._resolve(None, exc)
        else:
            # answered when the supervisor says every worker has applied it (reload-done)
            self._applied = report

    def forget_removed_sockets(self) -> None:
        """Close this process's copies of the sockets of addresses the configuration no longer
        has: the registry closed its own, but a copy inherited at the fork would keep the port
        listening, so that the kernel queued connections nobody accepts instead of refusing.
        Called by ``Server.reload`` before it says "reloaded": once every worker has said it,
        the supervisor closes its copy and the port refuses, so none may be left open then."""
        config = self.server.config
        wanted = {(lid, a) for lid, lsn in config.listeners.items() if lsn.enable for a in lsn.bind}
        for key in [key for key in self.role.sockets if key not in wanted]:
            self.role.sockets.pop(key).close()

    def _resolve(self, report: ReloadReport | None, error: Exception | None) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.report, waiter.error = report, error
            waiter.done.set()

    async def reload(self) -> ReloadReport:
        waiter = _Waiter()
        self._waiters.append(waiter)
        self.request_reload()
        await waiter.done.wait()
        if waiter.error is not None:
            raise waiter.error
        assert waiter.report is not None
        return waiter.report

    def request_reload(self) -> None:
        """Ask the supervisor to reload every worker (SIGHUP to a worker comes here too)."""
        with contextlib.suppress(OSError):
            self.role.channel.send(json.dumps({"event": "reload-request"}).encode())


@dataclass(eq=False)
class _Waiter:
    done: anyio.Event = field(default_factory=anyio.Event)
    report: ReloadReport | None = None
    error: Exception | None = None
