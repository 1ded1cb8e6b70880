"""Durable deliveries per second: stalwart-py's delivery pipeline into SQLite (and with
``--backend sqlite,postgresql`` into PostgreSQL too), side by side with the plain Maildir way
(one file per message, written, fsync'd, renamed into new/, and the directory fsync'd), with 1
and with 16 concurrent deliverers.

    .venv/bin/python bench/store_delivery.py [--messages 2000] [--size 10240]
        [--backend sqlite,postgresql] [--postgresql-url postgresql://...]

Both sides make every message durable before counting it. Ours goes through the whole
pipeline (resolution, trace headers, MIME parsing, quota, UID/MODSEQ, group commit). For
PostgreSQL without ``--postgresql-url`` a server is started from the installed binaries in a
temporary directory, on a Unix socket, with fsync on (``tests/support/postgres.py``); each run
gets a fresh database. The issue's goal: PostgreSQL >= 0.8x SQLite with 16 deliverers.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stalwart_py import passwords
from stalwart_py.delivery import Delivery, Envelope, Origin, Recipient
from stalwart_py.directory import Directory
from stalwart_py.store.sqlite import SqliteStore


def make_message(n: int, size: int) -> bytes:
    rng = random.Random(n)
    head = (
        f"From: sender@remote.test\r\nTo: bob@example.test\r\nSubject: bench {n}\r\n"
        f"Message-ID: <{n}@bench.test>\r\n\r\n"
    )
    body_lines = []
    total = len(head)
    while total < size:
        line = "".join(rng.choices("abcdefghijklmnopqrstuvwxyz ", k=76)) + "\r\n"
        body_lines.append(line)
        total += len(line)
    return (head + "".join(body_lines)).encode()[:size]


async def run_concurrently(count: int, workers: int, deliver) -> tuple[float, list[float]]:
    """Deliver ``count`` messages with ``workers`` concurrent deliverers; (seconds, latencies)."""
    latencies: list[float] = []
    next_index = iter(range(count))

    async def worker() -> None:
        for n in next_index:
            started = time.perf_counter()
            await deliver(n)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(workers):
            group.start_soon(worker)
    return time.perf_counter() - started, latencies


async def bench_ours(
    directory: Path, messages: list[bytes], workers: int, blob_backend=None, postgresql=None
):
    """``blob_backend``: bodies there instead of in the database (bench/blob_delivery.py);
    ``postgresql``: the URL of a fresh database, for the PostgreSQL store instead of SQLite."""
    passwords.SCRYPT_LOG2_N = 8  # account setup only; nothing measured hashes a password
    if postgresql is not None:
        from stalwart_py.store.postgresql import PostgresStore

        store = PostgresStore(postgresql, directory, blob_backend=blob_backend)
    else:
        store = SqliteStore(directory, blob_backend=blob_backend)
    await store.open()
    try:
        users = Directory(store)
        await users.add_domain("example.test")
        await users.add_account("bob@example.test", "bench-password")
        delivery = Delivery(store, users, lambda: "mx.example.test")
        envelope = Envelope("sender@remote.test", (Recipient("bob@example.test"),))

        async def deliver(n: int) -> None:
            [result] = await delivery.deliver(envelope, messages[n], Origin("ESMTP", str(n)))
            assert result.ok, result

        return await run_concurrently(len(messages), workers, deliver)
    finally:
        await store.close()


async def bench_maildir(directory: Path, messages: list[bytes], workers: int):
    maildir = directory / "Maildir"
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True)
    new_fd = os.open(maildir / "new", os.O_RDONLY)
    hostname = socket.gethostname()
    limiter = anyio.CapacityLimiter(workers)

    def write(n: int) -> None:
        name = f"{time.time():.6f}.P{os.getpid()}Q{n}.{hostname}"
        tmp = maildir / "tmp" / name
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, messages[n])
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, maildir / "new" / name)
        os.fsync(new_fd)

    async def deliver(n: int) -> None:
        await anyio.to_thread.run_sync(write, n, limiter=limiter)

    try:
        return await run_concurrently(len(messages), workers, deliver)
    finally:
        os.close(new_fd)


def describe(seconds: float, latencies: list[float], count: int) -> tuple[float, str]:
    rate = count / seconds
    ordered = sorted(latencies)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[int(len(ordered) * 0.99) - 1] * 1000
    return rate, f"{rate:8.0f}/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=10240)
    parser.add_argument(
        "--backend", default="sqlite", help="sqlite, postgresql or both: sqlite,postgresql"
    )
    parser.add_argument(
        "--postgresql-url", help="an existing server's database (else a temporary server)"
    )
    args = parser.parse_args()
    backends = [name.strip() for name in args.backend.split(",")]
    unknown = set(backends) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")
    messages = [make_message(n, args.size) for n in range(args.messages)]
    print(f"{args.messages} messages of {args.size} bytes, every one durable before it counts")
    with contextlib.ExitStack() as stack:
        new_database = None
        if "postgresql" in backends:
            if args.postgresql_url:
                new_database = lambda: args.postgresql_url  # noqa: E731
            else:
                from tests.support.postgres import running_cluster

                new_database = stack.enter_context(running_cluster()).database
        for workers in (1, 16):
            rates = {}
            texts = {}
            for backend in backends:
                with tempfile.TemporaryDirectory(dir=Path.cwd()) as ours_dir:
                    url = new_database() if backend == "postgresql" else None
                    result = anyio.run(bench_ours, Path(ours_dir), messages, workers, None, url)
                rates[backend], texts[backend] = describe(*result, args.messages)
            with tempfile.TemporaryDirectory(dir=Path.cwd()) as maildir_dir:
                peer = anyio.run(bench_maildir, Path(maildir_dir), messages, workers)
            peer_rate, peer_text = describe(*peer, args.messages)
            print(f"\n{workers:2d} deliverer(s)")
            for backend in backends:
                label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[backend]
                print(
                    f"  stalwart-py ({label}, group commit){' ' * (10 - len(label))}"
                    f"{texts[backend]}"
                )
            print(f"  Maildir (fsync per message)         {peer_text}")
            for backend in backends:
                print(f"  ratio stalwart-py {backend} / Maildir: {rates[backend] / peer_rate:.2f}")
            if len(backends) == 2:
                ratio = rates["postgresql"] / rates["sqlite"]
                print(f"  ratio PostgreSQL / SQLite: {ratio:.2f}")


if __name__ == "__main__":
    main()
