"""``stalwart-py serve`` takes the hard open-file limit as its soft one: each session is a
descriptor, and the usual soft limit of 1024 would refuse the 1025th client."""

from __future__ import annotations

import contextlib
import resource
from pathlib import Path

from tests.integration.test_workers import workers_config
from tests.support.servers import ServerProcess


def open_file_limits(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no open-file limit in /proc")


def test_serve_raises_its_soft_open_file_limit_to_the_hard_one(tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(512, hard), hard))  # inherited by serve
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(ServerProcess(workers_config(tmp_path)))
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        for pid in [server.process.pid, *server.ready["workers"]]:
            assert open_file_limits(pid) == (hard, hard)
