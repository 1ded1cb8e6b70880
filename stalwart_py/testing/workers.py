"""A test server with ``server.workers = N``: worker 0 in the test process, N-1 siblings.

``stalwart-py serve`` with ``server.workers = N`` forks its workers from a supervisor
(``stalwart_py.supervisor``). A test process cannot be forked safely (it runs threads, the
kit's server among them), and a test reaches into "its" server (store, directory, delivery),
so the kit plays the supervisor's part itself, with the same pieces:

* it holds the pid file and binds every listener once (``supervisor.bind_listeners``), and
  creates the workers' shared counts (``stalwart_py.shared``, and the per-client tables of
  ``stalwart_py.shared_limits``, whose descriptors a sibling is given);
* worker 0 is a worker ``Server`` (``WorkerRole`` index 0) on the kit's event loop in this
  process, so what a test reaches into is a real worker, and it serves the control socket
  (``stalwart-py listener``) as worker 0 of a supervisor does;
* workers 1..N-1 are spawned (``python -m stalwart_py.testing.workers``), each given the
  listening sockets, its end of a SOCK_SEQPACKET channel and the protocol classes by import
  path; each announces ``ready`` on its channel, and stops when the channel closes (as a
  worker whose supervisor is gone) or on SIGTERM. Their log goes to ``worker-<i>.log`` beside
  the configuration.

Every worker accepts on the same sockets, so a test's connections land in any of them: what a
test expects of "the server" must then hold server-wide. A reload (``RunningServer.reload``,
``POST /api/reload`` in any worker) is the supervisor's: validated and bound once here, then
applied by every worker. Not provided here: replacing a worker that dies. Protocol classes
must be importable by module and name.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stalwart_py.config import BindAddress, Config, ConfigError
from stalwart_py.config.running import needs_restart
from stalwart_py.files import private_dir
from stalwart_py.plugin import Protocol
from stalwart_py.server import PID_FILE, Server, _locked_pid_file, load
from stalwart_py.shared import FILE as SHARED_FILE
from stalwart_py.shared import SharedState
from stalwart_py.shared_limits import SharedLimits
from stalwart_py.singleton import run_dir
from stalwart_py.sockets import BindError
from stalwart_py.supervisor import bind_listeners, tag_log_records
from stalwart_py.worker import SocketKey, WorkerRole, die_with_parent

ENVIRONMENT = "STALWART_TEST_WORKERS"  # set by pytest's --server-workers N
WAIT = 20.0  # seconds for a sibling to be ready or to stop; only reached when broken


def requested_workers() -> int:
    """The worker count of every server the tests start (``--server-workers N``; 1 unless
    asked): a test's server does not follow the machine's CPU count, as ``serve`` does."""
    value = os.environ.get(ENVIRONMENT, "")
    return int(value) if value else 1


def with_workers(text: str, workers: int) -> str:
    """``text`` with ``server.workers = workers``, unless it sets the count itself (a test
    that needs one process says ``workers = 1``). TOML defines a table once, so the key goes
    into the ``[server]`` table when there is one, else on the first line as a dotted key
    (which ``[server.listener.x]`` tables may follow)."""
    if re.search(r"^\s*(server\.)?workers\s*=", text, re.MULTILINE):
        return text
    match = re.search(r"^\s*\[server\][ \t]*(#.*)?$", text, re.MULTILINE)
    if match:
        return text[: match.end()] + f"\nworkers = {workers}" + text[match.end() :]
    return f"server.workers = {workers}\n" + text


def import_path(cls: type) -> str:
    """``module:qualname`` of a protocol class, for a sibling to import it."""
    if "<locals>" in cls.__qualname__:
        raise ValueError(
            f"protocol class {cls.__qualname__} is defined in a function: a sibling worker "
            "cannot import it; define it at module level, or say server.workers = 1"
        )
    return f"{cls.__module__}:{cls.__qualname__}"


def import_class(path: str) -> type:
    module_name, _, qualname = path.partition(":")
    __import__(module_name)
    item: Any = sys.modules[module_name]
    for part in qualname.split("."):
        item = getattr(item, part)
    return item


class Siblings:
    """The supervisor's part for a kit server of ``config.server.workers`` workers; see the
    module docstring. ``prepare()`` before worker 0 starts, ``start()`` once it is ready,
    ``close()`` after it stopped."""

    def __init__(
        self, config_path: Path, config: Config, protocols: dict[str, type[Protocol]]
    ) -> None:
        self.config_path = config_path
        self.config = config
        self.protocol_classes = protocols
        self.protocols = {name: import_path(cls) for name, cls in protocols.items()}
        self.count = config.server.worker_count
        self.sockets: dict[SocketKey, socket.socket] = {}
        self._unix: dict[SocketKey, tuple[int, int] | None] = {}
        self._stack = ExitStack()
        self.processes: list[subprocess.Popen[bytes]] = []
        self._channels: list[socket.socket] = []  # our ends, worker 1.. in order
        self._requesters: list[socket.socket] = []  # channels of workers waiting for a reload
        self._round: _Round | None = None  # the reload under way

    def prepare(self) -> WorkerRole:
        """Hold the pid file, bind, create the shared counts; the role of worker 0."""
        data_dir = self.config.storage.data_dir
        private_dir(data_dir)
        self._stack.enter_context(_locked_pid_file(data_dir / PID_FILE))
        self._stack.callback(self._close_sockets)
        self.sockets.update(bind_listeners(self.config, self.sockets, self._unix))
        self.shared_path = run_dir(data_dir) / SHARED_FILE
        self._stack.enter_context(contextlib.closing(SharedState(self.shared_path, create=True)))
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._worker0_channel = ours
        self._stack.callback(ours.close)
        self._stack.callback(theirs.close)
        shared = SharedState(self.shared_path, worker=0)
        self._stack.callback(shared.close)
        # per-client counts (per-IP limits, login throttle, SMTP rates): passed to siblings
        self.limits = SharedLimits.create(self.config, workers=self.count)
        limits = self.limits.for_worker(0)
        # copies of its own, as a forked worker has (it closes those of removed listeners)
        self._worker0_sockets = {key: sock.dup() for key, sock in self.sockets.items()}
        self._stack.callback(lambda: [sock.close() for sock in self._worker0_sockets.values()])
        return WorkerRole(0, os.getpid(), self._worker0_sockets, theirs, shared, limits)

    def start(self) -> None:
        """Spawn workers 1..N-1 and wait until each is ready (worker 0 is by now: it migrates
        the schema and creates the administrator, which N processes at once would race on)."""
        for index in range(1, self.count):
            self._spawn(index)
        for index, channel in enumerate(self._channels, start=1):
            self._wait_ready(index, channel)

    def _spawn(self, index: int) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._channels.append(ours)
        keys = list(self.sockets)
        plan = {
            "config": str(self.config_path),
            "index": index,
            "parent": os.getpid(),
            "shared": str(self.shared_path),
            "channel": theirs.fileno(),
            "sockets": [
                [lid, int(a.family), a.host, a.port, self.sockets[(lid, a)].fileno()]
                for lid, a in keys
            ],
            "protocols": self.protocols,
            "limits": self.limits.shared(),
        }
        fds = (
            theirs.fileno(),
            *(sock.fileno() for sock in self.sockets.values()),
            *self.limits.descriptors(),
        )
        # The test's own modules (protocol classes under tests/) import as they do here.
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        env.pop(ENVIRONMENT, None)
        with open(self.log_path(index), "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "stalwart_py.testing.workers", json.dumps(plan)],
                pass_fds=fds,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        theirs.close()
        self.processes.append(process)

    def log_path(self, index: int) -> Path:
        return self.config_path.parent / f"worker-{index}.log"

    def log(self, index: int) -> str:
        try:
            return self.log_path(index).read_text(errors="replace")
        except OSError:
            return ""

    def _wait_ready(self, index: int, channel: socket.socket) -> None:
        deadline = time.monotonic() + WAIT
        while True:
            remaining = deadline - time.monotonic()
            readable, _, _ = select.select([channel], [], [], max(remaining, 0))
            if not readable:
                raise TimeoutError(f"worker {index} not ready in {WAIT}s:\n{self.log(index)}")
            data = channel.recv(1 << 20)
            if not data:
                raise RuntimeError(f"worker {index} exited before it was ready:\n{self.log(index)}")
            for line in data.splitlines():
                message = json.loads(line)
                if message.get("event") == "ready":
                    return

    @staticmethod
    def _send(
        channel: socket.socket, message: dict[str, Any], sockets: dict[SocketKey, socket.socket]
    ) -> None:
        """A supervisor's message to a worker, with ``sockets`` attached (``Supervisor._send``)."""
        keys = list(sockets)
        body = {**message, "sockets": [[lid, a.family, a.host, a.port] for lid, a in keys]}
        with contextlib.suppress(OSError):
            socket.send_fds(
                channel, [json.dumps(body).encode()], [sockets[k].fileno() for k in keys]
            )

    def _channels_by_index(self) -> list[socket.socket]:
        return [self._worker0_channel, *self._channels]

    async def follow(self) -> None:
        """Read every worker's channel (on worker 0's event loop, once the siblings are ready):
        a reload asked by any worker (``POST /api/reload``, SIGHUP to a sibling) reloads them
        all, as a supervisor does; their answers finish the reload under way."""
        import anyio

        async with anyio.create_task_group() as group:
            self._group = group
            for index, channel in enumerate(self._channels_by_index()):
                group.start_soon(self._read, index, channel)

    async def _read(self, index: int, channel: socket.socket) -> None:
        import anyio

        channel.setblocking(False)
        while True:
            await anyio.wait_readable(channel)
            try:
                data = channel.recv(1 << 20)
            except (BlockingIOError, InterruptedError):
                continue
            if not data:
                return
            for line in data.splitlines():
                message = json.loads(line)
                event = message.get("event")
                if event == "reload-request":
                    self._requesters.append(channel)
                    if self._round is None:
                        self._group.start_soon(self.reload)
                elif event in ("reloaded", "reload-failed") and self._round is not None:
                    self._round.answers[index] = message
                    if len(self._round.answers) == self.count:
                        self._round.done.set()

    async def reload(self) -> None:
        """Validate the file once and bind what is new, then have every worker apply it and
        wait for every answer (``Supervisor._reload``); a refusal goes to whoever asked."""
        import anyio

        self._round = round_ = _Round(anyio.Event())
        try:
            try:
                config = load(self.config_path, self.protocol_classes, serving=True)
                if problems := needs_restart(self.config, config):
                    raise ConfigError(problems)
                new = bind_listeners(config, self.sockets, self._unix)
            except (ConfigError, BindError) as exc:
                issues = exc.issues if isinstance(exc, ConfigError) else [exc]
                invalid = isinstance(exc, ConfigError)
                errors = [str(i) for i in issues]
                refusal = {"cmd": "reload-refused", "errors": errors, "invalid": invalid}
                for channel in self._requesters:
                    self._send(channel, refusal, {})
                return
            self.sockets.update(new)
            for channel in self._channels_by_index():
                self._send(channel, {"cmd": "reload"}, new)
            with anyio.fail_after(WAIT):
                await round_.done.wait()
            failed = [a for a in round_.answers.values() if a["event"] != "reloaded"]
            if failed:
                errors = sorted({e for answer in failed for e in answer.get("errors", [])})
                for channel in self._requesters:
                    self._send(channel, {"cmd": "reload-refused", "errors": errors}, {})
            else:
                self.config = config
                wanted = {
                    (lid, a)
                    for lid, lsn in config.listeners.items()
                    if lsn.enable
                    for a in lsn.bind
                }
                for key in [key for key in self.sockets if key not in wanted]:
                    self.sockets.pop(key).close()  # every worker has closed its copy
                for channel in self._requesters:
                    self._send(channel, {"cmd": "reload-done"}, {})
        finally:
            self._requesters.clear()
            self._round = None
            round_.done.set()

    async def reloaded(self) -> None:
        """Return once no reload is under way (worker 0 may answer before its siblings)."""
        if self._round is not None:
            await self._round.done.wait()

    def close(self) -> None:
        """Stop the siblings (their channel closes, as when a supervisor is gone, and SIGTERM),
        each draining as a worker does; kill one that does not stop in time."""
        for channel in self._channels:
            channel.close()
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(self.config.server.shutdown_timeout + WAIT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._stack.close()

    def _close_sockets(self) -> None:
        from stalwart_py.sockets import remove_unix_socket

        for key, sock in self.sockets.items():
            sock.close()
            if key[1].is_unix:
                remove_unix_socket(key[1].host, self._unix.pop(key, None))
        self.sockets.clear()


@dataclass(eq=False)
class _Round:
    """One reload of every worker: each worker's answer by index, set done when all are in."""

    done: Any  # anyio.Event, made on worker 0's loop
    answers: dict[int, dict[str, Any]] = field(default_factory=dict)


def main(argv: list[str]) -> int:
    """A sibling worker (``Siblings._spawn``): serve on the inherited sockets until the
    channel closes or SIGTERM."""
    import anyio

    from stalwart_py.logs import configure_logging

    plan = json.loads(argv[0])
    die_with_parent(plan["parent"])
    configure_logging("debug")
    tag_log_records(plan["index"])
    sockets = {
        (lid, BindAddress(socket.AddressFamily(family), host, port)): socket.socket(fileno=fd)
        for lid, family, host, port, fd in plan["sockets"]
    }
    channel = socket.socket(fileno=plan["channel"])
    shared = SharedState(Path(plan["shared"]), worker=plan["index"])
    protocols = {name: import_class(path) for name, path in plan["protocols"].items()}
    limits = SharedLimits.attach(plan["limits"]).for_worker(plan["index"])
    role = WorkerRole(plan["index"], plan["parent"], sockets, channel, shared, limits)
    server = Server(
        Path(plan["config"]), protocols=protocols, notify_fd=channel.fileno(), worker=role
    )
    anyio.run(lambda: server.run(handle_signals=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
