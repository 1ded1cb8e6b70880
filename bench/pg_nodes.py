"""Durable SMTP intake of whole servers on PostgreSQL, beside SQLite, and of two nodes beside
one (issue 18's goals: PostgreSQL on loopback >= 0.8x SQLite's durable intake with 16
sessions; two nodes on one machine >= 1.5x one node).

    .venv/bin/python bench/pg_nodes.py [--messages 3000] [--size 10240] [--clients 16]
        [--rounds 2] [--blobs database|s3] [--accounts 16]

Each line-up member is ``stalwart-py serve`` as a child process (``server.workers = 1``),
started once: SQLite in its own data directory; one PostgreSQL node; two PostgreSQL nodes
(two processes with data directories of their own) on one database. PostgreSQL is started
from the installed binaries in a temporary directory, on a Unix socket, with fsync on
(``tests/support/postgres.py``); ``--blobs s3`` puts the PostgreSQL nodes' bodies in a
SeaweedFS started the same way (``tests/support/seaweedfs.py``). The load is smtp-source
(Postfix's; the Python client of smtp_throughput.py without it), one connection per message:
for two nodes, two generators at once, each with half the messages and half the sessions,
timed to the last one's end. The deliveries are spread over ``--accounts`` recipients (default
16; 1 sends everything to one INBOX, whose row lock serialises the nodes' write batches): each
node's sessions are split into that many smtp-source runs at once, each run to its own
account. Rounds alternate the order of the line-up; every server's
stored count is checked against what it acknowledged.

Beside each rate, what it cost in CPU per message (``Usage``): each server's process tree,
PostgreSQL's processes, the load generator, and how busy the machine was. From those, the
ceiling the CPU puts on each line-up's rate (no node process past about one core, the GIL;
the whole within the machine's cores) and the ratios of the ceilings: what the goals can be at
best on this machine, however quiet, at these costs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import subprocess  # noqa: E402
import time  # noqa: E402

from smtp_throughput import (  # noqa: E402
    RECIPIENT,
    SENDER,
    Stalwart,
    python_client,
    server_usage,
)

from tests.support.postgres import running_cluster  # noqa: E402


class Node(Stalwart):
    """smtp_throughput's server, on PostgreSQL: the keys go into its [storage] table (its
    constructor also makes a SQLite store in the data directory, which this node leaves
    unused; the account is made in the database by ``prepare_postgres``)."""

    def __init__(self, directory: Path, url: str, blobs: str) -> None:
        super().__init__(directory)
        text = self.config.read_text()
        storage = f'[storage]\nbackend = "postgresql"\nurl = "{url}"\n'
        self.config.write_text(text.replace("[storage]\n", storage, 1) + blobs)


def recipients(accounts: int) -> list[str]:
    """The bench's recipient addresses: smtp_throughput's one, then bob1@, bob2@, ..."""
    return [RECIPIENT] + [f"bob{n}@example.test" for n in range(1, accounts)]


def add_sqlite_accounts(data_dir: Path, names: list[str]) -> None:
    """More accounts in a SQLite data directory (before its server starts)."""
    import anyio

    from stalwart_py import passwords
    from stalwart_py.directory import Directory
    from stalwart_py.store.sqlite import SqliteStore

    async def setup() -> None:
        passwords.SCRYPT_LOG2_N = 8  # setup only
        store = SqliteStore(data_dir)
        await store.open()
        try:
            for name in names:
                await Directory(store).add_account(name, "bench-password")
        finally:
            await store.close()

    anyio.run(setup)


def stored_sqlite(data_dir: Path, names: list[str]) -> int:
    import anyio

    from stalwart_py.store.sqlite import SqliteStore

    async def count() -> int:
        store = SqliteStore(data_dir)
        await store.open()
        try:
            total = 0
            for name in names:
                account = await store.get_account(name)
                inbox = await store.get_mailbox(account.id, "INBOX")
                total += (await store.mailbox_counts(inbox.id)).messages
            return total
        finally:
            await store.close()

    return anyio.run(count)


def prepare_postgres(url: str, names: list[str]) -> None:
    import anyio

    from stalwart_py import passwords
    from stalwart_py.directory import Directory
    from stalwart_py.store.postgresql import PostgresStore

    async def setup() -> None:
        passwords.SCRYPT_LOG2_N = 8  # setup only
        store = PostgresStore(url, Path(tempfile.mkdtemp()))
        await store.open()
        try:
            directory = Directory(store)
            await directory.add_domain("example.test")
            for name in names:
                await directory.add_account(name, "bench-password")
        finally:
            await store.close()

    anyio.run(setup)


def stored_postgres(url: str, names: list[str]) -> int:
    import anyio

    from stalwart_py.store.postgresql import PostgresStore

    async def count() -> int:
        store = PostgresStore(url, Path(tempfile.mkdtemp()))
        await store.open()
        try:
            total = 0
            for name in names:
                account = await store.get_account(name)
                inbox = await store.get_mailbox(account.id, "INBOX")
                total += (await store.mailbox_counts(inbox.id)).messages
            return total
        finally:
            await store.close()

    return anyio.run(count)


def smtp_source(
    address: tuple[str, int], messages: int, clients: int, size: int, recipient: str
) -> float:
    """Seconds smtp-source takes to send ``messages`` to ``recipient``."""
    started = time.perf_counter()
    subprocess.run(
        [
            *("smtp-source", "-l", str(size), "-m", str(messages), "-s", str(clients)),
            *("-f", SENDER, "-t", recipient, "-M", "client.test", f"{address[0]}:{address[1]}"),
        ],
        check=True,
    )
    return time.perf_counter() - started


def send(
    addresses: list[tuple[str, int]], messages: int, clients: int, size: int, names: list[str]
) -> tuple[float, int]:
    """Seconds for ``messages`` over ``clients`` sessions, split evenly over ``addresses`` and
    over the recipients ``names`` (one generator per address and recipient, all at once), and
    the number of messages sent (the share each generator got, times the generators)."""
    sessions = max(1, clients // len(addresses))
    per_node = min(len(names), sessions)
    jobs = [
        (address, names[(n * per_node + k) % len(names)])
        for n, address in enumerate(addresses)
        for k in range(per_node)
    ]
    share = messages // len(jobs)
    seconds: list[float] = []

    def one(address: tuple[str, int], recipient: str) -> None:
        if shutil.which("smtp-source"):
            seconds.append(smtp_source(address, share, sessions // per_node, size, recipient))
        else:  # the Python client knows one recipient only
            seconds.append(python_client(address, share, sessions // per_node, size)["seconds"])

    threads = [threading.Thread(target=one, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return max(seconds), share * len(jobs)


@dataclass
class Usage:
    """CPU ms per message over one run (user + system, from /proc): of each server process
    tree, of PostgreSQL's processes, of the load generator, and how busy the machine was.
    A rate moves with whatever else the machine does; these much less, and they bound the
    rate: a node's process runs Python on one core at a time (the GIL), and all of it shares
    the machine's cores."""

    nodes: list[float]
    postgres: float
    generator: float
    busy: float  # of all cores, 0..1

    def total(self) -> float:
        return sum(self.nodes) + self.postgres + self.generator

    def ceiling(self) -> float:
        """The rate the CPU allows at most: no node process past one core (the GIL; C code
        that lets go of it takes a process a little past), the whole within the machine's
        cores (nothing else running)."""
        cores = os.cpu_count() or 1
        return min(1000 * cores / self.total(), *(1000 * len(self.nodes) / n for n in self.nodes))

    def __str__(self) -> str:
        nodes = "+".join(f"{n:.2f}" for n in self.nodes)
        return (
            f"CPU ms/msg: node {nodes}, postgres {self.postgres:.2f}, smtp-source "
            f"{self.generator:.2f} (total {self.total():.2f}; ceiling {self.ceiling():.0f} msg/s;"
            f" machine {self.busy:.0%} busy)"
        )


def _busy_ticks() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4], sum(fields)  # minus idle and iowait


def measured_send(
    pids: list[int], postgres: Path | None, addresses: list[tuple[str, int]], args, names
) -> tuple[float, int, Usage]:
    """``send``, with the CPU it cost (``Usage``). ``postgres``: the cluster's data directory
    (its postmaster.pid), None for SQLite."""

    def postgres_seconds() -> float:
        if postgres is None:
            return 0.0
        postmaster = int((postgres / "postmaster.pid").read_text().split()[0])
        return server_usage(postmaster)[0]

    nodes = [server_usage(pid)[0] for pid in pids]
    database = postgres_seconds()
    children = os.times()
    busy, ticks = _busy_ticks()
    seconds, share = send(addresses, args.messages, args.clients, args.size, names)
    busy_after, ticks_after = _busy_ticks()
    after = os.times()
    per = 1000 / share
    generator = (after.children_user + after.children_system) - (
        children.children_user + children.children_system
    )
    usage = Usage(
        [(server_usage(pid)[0] - before) * per for pid, before in zip(pids, nodes, strict=True)],
        (postgres_seconds() - database) * per,
        generator * per,
        (busy_after - busy) / max(1, ticks_after - ticks),
    )
    return seconds, share, usage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--size", type=int, default=10240)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--blobs", choices=("database", "s3"), default="database")
    parser.add_argument("--accounts", type=int, default=16, help="recipient accounts")
    args = parser.parse_args()
    names = recipients(args.accounts if shutil.which("smtp-source") else 1)
    print(
        f"{args.messages} messages of {args.size} octets, {args.clients} sessions, "
        f"{len(names)} recipient accounts"
    )
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(dir=ROOT) as scratch, contextlib.ExitStack() as stack:
        base = Path(scratch)
        cluster = stack.enter_context(running_cluster())
        blobs = ""
        if args.blobs == "s3":
            from tests.support.seaweedfs import run_seaweedfs, weed_binary

            seaweed = stack.enter_context(run_seaweedfs(weed_binary(), base / "seaweedfs"))
            seaweed.make_bucket("mail")
            blobs = (
                f'\n[storage.blob]\nbackend = "s3"\nendpoint = "{seaweed.endpoint}"\n'
                f'bucket = "mail"\naccess-key = "{seaweed.access_key}"\n'
                f'secret-key = "{seaweed.secret_key}"\n'
            )
        one_url, two_url = cluster.database("one"), cluster.database("two")
        prepare_postgres(one_url, names)
        prepare_postgres(two_url, names)
        servers = stack.enter_context(contextlib.ExitStack())  # stopped before counting
        sqlite = Stalwart(base / "sqlite")  # makes the first account
        add_sqlite_accounts(sqlite.data_dir, names[1:])
        servers.enter_context(sqlite)
        one = servers.enter_context(Node(base / "one", one_url, blobs))
        pair = [servers.enter_context(Node(base / f"two-{n}", two_url, blobs)) for n in "ab"]
        data = cluster.base / "data"
        line_up = {
            "SQLite, one node": ([sqlite], None),
            "PostgreSQL, one node": ([one], data),
            "PostgreSQL, two nodes": (pair, data),
        }
        sent = dict.fromkeys(line_up, 0)
        rates: dict[str, list[float]] = {name: [] for name in line_up}
        usages: dict[str, list[Usage]] = {name: [] for name in line_up}
        for round_ in range(args.rounds):
            order = list(line_up) if round_ % 2 == 0 else list(reversed(line_up))
            for name in order:
                members, postgres = line_up[name]
                seconds, share, usage = measured_send(
                    [member.process.pid for member in members],
                    postgres,
                    [member.address for member in members],
                    args,
                    names,
                )
                sent[name] += share
                rates[name].append(share / seconds)
                usages[name].append(usage)
                print(f"  round {round_ + 1} {name:24s} {share / seconds:7.1f} msg/s; {usage}")
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        best = {name: max(values) for name, values in rates.items()}
        for name, rate in best.items():
            usage = usages[name][rates[name].index(rate)]
            print(f"{name:24s} {rate:7.1f} msg/s (best of {args.rounds}); {usage}")
        print(
            f"ratio PostgreSQL one node / SQLite: "
            f"{best['PostgreSQL, one node'] / best['SQLite, one node']:.2f} (goal >= 0.8)"
        )
        print(
            f"ratio PostgreSQL two nodes / one node: "
            f"{best['PostgreSQL, two nodes'] / best['PostgreSQL, one node']:.2f} (goal >= 1.5)"
        )
        ceiling = {name: max(u.ceiling() for u in usages[name]) for name in line_up}
        print(
            f"the CPU's ceilings: PostgreSQL one node / SQLite "
            f"{ceiling['PostgreSQL, one node'] / ceiling['SQLite, one node']:.2f}, two nodes / "
            f"one node {ceiling['PostgreSQL, two nodes'] / ceiling['PostgreSQL, one node']:.2f}"
        )
        servers.close()
        checks = {
            "SQLite, one node": stored_sqlite(sqlite.data_dir, names),
            "PostgreSQL, one node": stored_postgres(one_url, names),
            "PostgreSQL, two nodes": stored_postgres(two_url, names),
        }
    for name, stored in checks.items():
        if stored != sent[name]:
            sys.exit(f"{name}: stored {stored} of the {sent[name]} acknowledged")
    print("every acknowledged message stored, once")


if __name__ == "__main__":
    main()
