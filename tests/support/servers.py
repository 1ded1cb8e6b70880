"""Real servers for tests: in a thread of the test process, or as a child process.

Both wait for readiness by a signal, never by sleeping: the in-process server reports
``started`` through its task status; the child process writes a ``ready`` JSON line to the
pipe given with ``--notify-fd``.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread

from stalwart_py.config import BindAddress
from stalwart_py.context import ServerContext
from stalwart_py.listeners import ListenerRegistry, ReloadReport
from stalwart_py.plugin import Protocol
from stalwart_py.server import Server
from stalwart_py.store import Account

WAIT = 20.0  # seconds; generous, only ever reached when something is broken


def write_config(directory: Path, text: str, name: str = "config.toml") -> Path:
    """Write a configuration; a ``[storage]`` table with a data dir inside ``directory`` is
    added unless the text has one."""
    if "[storage]" not in text:
        text = f'[storage]\ndata-dir = "{directory / "var"}"\n\n' + text
    path = directory / name
    path.write_text(text)
    return path


def stalwart_cli(
    config: Path, *args: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run ``stalwart-py ARGS --config CONFIG`` as a child process; its output as text."""
    return subprocess.run(
        [sys.executable, "-m", "stalwart_py", *args, "--config", str(config)],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def free_port() -> int:
    """A port free on every address right now (the kernel's pick, released)."""
    with socket.socket() as probe:
        probe.bind(("0.0.0.0", 0))
        return probe.getsockname()[1]


def endpoint(address: BindAddress) -> tuple[str, int] | str:
    return address.host if address.is_unix else (address.host, address.port)


class InProcessServer(AbstractContextManager["InProcessServer"]):
    """``Server.run`` on its own event loop in a thread; the test talks to it over sockets."""

    def __init__(self, config_path: Path, protocols: dict[str, type[Protocol]]) -> None:
        self.server = Server(config_path, protocols=protocols)
        self._portal_cm = anyio.from_thread.start_blocking_portal("asyncio")
        self.portal: anyio.from_thread.BlockingPortal | None = None

    def __enter__(self) -> InProcessServer:
        self.portal = self._portal_cm.__enter__()
        try:
            self._future, _ = self.portal.start_task(self._run)
        except BaseException:
            self._portal_cm.__exit__(*sys.exc_info())
            raise
        return self

    async def _run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        await self.server.run(task_status=task_status)

    def __exit__(self, *exc_info: object) -> None:
        try:
            if not self._future.done():
                self.portal.call(self.server.stop)
                self._future.result(timeout=WAIT)
        finally:
            self._portal_cm.__exit__(None, None, None)

    @property
    def registry(self) -> ListenerRegistry:
        assert self.server.registry is not None
        return self.server.registry

    def addresses(self, listener_id: str) -> list[BindAddress]:
        return self.registry.addresses(listener_id)

    def address(self, listener_id: str, family: int = socket.AF_INET) -> tuple[str, int] | str:
        """The first bound address of ``family`` of a listener, for socket.connect()."""
        for address in self.addresses(listener_id):
            if address.family == family:
                return endpoint(address)
        raise LookupError(f"listener {listener_id} has no address of family {family}")

    def reload(self) -> ReloadReport:
        return self.portal.call(self.server.reload)

    @property
    def context(self) -> ServerContext:
        assert self.server.context is not None
        return self.server.context

    def run(self, func: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Await ``func(*args)`` on the server's event loop (the store is used from there)."""
        return self.portal.call(func, *args)

    def add_account(self, address: str, password: str, **options: Any) -> Account:
        """Create an account (and its domain, when it is not local yet)."""
        directory = self.context.directory
        domain = address.rpartition("@")[2]

        async def create() -> Account:
            if not await directory.is_local_domain(domain):
                await directory.add_domain(domain)
            return await directory.add_account(address, password, **options)

        return self.portal.call(create)

    def call(self, func: Callable[..., Any], *args: Any) -> Any:
        """Run a plain function on the server's event loop thread."""

        async def run() -> Any:
            return func(*args)

        return self.portal.call(run)

    def wait_until(self, condition: Callable[[], bool], timeout: float = WAIT) -> None:
        """Wait until ``condition()`` holds, checked whenever a connection ends."""

        async def wait() -> None:
            with anyio.fail_after(timeout):
                await self.registry.wait_until(condition)

        self.portal.call(wait)


class ServerProcess(AbstractContextManager["ServerProcess"]):
    """``stalwart-py serve`` as a child process; events arrive on a pipe (``--notify-fd``)."""

    def __init__(
        self, config_path: Path, *, env: dict[str, str] | None = None, log_path: Path | None = None
    ) -> None:
        self.config_path = config_path
        self.env = {**os.environ, **(env or {})}
        self.log_path = log_path or config_path.with_suffix(".log")
        self.process: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self.ready: dict[str, Any] = {}

    def __enter__(self) -> ServerProcess:
        read_fd, write_fd = os.pipe()
        self._read_fd = read_fd
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "stalwart_py",
                    "serve",
                    "--config",
                    str(self.config_path),
                    "--notify-fd",
                    str(write_fd),
                    "--log-level",
                    "debug",
                ],
                pass_fds=(write_fd,),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        os.close(write_fd)
        try:
            self.ready = self.wait_event("ready")
        except BaseException:
            self.kill()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.kill()
        os.close(self._read_fd)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def wait_event(self, name: str, timeout: float = WAIT) -> dict[str, Any]:
        """The next event called ``name`` (earlier events of other names are passed over)."""
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                event = json.loads(line)
                if event["event"] == name:
                    return event
            remaining = deadline - time.monotonic()
            readable, _, _ = select.select([self._read_fd], [], [], max(remaining, 0))
            if not readable:
                raise TimeoutError(f"no {name!r} event in {timeout}s; log:\n{self.log()}")
            chunk = os.read(self._read_fd, 65536)
            if not chunk:
                raise RuntimeError(f"server exited before {name!r}; log:\n{self.log()}")
            self._buffer += chunk

    def address(self, listener_id: str, index: int = 0) -> tuple[str, int] | str:
        listener = next(item for item in self.ready["listeners"] if item["id"] == listener_id)
        text = listener["bind"][index]
        if text.startswith("/"):
            return text
        host, _, port = text.rpartition(":")
        return host.strip("[]"), int(port)

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait_exit(self, timeout: float = WAIT) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""
