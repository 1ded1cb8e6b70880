"""The supervisor's event loop: one ``select`` batch may hold a SIGCHLD and the dying
worker's channel at once, and the reap that the first does must not trip the second."""

from __future__ import annotations

import selectors
import signal
import socket
from pathlib import Path

from stalwart_py.config import parse_config
from stalwart_py.supervisor import Supervisor

CONFIG = """
[server]
hostname = "mx.example.test"
workers = 2
"""


def test_a_channel_closed_by_a_reap_earlier_in_the_batch_is_skipped(monkeypatch) -> None:
    config = parse_config(CONFIG, Path("/etc/stalwart-py/test.toml"), {})
    supervisor = Supervisor(Path("/etc/stalwart-py/test.toml"), config)
    slot = supervisor.slots[1]
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setblocking(False)
    slot.pid, slot.channel = 12345, ours
    supervisor._selector.register(ours, selectors.EVENT_READ, slot)
    supervisor._selector.register(supervisor._wakeup_r, selectors.EVENT_READ)
    reaped: list[int] = []

    def reap() -> None:  # what _reap does to a worker that has exited
        supervisor._selector.unregister(ours)
        ours.close()
        slot.pid, slot.channel = None, None
        reaped.append(12345)

    monkeypatch.setattr(supervisor, "_reap", reap)
    theirs.close()  # the worker exits: its end is readable (EOF) ...
    supervisor._wakeup_w.send(bytes([signal.SIGCHLD]))  # ... and SIGCHLD arrives
    batch = supervisor._selector.select(0)
    keys = sorted((key for key, _ in batch), key=lambda key: key.fileobj is ours)
    assert len(keys) == 2 and keys[0].fileobj is supervisor._wakeup_r
    for key in keys:  # the signal first, as in the failing run
        supervisor._on_ready(key)
    assert reaped == [12345] and slot.channel is None
