"""Real servers for tests: in a thread of the test process (the plugin test kit's
RunningServer, stalwart_py.testing), or as a child process (ServerProcess, here).

Both wait for readiness by a signal, never by sleeping: the in-process server reports
``started`` through its task status; the child process writes a ``ready`` JSON line to the
pipe given with ``--notify-fd``.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from stalwart_py.testing.server import (
    WAIT,
    free_port,
    write_config,
)
from stalwart_py.testing.server import RunningServer as InProcessServer

__all__ = [
    "WAIT",
    "InProcessServer",
    "ServerProcess",
    "free_port",
    "stalwart_cli",
    "write_config",
]


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


# Reasons for ``@pytest.mark.single_worker`` (tests/conftest.py) that many tests share.
METRICS_OF_ONE_WORKER = (
    "reads the metrics of the kit's in-process worker 0, which cannot switch the test process's "
    "prometheus_client to multiprocess mode as a forked worker does (/metrics summed over "
    "real workers: stalwart_py/metrics.py)"
)
PATCHES_THE_WORKER = (
    "patches or acts on the in-process worker alone, which a sibling worker process does not see"
)
LOG_OF_ONE_WORKER = (
    "reads the log records of the kit's in-process worker 0; a sibling worker's are in its "
    "worker-<i>.log file"
)
