"""Two worker processes writing one SQLite database: one writer each (today's design, group
commit per process, the WAL write lock shared) beside one writer for all, in one run.

    .venv/bin/python bench/sqlite_writers.py [--messages 4000] [--size 10240]
        [--processes 2] [--concurrency 16]

Every delivery goes through the whole pipeline (``Delivery.deliver``: resolution, trace
header, MIME parse, blob hash, UID/MODSEQ, group commit) and is durable when counted.

* ``per process``: ``--processes`` processes on one data directory, each its own store (its
  own writer thread and group commit) and ``--concurrency`` concurrent deliverers, started
  together; their writers take turns at SQLite's write lock (``BEGIN IMMEDIATE``; a writer
  that finds it taken waits in SQLite's busy handler).
* ``one writer``: one process with ``--processes`` x ``--concurrency`` deliverers: every write
  goes through one writer thread, whose batches are larger. This is the best a writer shared
  by all workers could do; a real one adds, for every write of the other workers, the trip
  of the message to it and of the answer back, measured below as ``trip`` (a 10 KB message
  and a short answer over a Unix socket pair between two processes, one at a time), and it
  has one core's CPU for every worker's parse and hash unless those stay in the workers.

Printed: deliveries per second (wall), CPU per delivery (user + system of every process),
deliveries per commit, p50/p99 latency, and the ratio of the two. Figures are indicative on
a shared machine: compare the two lines of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from store_delivery import make_message, run_concurrently  # noqa: E402

from stalwart_py import passwords  # noqa: E402
from stalwart_py.delivery import Delivery, Envelope, Origin, Recipient  # noqa: E402
from stalwart_py.directory import Directory  # noqa: E402
from stalwart_py.store.sqlite import SqliteStore  # noqa: E402

RECIPIENT = "bob@example.test"


async def prepare(directory: Path) -> None:
    passwords.SCRYPT_LOG2_N = 8  # account setup only; nothing measured hashes a password
    store = SqliteStore(directory)
    await store.open()
    try:
        users = Directory(store)
        await users.add_domain("example.test")
        await users.add_account(RECIPIENT, "bench-password")
    finally:
        await store.close()


async def deliver_all(
    directory: Path, first: int, count: int, size: int, concurrency: int, start_at: float
) -> dict:
    """One process's share: ``count`` deliveries from message number ``first``, starting at
    ``start_at`` (time.monotonic, system-wide on Linux) so that the processes start together."""
    messages = [make_message(first + n, size) for n in range(count)]
    store = SqliteStore(directory)
    await store.open()
    try:
        delivery = Delivery(store, Directory(store), lambda: "mx.example.test")
        envelope = Envelope("sender@remote.test", (Recipient(RECIPIENT),))

        async def deliver(n: int) -> None:
            [result] = await delivery.deliver(envelope, messages[n], Origin("ESMTP", str(n)))
            assert result.ok, result

        await anyio.sleep(max(0.0, start_at - time.monotonic()))
        cpu = time.process_time()
        seconds, latencies = await run_concurrently(count, concurrency, deliver)
        engine = store._engine
        return {
            "seconds": seconds,
            "latencies": latencies,
            "cpu": time.process_time() - cpu,
            "commits": engine.batches,
            "writes": engine.writes,
        }
    finally:
        await store.close()


def run_processes(directory: Path, shares: list[int], size: int, concurrency: int) -> dict:
    """Each share in a process of its own, started together; the totals."""
    start_at = time.monotonic() + 2.0  # every process opened its store by then
    children = []
    first = 0
    for count in shares:
        command = [
            sys.executable,
            __file__,
            "--child",
            json.dumps([str(directory), first, count, size, concurrency, start_at]),
        ]
        children.append(subprocess.Popen(command, stdout=subprocess.PIPE, text=True))
        first += count
    results = []
    for child in children:
        out, _ = child.communicate(timeout=600)
        if child.returncode:
            raise RuntimeError(f"a delivering process failed ({child.returncode})")
        results.append(json.loads(out))
    latencies = sorted(t for r in results for t in r["latencies"])
    writes = sum(r["writes"] for r in results)
    return {
        "rate": writes / max(r["seconds"] for r in results),
        "cpu": sum(r["cpu"] for r in results) / writes,
        "per_commit": writes / sum(r["commits"] for r in results),
        "p50": statistics.median(latencies),
        "p99": latencies[max(0, int(len(latencies) * 0.99) - 1)],
    }


def trip(size: int, count: int = 2000) -> float:
    """Seconds for one round trip of a ``size``-octet message and a short answer between two
    processes over a Unix socket pair (what a shared writer adds to each write it is sent)."""
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the writer's side: read a message, answer
        ours.close()
        try:
            while True:
                need = int.from_bytes(theirs.recv(4, socket.MSG_WAITALL), "big")
                if not need:
                    break
                theirs.recv(need, socket.MSG_WAITALL)
                theirs.sendall(b"ok")
        finally:
            os._exit(0)
    theirs.close()
    payload = len(b"x" * size).to_bytes(4, "big") + b"x" * size
    started = time.perf_counter()
    for _ in range(count):
        ours.sendall(payload)
        ours.recv(2, socket.MSG_WAITALL)
    elapsed = time.perf_counter() - started
    ours.sendall((0).to_bytes(4, "big"))
    os.waitpid(pid, 0)
    ours.close()
    return elapsed / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--size", type=int, default=10240)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    print(
        f"{args.messages} deliveries of {args.size} octets; {args.processes} processes x"
        f" {args.concurrency} deliverers; load average"
        f" {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    processes = args.processes
    share = args.messages // processes
    lines = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, shares, concurrency in (
            ("per process", [share] * processes, args.concurrency),
            ("one writer", [share * processes], args.concurrency * processes),
        ):
            directory = Path(scratch) / name.replace(" ", "-")
            anyio.run(prepare, directory)
            lines[name] = run_processes(directory, shares, args.size, concurrency)
    for name, r in lines.items():
        print(
            f"  {name:12s} {r['rate']:7.0f} deliveries/s  CPU {r['cpu'] * 1000:5.2f} ms each"
            f"  {r['per_commit']:5.1f} per commit  p50 {r['p50'] * 1000:6.1f} ms"
            f"  p99 {r['p99'] * 1000:6.1f} ms"
        )
    ratio = lines["one writer"]["rate"] / lines["per process"]["rate"]
    print(f"  ratio one writer / per process: {ratio:.2f}")
    print(
        f"  trip of a {args.size}-octet message to another process and back:"
        f" {trip(args.size) * 1e6:.0f} us"
    )
    print(f"  load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def child_main(argument: str) -> None:
    directory, first, count, size, concurrency, start_at = json.loads(argument)
    result = anyio.run(deliver_all, Path(directory), first, count, size, concurrency, start_at)
    print(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child_main(sys.argv[2])
    else:
        main()
