"""The cost of limits that span worker processes, beside the other way to build them.

    .venv/bin/python bench/shared_limits.py [--rounds 100000]

Per-client counts live in tables every worker maps (``stalwart_py.shared_table``), each
read-modify-write under a ``lockf`` of the table. The alternative is the supervisor owning the
counts and each worker asking it over its socket pair; its least possible cost is one round trip
of a small message to another process, which this bench measures too (an echo process on a
SOCK_SEQPACKET pair, doing nothing with the message), so the two are compared in one run:

* connection: ``ConnectionCounts.enter`` + ``leave`` of one client key (what
  ``max-connections-per-ip`` adds to a connection; a peer scope's limit adds the same again);
* login: ``LoginThrottle.wait`` + ``failed`` for an (address, account) pair (what a failed
  login adds; a successful one pays ``wait`` and ``succeeded``);
* rate: ``RateLimiter.take`` (an SMTP connection or MAIL FROM under ``smtp.rate.*``);
* supervisor: the same enter and leave asked of another process over a SOCK_SEQPACKET pair,
  as JSON, counted there in a dict: two round trips, blocking (a worker would also wait for
  each answer through its event loop, and every worker's questions queue at the one
  supervisor process: so this is the least that way could cost).

Each figure is microseconds per operation, wall clock and CPU time (the supervisor's figure
counts both processes' CPU), the median of five runs; the ratios compare a connection's enter
and leave both ways. CPU time is the figure a loaded machine inflates least.

Measured on the 2-core development machine with other work beside it (load 10), 2026-12-05,
``--rounds 30000``, two runs: connection 6.1-11.3 us CPU (24-26 wall), login 24-39 us CPU
(76-103 wall), rate 4.3-4.9 us CPU (12-21 wall), supervisor 33-36 us CPU (124-129 wall): a
connection counted in the shared table takes 3-6x less CPU and 5x less wall time than the
least the supervisor way costs, and that way would also queue every worker's questions
behind one process. Against an SMTP session's milliseconds (and a login's scrypt) the table's
cost is small.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stalwart_py.config import ThrottleSettings
from stalwart_py.inbound.rate import RateLimiter, rate_key
from stalwart_py.shared_table import ConnectionCounts
from stalwart_py.throttle import LoginThrottle


def per_operation(rounds: int, step: Callable[[], object]) -> tuple[float, float]:
    """Microseconds per call of ``step``, wall clock and this process's CPU: each the median
    of five runs. The CPU time is what a loaded machine does not inflate."""
    walls, cpus = [], []
    for _ in range(5):
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(rounds):
            step()
        walls.append((time.perf_counter() - started) / rounds * 1e6)
        cpus.append((time.process_time() - cpu) / rounds * 1e6)
    return statistics.median(walls), statistics.median(cpus)


def supervisor_round_trips(rounds: int) -> tuple[float, float]:
    """The supervisor way: (wall, CPU of both processes) per connection, in microseconds."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:  # the "supervisor": counts in a dict and answers the total
        ours.close()
        counts: dict[str, int] = {}
        try:
            while data := theirs.recv(256):
                message = json.loads(data)
                key = message["key"]
                counts[key] = counts.get(key, 0) + (1 if message["cmd"] == "enter" else -1)
                theirs.send(json.dumps({"total": counts[key]}).encode())
        finally:
            os._exit(0)
    theirs.close()
    enter = json.dumps({"cmd": "enter", "key": "ip\0smtp\0192.0.2.1"}).encode()
    leave = json.dumps({"cmd": "leave", "key": "ip\0smtp\0192.0.2.1"}).encode()

    def ask() -> None:
        ours.send(enter)
        json.loads(ours.recv(256))
        ours.send(leave)
        json.loads(ours.recv(256))

    wall, cpu = per_operation(rounds, ask)
    ours.close()
    _, _, usage = os.wait4(pid, 0)
    theirs_cpu = (usage.ru_utime + usage.ru_stime) / (5 * rounds) * 1e6
    return wall, cpu + theirs_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100_000)
    rounds = parser.parse_args().rounds

    counts = ConnectionCounts(2)
    client = counts.key(b"ip\0smtp\0192.0.2.1")

    def connection() -> None:
        counts.enter(client)
        counts.leave(client)

    # block-time 0: every failure counted, none blocks, so each round does the same work
    throttle = LoginThrottle(ThrottleSettings(block_time=0.0))
    ip = ipaddress.ip_address("192.0.2.1")

    def login() -> None:
        throttle.wait(ip, "alice@example.test")
        throttle.failed(ip, "alice@example.test")

    limiter = RateLimiter()
    key = rate_key("mx", ip)
    figures = {
        "connection": per_operation(rounds, connection),
        "login": per_operation(rounds // 4, login),
        "rate": per_operation(rounds, lambda: limiter.take(key, 1_000_000_000)),
        "supervisor": supervisor_round_trips(rounds),
    }
    load = os.getloadavg()[0]
    print(f"load {load:.1f}, {rounds} rounds; microseconds per operation, wall and CPU")
    for name, (wall, cpu) in figures.items():
        print(f"{name:>12}: {wall:6.1f} wall {cpu:6.1f} CPU")
    # the supervisor's figure is a connection's enter and leave: compare it with that one
    (trip_wall, trip_cpu), (wall, cpu) = figures["supervisor"], figures["connection"]
    print(
        f"a connection counted in the shared table: {trip_wall / wall:.2f}x less wall time, "
        f"{trip_cpu / cpu:.2f}x less CPU"
    )


if __name__ == "__main__":
    main()
