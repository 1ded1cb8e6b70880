"""SMTP throughput and latency: stalwart-py storing every message durably, side by side
with aiosmtpd (a Python SMTP server) whose handler only counts the message.

    .venv/bin/python bench/smtp_throughput.py [--messages 5000] [--size 10240]
                                              [--clients 1,16] [--idle 2000]
                                              [--persistent]

For each number of concurrent clients, each server gets the same load twice:

* rate: ``smtp-source`` (Debian's postfix package; a C client, so the client is not the
  bottleneck) sends ``--messages`` messages of ``--size`` octets; messages per second from
  its wall time. smtp-source opens a connection per message unless ``--persistent``
  (its ``-d``). Without smtp-source the Python client below is the load generator.
* latency: a Python asyncio client (in its own process) sends the same load, one command at
  a time like smtp-source, and times each transaction from MAIL to the final reply: p50/p99.

Every message stalwart-py acknowledged is counted in the store afterwards. Then ``--idle``
connections are opened to each server and held, and the servers' RSS is read before and
after. aiosmtpd is installed by ``pip install aiosmtpd`` (it is not a dependency).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RECIPIENT = "bob@example.test"
SENDER = "sender@remote.test"


# -- the servers ----------------------------------------------------------------------------


def prepare_store(data_dir: Path) -> None:
    """The local domain and the recipient's account, made before the server starts."""
    import anyio

    from stalwart_py import passwords
    from stalwart_py.directory import Directory
    from stalwart_py.store.sqlite import SqliteStore

    async def setup() -> None:
        passwords.SCRYPT_LOG2_N = 8  # setup only; nothing measured hashes a password
        store = SqliteStore(data_dir)
        await store.open()
        try:
            directory = Directory(store)
            await directory.add_domain("example.test")
            await directory.add_account(RECIPIENT, "bench-password")
        finally:
            await store.close()

    anyio.run(setup)


def stored_messages(data_dir: Path) -> int:
    import anyio

    from stalwart_py.store.sqlite import SqliteStore

    async def count() -> int:
        store = SqliteStore(data_dir)
        await store.open()
        try:
            account = await store.get_account(RECIPIENT)
            assert account is not None
            inbox = await store.get_mailbox(account.id, "INBOX")
            assert inbox is not None
            return (await store.mailbox_counts(inbox.id)).messages
        finally:
            await store.close()

    return anyio.run(count)


class Stalwart:
    """``stalwart-py serve`` as a child process, ready once it says so on --notify-fd;
    ``extra`` is appended to its configuration (after its one SMTP listener)."""

    def __init__(self, directory: Path, extra: str = "", workers: int = 1) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.data_dir = directory / "var"
        self.config = directory / "config.toml"
        self.config.write_text(
            f'[storage]\ndata-dir = "{self.data_dir}"\n\n[logging]\nlevel = "warning"\n\n'
            f'[server]\nhostname = "mail.example.test"\nworkers = {workers}\n\n'
            '[server.listener.smtp]\nbind = "127.0.0.1:0"\nprotocol = "smtp"\n'
            # every client of a bench is one address: the idle test holds thousands
            "max-connections-per-ip = 1000000\n\n" + extra
        )
        prepare_store(self.data_dir)

    def __enter__(self) -> Stalwart:
        read_fd, write_fd = os.pipe()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stalwart_py",
                "serve",
                "--config",
                str(self.config),
                "--notify-fd",
                str(write_fd),
                "--log-level",
                "warning",
            ],
            pass_fds=(write_fd,),
            cwd=ROOT,
        )
        os.close(write_fd)
        with os.fdopen(read_fd) as events:
            for line in events:
                event = json.loads(line)
                if event["event"] == "ready":
                    break
            else:
                raise RuntimeError("stalwart-py exited before it was ready")
        [listener] = event["listeners"]
        host, _, port = listener["bind"][0].rpartition(":")
        self.address = (host, int(port))
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.process.terminate()
        self.process.wait(30)


AIOSMTPD_SERVER = """
import asyncio, sys
from aiosmtpd.smtp import SMTP

class Count:
    messages = 0
    async def handle_DATA(self, server, session, envelope):
        Count.messages += 1
        return "250 OK"

async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(Count(), hostname="aiosmtpd.test"), "127.0.0.1", 0, backlog=1024
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


class Aiosmtpd:
    """aiosmtpd in a child process, its handler a no-op that counts."""

    def __enter__(self) -> Aiosmtpd:
        self.process = subprocess.Popen(
            [sys.executable, "-c", AIOSMTPD_SERVER], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.address = ("127.0.0.1", int(self.process.stdout.readline()))
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.process.terminate()
        self.process.wait(30)


class SmtpSink:
    """Postfix's smtp-sink (C; Debian's postfix package): a second peer, the rate a mature C
    MTA's intake reaches on this machine when it stores nothing."""

    def __enter__(self) -> SmtpSink:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        privileges = ["-u", "nobody"] if os.geteuid() == 0 else []  # it refuses root
        self.process = subprocess.Popen(
            ["smtp-sink", *privileges, f"127.0.0.1:{port}", "1000"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.address = ("127.0.0.1", port)
        deadline = time.monotonic() + 10
        while True:  # it says nothing when ready: try until it answers
            try:
                socket.create_connection(self.address, timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def __exit__(self, *exc_info: object) -> None:
        self.process.terminate()
        self.process.wait(30)


# -- the load -------------------------------------------------------------------------------


def make_message(size: int) -> bytes:
    head = f"From: {SENDER}\r\nTo: {RECIPIENT}\r\nSubject: bench\r\n\r\n".encode()
    line = b"abcdefghijklmnopqrstuvwxyz0123456789 " * 2 + b"\r\n"
    body = line * ((size - len(head)) // len(line) + 1)
    return (head + body)[: size - 2] + b"\r\n"


def smtp_source(
    address: tuple[str, int], messages: int, clients: int, size: int, persistent: bool
) -> tuple[float, float]:
    """(seconds smtp-source takes to send the load, the CPU seconds it used doing so)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [
            "smtp-source",
            *(["-d"] if persistent else []),
            "-l",
            str(size),
            "-m",
            str(messages),
            "-s",
            str(clients),
            "-f",
            SENDER,
            "-t",
            RECIPIENT,
            "-M",
            "client.test",
            f"{address[0]}:{address[1]}",
        ],
        check=True,
    )
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return seconds, cpu


async def send_messages(
    address: tuple[str, int],
    messages: int,
    clients: int,
    data: bytes,
    *,
    sender: str = SENDER,
    helo: str = "client.test",
) -> tuple[float, list[float]]:
    """``messages`` copies of ``data`` sent over ``clients`` sessions, one command at a time
    like smtp-source: (seconds in all, the latency of each transaction)."""
    content = data + b".\r\n"
    latencies: list[float] = []
    remaining = iter(range(messages))

    async def expect(reader: asyncio.StreamReader, code: bytes) -> None:
        while True:
            line = await reader.readline()
            if not line.startswith(code):
                raise RuntimeError(f"expected {code!r}, got {line!r}")
            if line[3:4] != b"-":
                return

    async def session() -> None:
        reader, writer = await asyncio.open_connection(*address)
        await expect(reader, b"220")
        writer.write(f"EHLO {helo}\r\n".encode())
        await expect(reader, b"250")
        for _ in remaining:
            started = time.perf_counter()
            for command, code in (
                (f"MAIL FROM:<{sender}>\r\n".encode(), b"250"),
                (f"RCPT TO:<{RECIPIENT}>\r\n".encode(), b"250"),
                (b"DATA\r\n", b"354"),
                (content, b"250"),
            ):
                writer.write(command)
                await expect(reader, code)
            latencies.append(time.perf_counter() - started)
        writer.write(b"QUIT\r\n")
        await expect(reader, b"221")
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(session() for _ in range(clients)))
    return time.perf_counter() - started, latencies


async def _client(address: tuple[str, int], messages: int, clients: int, size: int) -> dict:
    """Throughput and latency percentiles of ``send_messages``."""
    seconds, latencies = await send_messages(address, messages, clients, make_message(size))
    latencies.sort()
    return {
        "seconds": seconds,
        "p50": statistics.median(latencies),
        "p99": latencies[max(0, int(len(latencies) * 0.99) - 1)],
    }


def client_process(script: str, address: tuple[str, int], *args: object) -> str:
    """What ``script --client HOST:PORT ARGS...`` prints: a load client in its own process,
    so that it has a core of its own."""
    command = [sys.executable, script, "--client", f"{address[0]}:{address[1]}", *map(str, args)]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def python_client(address: tuple[str, int], messages: int, clients: int, size: int) -> dict:
    """``_client`` in its own process."""
    return json.loads(client_process(__file__, address, messages, clients, size))


# -- what the server spends ----------------------------------------------------------------


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a supervisor's worker processes)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo += [int(child) for child in task.read_text().split()]
    return found


def server_usage(pid: int) -> tuple[float, dict[int, int]]:
    """(CPU seconds, user and system, of the process tree of ``pid``, its exited threads
    included; voluntary context switches of each live thread, by thread id). A load-independent
    cost: a run's rate moves with whatever else the machine does, its CPU time much less."""
    seconds = 0.0
    switches: dict[int, int] = {}
    for process in process_tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{process}/stat").read_text().rpartition(")")[2].split()
            seconds += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
            for status in Path(f"/proc/{process}/task").glob("*/status"):
                with contextlib.suppress(OSError):
                    for line in status.read_text().splitlines():
                        if line.startswith("voluntary_ctxt_switches:"):
                            switches[int(status.parent.name)] = int(line.split()[1])
    return seconds, switches


@contextlib.contextmanager
def measured(pid: int, messages: int, into: dict[str, float]) -> Iterator[None]:
    """Fill ``into`` with the server's CPU ms and voluntary context switches per message over
    the block. Switches of threads that ended inside the block are not counted (anyio retires
    a worker thread after 10 s idle, so few do during a run)."""
    cpu, switches = server_usage(pid)
    yield
    cpu_after, switches_after = server_usage(pid)
    into["cpu_ms"] = (cpu_after - cpu) * 1000 / messages
    delta = sum(count - switches.get(tid, 0) for tid, count in switches_after.items())
    into["switches"] = delta / messages


# -- idle connections -----------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def hold_idle(address: tuple[str, int], count: int, pid: int) -> tuple[int, int]:
    """Open ``count`` connections, read each greeting; (RSS before, RSS with them open)."""
    before = rss_kib(pid)
    sockets = []
    try:
        for _ in range(count):
            sock = socket.create_connection(address, timeout=30)
            sockets.append(sock)
        for sock in sockets:
            if not sock.recv(512).startswith(b"220"):
                raise RuntimeError("no greeting")
        time.sleep(1)  # ok: let the server settle before reading its RSS
        return before, rss_kib(pid)
    finally:
        for sock in sockets:
            sock.close()


# -- the run --------------------------------------------------------------------------------


def describe(messages: int, seconds: float) -> str:
    return f"{messages / seconds:7.0f} msg/s"


GOAL = 2.0  # issue 17: workers >= 2.0x aiosmtpd's no-op rate


def print_budget(
    rates: dict[str, float],
    costs: dict[str, float],
    client_costs: dict[str, float],
    named: dict[str, int],
) -> None:
    """What the CPU of this machine allows: the load generator runs on the same cores, so a
    rate R needs R x (server + smtp-source CPU per message) <= cores. From that, the server CPU
    per message the goal (``GOAL`` x aiosmtpd) leaves, and each server's ceiling at its
    measured costs (a worker process is also bound by its one core, under the GIL)."""
    cores = len(os.sched_getaffinity(0))
    goal = GOAL * rates["aiosmtpd (no-op)"]
    for name, workers in named.items():
        client = client_costs[name]
        budget = cores * 1000 / goal - client
        ceiling = min(
            min(cores, workers) * 1000 / costs[name], cores * 1000 / (costs[name] + client)
        )
        print(
            f"  budget {name}: {GOAL:.1f}x aiosmtpd = {goal:.0f} msg/s on {cores} cores leaves"
            f" the server {budget:.2f} ms CPU/msg (smtp-source takes {client:.2f});"
            f" it uses {costs[name]:.2f}: ceiling {ceiling:.0f} msg/s"
            f" = {ceiling / rates['aiosmtpd (no-op)']:.2f}x aiosmtpd"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--size", type=int, default=10240)
    parser.add_argument("--clients", default="1,16")
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument(
        "--workers",
        default="1",
        help="server.workers values to measure, comma-separated (e.g. 1,2): one server each",
    )
    parser.add_argument(
        "--persistent",
        action="store_true",
        help="smtp-source -d: all messages of a client on one connection (default: one"
        " connection per message, smtp-source's own default)",
    )
    args = parser.parse_args()
    try:
        import aiosmtpd  # noqa: F401
    except ImportError:
        sys.exit("the peer is missing: .venv/bin/pip install aiosmtpd")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 2 * args.idle + 256)), hard))
    have_source = shutil.which("smtp-source") is not None
    have_sink = shutil.which("smtp-sink") is not None
    generator = "smtp-source" if have_source else "the Python client (smtp-source not found)"
    print(f"{args.messages} messages of {args.size} octets; load generator: {generator}")
    counts = [int(w) for w in args.workers.split(",")]
    sent = dict.fromkeys(counts, 0)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(dir=ROOT) as scratch, contextlib.ExitStack() as stack:
        servers = {w: Stalwart(Path(scratch) / f"w{w}", workers=w) for w in counts}
        named = {
            ("stalwart-py (durable)" if w == 1 else f"stalwart-py {w} workers"): w for w in counts
        }
        for server in servers.values():
            stack.enter_context(server)
        peer = stack.enter_context(Aiosmtpd())
        sinks = [("smtp-sink (Postfix)", stack.enter_context(SmtpSink()))] if have_sink else []
        ours = servers[counts[0]]
        for clients in (int(c) for c in args.clients.split(",")):
            print(f"\n{clients} client(s)")
            rates = {}
            costs = {}
            client_costs: dict[str, float] = {}  # smtp-source's CPU ms per message
            line_up = [(name, servers[w]) for name, w in named.items()]
            for name, server in [*line_up, ("aiosmtpd (no-op)", peer), *sinks]:
                cost: dict[str, float] = {}
                if have_source:
                    latency = python_client(server.address, args.messages, clients, args.size)
                    with measured(server.process.pid, args.messages, cost):
                        seconds, client_cpu = smtp_source(
                            server.address, args.messages, clients, args.size, args.persistent
                        )
                    client_costs[name] = client_cpu * 1000 / args.messages
                else:
                    with measured(server.process.pid, args.messages, cost):
                        latency = python_client(server.address, args.messages, clients, args.size)
                    seconds = latency["seconds"]
                if name in named:
                    sent[named[name]] += args.messages * (2 if have_source else 1)
                rates[name] = args.messages / seconds
                costs[name] = cost["cpu_ms"]
                print(
                    f"  {name:22s} {describe(args.messages, seconds)}"
                    f"  CPU {cost['cpu_ms']:5.2f} ms/msg  {cost['switches']:5.1f} csw/msg"
                    "   latency client:"
                    f" {describe(args.messages, latency['seconds'])}"
                    f"  p50 {latency['p50'] * 1000:6.2f} ms"
                    f"  p99 {latency['p99'] * 1000:6.2f} ms"
                )
            for name, w in named.items():
                ratio = rates[name] / rates["aiosmtpd (no-op)"]
                print(f"  ratio {name} / aiosmtpd: {ratio:.2f}", end="")
                if sinks:
                    print(f"   / smtp-sink: {rates[name] / rates[sinks[0][0]]:.2f}", end="")
                first = next(iter(named))
                if w != counts[0]:
                    print(f"   / {first}: {rates[name] / rates[first]:.2f}", end="")
                # below 1: less CPU time per message than aiosmtpd's no-op handler
                print(
                    f"   CPU per message / aiosmtpd: {costs[name] / costs['aiosmtpd (no-op)']:.2f}"
                )
            if client_costs:
                print_budget(rates, costs, client_costs, named)
            print(f"  load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if args.idle:
            print(f"\n{args.idle} idle connections")
            for name, server in (("stalwart-py", ours), ("aiosmtpd", peer)):
                before, during = hold_idle(server.address, args.idle, server.process.pid)
                print(
                    f"  {name:12s} RSS {before / 1024:6.1f} MiB -> {during / 1024:6.1f} MiB"
                    f"  ({(during - before) / args.idle:.1f} KiB per connection)"
                )
        stack.close()
        for w, server in servers.items():
            stored = stored_messages(server.data_dir)
            print(f"\nstalwart-py (workers {w}) stored {stored} of the {sent[w]} it acknowledged")
            if stored != sent[w]:
                sys.exit("stored messages do not match the acknowledged ones")


def client_main(argv: list[str]) -> None:
    host, _, port = argv[0].rpartition(":")
    messages, clients, size = (int(value) for value in argv[1:4])
    result: Any = asyncio.run(_client((host, int(port)), messages, clients, size))
    print(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        client_main(sys.argv[2:])
    else:
        main()
