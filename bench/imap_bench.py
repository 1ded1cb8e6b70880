"""IMAP: stalwart-py beside Dovecot on the same 10,000 messages, and the memory of 5,000
sessions in IDLE.

    .venv/bin/python bench/imap_bench.py [--messages 10000] [--runs 3] [--no-dovecot]
                                         [--workers 1,2]
    .venv/bin/python bench/imap_bench.py --idle-sessions 5000 [--no-dovecot]

``--workers 1,2`` measures one stalwart-py server per ``server.workers`` value, each in its
own column beside Dovecot's.

Both servers run as child processes on loopback, hold the same generated messages (about a
quarter multipart, some with attachments) in INBOX, and are timed by the same client from
this process: SELECT, ``FETCH 1:* (FLAGS ENVELOPE)``, ``UID FETCH`` of 100 full bodies,
SEARCH on a header and on body text, SORT by ARRIVAL, SUBJECT and FROM and THREAD=REFERENCES
(each also timed on its first run), STORE on 1,000 messages, and a mixed load of 16
concurrent sessions. Each operation runs once to warm up, then ``--runs`` times; the table
gives the median and ours over Dovecot's. Dovecot (Debian dovecot-imapd) gets its messages
as Maildir files indexed with ``doveadm index`` first, stalwart-py through its store, as a
delivery would.

``--idle-sessions N`` opens N sessions (LOGIN, SELECT INBOX, IDLE) and reports the server's
resident memory (VmRSS of the process) before and after, with the server holding 100 small
accounts of 100 messages each (so N/100 sessions per account).

Figures are indicative: client and server share the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import json
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.dovecot import start_dovecot  # noqa: E402
from tests.support.servers import free_port  # noqa: E402

USER = "bench@bench.test"
PASSWORD = "bench-password"
WORDS = [
    "budget",
    "meeting",
    "report",
    "invoice",
    "project",
    "update",
    "release",
    "schedule",
    "review",
    "draft",
    "notes",
    "travel",
    "lunch",
    "contract",
    "offer",
    "question",
    "answer",
    "summary",
    "agenda",
    "minutes",
    "plan",
    "design",
]
SORT_COMMANDS = [
    ("SORT (ARRIVAL) UTF-8 ALL", "SORT (ARRIVAL) UTF-8 ALL"),
    ("SORT (SUBJECT) UTF-8 ALL", "SORT (SUBJECT) UTF-8 ALL"),
    ("SORT (FROM) UTF-8 ALL", "SORT (FROM) UTF-8 ALL"),
    ("THREAD REFERENCES UTF-8 ALL", "THREAD REFERENCES UTF-8 ALL"),
]
HEADER_NEEDLE = "zebra"  # in about 1% of subjects
BODY_NEEDLE = "quokka"  # in about 1% of bodies


# -- the messages ---------------------------------------------------------------------------


def make_message(n: int) -> bytes:
    rng = random.Random(n)
    words = rng.choices(WORDS, k=rng.randint(2, 6))
    if n % 97 == 0:
        words.insert(1, HEADER_NEEDLE)
    subject = " ".join(words).capitalize()
    lines = []
    for _ in range(rng.randint(10, 120)):
        lines.append(" ".join(rng.choices(WORDS, k=rng.randint(6, 14))))
    if n % 89 == 0:
        lines.insert(rng.randrange(len(lines)), f"and then a {BODY_NEEDLE} appeared")
    text = "\r\n".join(lines) + "\r\n"
    head = (
        f"From: Sender {n % 50} <sender{n % 50}@example.org>\r\n"
        f"To: {USER}\r\n"
        f"Subject: {subject}\r\n"
        f"Date: Mon, {1 + n % 28} Jan 2024 {n % 24:02d}:{n % 60:02d}:00 +0000\r\n"
        f"Message-ID: <{n}.bench@example.org>\r\n"
        "MIME-Version: 1.0\r\n"
    )
    kind = n % 8
    if kind < 6:
        return (head + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text).encode()
    boundary = f"b{n}"
    parts = [
        f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}",
        f"--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>{text}</p>\r\n",
    ]
    subtype = "alternative"
    if kind == 7:
        subtype = "mixed"
        blob = rng.randbytes(rng.randint(2000, 30000))
        encoded = base64.encodebytes(blob).decode().replace("\n", "\r\n")
        parts[1] = (
            f"--{boundary}\r\nContent-Type: application/octet-stream; name=f{n}.bin\r\n"
            f"Content-Disposition: attachment; filename=f{n}.bin\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\n{encoded}"
        )
    body = "".join(parts) + f"--{boundary}--\r\n"
    content_type = f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n'
    return (head + content_type + body).encode()


# -- the servers ----------------------------------------------------------------------------


async def _load_ours(
    data_dir: Path, accounts: dict[str, list[bytes]], cheap_passwords: bool = True
) -> None:
    import anyio

    from stalwart_py import passwords
    from stalwart_py.directory import Directory
    from stalwart_py.store.sqlite import SqliteStore

    # Account setup only: a cheap password hash, so that thousands of logins in the IDLE
    # test measure sessions, not scrypt. Nothing else depends on it. Without it, the hashes
    # the CLI makes (bench/imap_login_load.py).
    if cheap_passwords:
        passwords.SCRYPT_LOG2_N = 8
    store = SqliteStore(data_dir)
    await store.open()
    try:
        directory = Directory(store)
        await directory.add_domain("bench.test")
        for address, messages in accounts.items():
            account = await directory.add_account(address, PASSWORD)
            inbox = await store.get_mailbox(account.id, "INBOX")
            assert inbox is not None
            for start in range(0, len(messages), 500):
                async with anyio.create_task_group() as group:
                    for data in messages[start : start + 500]:
                        group.start_soon(store.append, inbox.id, data)
    finally:
        await store.close()


@contextmanager
def ours(
    workdir: Path,
    accounts: dict[str, list[bytes]],
    *,
    cheap_passwords: bool = True,
    extra: str = "",
    workers: int = 1,
) -> Iterator[tuple[int, int]]:
    """stalwart-py serve as a child process: yields (port, pid). ``cheap_passwords`` hashes
    the accounts' passwords at a low scrypt cost; ``extra`` is appended to the configuration
    (after the ``[server.listener.imap]`` table); ``workers``: ``server.workers`` (the pid
    is then the supervisor's, the workers its children)."""
    import anyio

    data_dir = workdir / "ours"
    anyio.run(_load_ours, data_dir, accounts, cheap_passwords)
    port = free_port()
    config = workdir / "ours.toml"
    config.write_text(
        f"""
[server]
hostname = "bench.test"
workers = {workers}
[storage]
data-dir = "{data_dir}"
[logging]
level = "warning"
[server.listener.imap]
bind = "127.0.0.1:{port}"
protocol = "imap"
imap.auth.allow-plaintext = true
{extra}
"""
    )
    read_fd, write_fd = os.pipe()
    log = open(workdir / "ours.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stalwart_py",
            "serve",
            "--config",
            str(config),
            "--notify-fd",
            str(write_fd),
        ],
        pass_fds=(write_fd,),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    os.close(write_fd)
    try:
        with os.fdopen(read_fd, "rb") as events:
            for line in events:
                if json.loads(line)["event"] == "ready":
                    break
            else:
                raise RuntimeError("stalwart-py did not start; see ours.log")
            yield port, process.pid
    finally:
        process.terminate()
        process.wait(30)
        log.close()


@contextmanager
def dovecot(
    workdir: Path,
    accounts: dict[str, list[bytes]],
    *,
    password_scheme: str = "PLAIN",
    extra: str = "",
) -> Iterator[tuple[int, int]]:
    """Dovecot as a child process on its own configuration (tests/support/dovecot.py, the
    launcher the differential tests use): yields (port, pid). ``password_scheme`` is how
    its passdb keeps the passwords (``SHA512-CRYPT``, ...)."""
    with start_dovecot(
        {address: PASSWORD for address in accounts},
        password_scheme=password_scheme,
        login_service=(
            "  process_min_avail = 2\n  service_count = 0\n  client_limit = 10000\n  vsz_limit = 2G"
        ),
        extra=(
            "service imap {\n  process_limit = 10000\n}\n"
            "default_process_limit = 100\n"
            "protocol imap {\n  mail_max_userip_connections = 100000\n}\n" + extra
        ),
    ) as server:
        for address, messages in accounts.items():
            server.write_messages(address, messages)
            # build the index and cache, as deliveries would have
            server.doveadm("index", "-u", address, "INBOX")
        yield server.port, server.pid


# -- a small client -------------------------------------------------------------------------


class Client:
    """Blocking, minimal: sends a command, reads up to its tagged reply (literals are read
    through, never parsed: no line of the corpus looks like a tagged reply)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=600)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.counter = 0
        self.buffer = bytearray()
        while b"\r\n" not in self.buffer:
            self._receive()
        del self.buffer[: self.buffer.index(b"\r\n") + 2]

    def _receive(self) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buffer += chunk

    def command(self, text: str) -> bytes:
        """The whole response, untagged lines and tagged reply; raises unless OK."""
        self.counter += 1
        tag = f"b{self.counter}"
        self.sock.sendall(f"{tag} {text}\r\n".encode())
        marker = f"\r\n{tag} ".encode()
        self.buffer[:0] = b"\r\n"  # so that a reply on the first line is found too
        scan = 0
        while True:
            index = self.buffer.find(marker, scan)
            if index >= 0:
                end = self.buffer.find(b"\r\n", index + 2)
                if end >= 0:
                    response = bytes(self.buffer[2 : end + 2])
                    tagged = bytes(self.buffer[index + 2 : end])
                    del self.buffer[: end + 2]
                    if not tagged.startswith(f"{tag} OK".encode()):
                        raise RuntimeError(f"{text[:60]!r} failed: {tagged[:200]!r}")
                    return response
            else:
                scan = max(0, len(self.buffer) - len(marker))
            self._receive()

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError, ConnectionError):
            self.command("LOGOUT")
        self.sock.close()


def logged_in(port: int, user: str = USER) -> Client:
    client = Client(port)
    client.command(f'LOGIN "{user}" "{PASSWORD}"')
    return client


# -- the measurements -----------------------------------------------------------------------


def measure(
    runs: int, operation: Callable[[int], object], first: list[float] | None = None
) -> float:
    started = time.perf_counter()
    operation(0)  # warm-up
    if first is not None:
        first.append(time.perf_counter() - started)
    times = []
    for run in range(1, runs + 1):
        started = time.perf_counter()
        operation(run)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def mixed_load(port: int, sessions: int = 16, rounds: int = 20) -> None:
    """Each session: FETCH 20 envelopes, UID FETCH a body, SEARCH a subject, STORE 5 flags,
    NOOP, ``rounds`` times."""
    errors: list[BaseException] = []

    def session(number: int) -> None:
        try:
            rng = random.Random(number)
            client = logged_in(port)
            data = client.command("SELECT INBOX")
            exists = int(data.split(b" EXISTS")[0].rsplit(b"* ", 1)[1])
            for _ in range(rounds):
                first = rng.randint(1, exists - 20)
                client.command(f"FETCH {first}:{first + 19} (FLAGS ENVELOPE)")
                client.command(f"FETCH {rng.randint(1, exists)} BODY.PEEK[]")
                client.command(f"SEARCH SUBJECT {rng.choice(WORDS)}")
                first = rng.randint(1, exists - 5)
                client.command(f"STORE {first}:{first + 4} +FLAGS ($Mixed{number})")
                client.command("NOOP")
            client.close()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=session, args=(n,)) for n in range(sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


REPLIES: dict[str, dict[str, bytes]] = {}  # server -> SORT/THREAD command -> its reply


def run_operations(port: int, runs: int, name: str = "") -> dict[str, float]:
    client = logged_in(port)
    results: dict[str, float] = {}
    results["SELECT INBOX"] = measure(runs, lambda _: client.command("SELECT INBOX"))
    results["FETCH 1:* (FLAGS ENVELOPE)"] = measure(
        runs, lambda _: client.command("FETCH 1:* (FLAGS ENVELOPE)")
    )
    data = client.command("UID SEARCH ALL")
    uids = [int(n) for n in data.split(b"* SEARCH", 1)[1].split(b"\r\n")[0].split()]
    chosen = ",".join(str(uid) for uid in uids[:: max(1, len(uids) // 100)][:100])
    results["UID FETCH 100 x BODY.PEEK[]"] = measure(
        runs, lambda _: client.command(f"UID FETCH {chosen} BODY.PEEK[]")
    )
    results[f"SEARCH SUBJECT {HEADER_NEEDLE}"] = measure(
        runs, lambda _: client.command(f"SEARCH SUBJECT {HEADER_NEEDLE}")
    )
    results[f"SEARCH BODY {BODY_NEEDLE}"] = measure(
        runs, lambda _: client.command(f"SEARCH BODY {BODY_NEEDLE}")
    )
    # SORT and THREAD (RFC 5256). The first run of each is reported too: later runs of
    # the same command on an unchanged mailbox may be answered from a memo.
    server = name
    for name, command in SORT_COMMANDS:
        first: list[float] = []
        results[name] = measure(runs, lambda _, c=command: client.command(c), first)
        reply = client.command(command)
        REPLIES.setdefault(server, {})[command] = reply[: reply.rindex(b"\r\n", 0, -2) + 2]
        results[name + " (first run)"] = first[0]
    last = min(1000, len(uids))
    results[f"STORE 1:{last} +/-FLAGS (\\Flagged)"] = measure(
        runs,
        lambda run: client.command(f"STORE 1:{last} {'-' if run % 2 else '+'}FLAGS (\\Flagged)"),
    )
    client.close()
    results["mixed: 16 sessions x 20 rounds"] = measure(runs, lambda _: mixed_load(port))
    return results


# -- memory of sessions in IDLE -------------------------------------------------------------


def memory_of(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in KiB of a process and all its descendants (Dovecot runs one process
    a session; PSS shares the pages they have in common among them, RSS counts them in
    each)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    family, queue = [], [pid]
    while queue:
        current = queue.pop()
        family.append(current)
        queue.extend(children.get(current, ()))
    rss = pss = 0
    for member in family:
        try:
            for line in Path(f"/proc/{member}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return rss, pss


async def open_idle_sessions(port: int, count: int, users: list[str]) -> list:
    semaphore = asyncio.Semaphore(200)
    sessions = []

    async def one(number: int) -> None:
        async with semaphore:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await reader.readline()
            user = users[number % len(users)]
            writer.write(f'a LOGIN "{user}" "{PASSWORD}"\r\nb SELECT INBOX\r\nc IDLE\r\n'.encode())
            while True:
                line = await asyncio.wait_for(reader.readline(), 120)
                if not line:
                    raise ConnectionError("closed")
                if line.startswith(b"+ "):
                    break
                if line[:2] in (b"a ", b"b ") and b" OK " not in line:
                    raise RuntimeError(line)
            sessions.append((reader, writer))

    await asyncio.gather(*(one(n) for n in range(count)))
    return sessions


def idle_memory(name: str, port: int, pid: int, count: int, users: list[str]) -> None:
    before_rss, before_pss = memory_of(pid)

    async def run() -> None:
        started = time.perf_counter()
        sessions = await open_idle_sessions(port, count, users)
        elapsed = time.perf_counter() - started
        await asyncio.sleep(1)  # ok: let the server settle before reading its memory
        rss, pss = memory_of(pid)
        print(
            f"{name:<12} {count} sessions in IDLE (opened in {elapsed:.1f}s): "
            f"RSS {before_rss / 1024:.0f} -> {rss / 1024:.0f} MiB, "
            f"PSS {before_pss / 1024:.0f} -> {pss / 1024:.0f} MiB "
            f"({(pss - before_pss) / count:.1f} KiB a session)",
            flush=True,
        )
        for _, writer in sessions:
            writer.close()

    asyncio.run(run())


# -- main -----------------------------------------------------------------------------------


def print_table(results: dict[str, dict[str, float]], runs: int, width: int) -> None:
    """One line per operation: each of our servers' median (one per ``--workers`` value),
    Dovecot's beside them and ours over Dovecot's, when it ran."""
    ours_names = [name for name in results if name != "dovecot"]
    header = f"{'operation (median of ' + str(runs) + ')':<{width}}"
    header += "".join(f" {name:>22}" for name in ours_names)
    if "dovecot" in results:
        header += f" {'dovecot':>10}" + "".join(f" {'/dovecot':>9}" for _ in ours_names)
    print(header)
    for operation in results[ours_names[0]]:
        times = [results[name][operation] for name in ours_names]
        line = f"{operation:<{width}}" + "".join(f" {t * 1000:>20.1f}ms" for t in times)
        if "dovecot" in results:
            theirs = results["dovecot"][operation]
            line += f" {theirs * 1000:>8.1f}ms" + "".join(f" {t / theirs:>8.2f}x" for t in times)
        print(line)


def server_name(workers: int) -> str:
    """The name a stalwart-py server goes by in the tables: its ``server.workers``."""
    return "stalwart-py" if workers == 1 else f"stalwart-py {workers} workers"


def parse_workers(value: str) -> list[int]:
    """``--workers 1,2``: the ``server.workers`` values to measure, one server each."""
    try:
        counts = [int(part) for part in value.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected counts like 1,2, got {value!r}")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-dovecot", action="store_true")
    parser.add_argument("--idle-sessions", type=int, default=0)
    parser.add_argument(
        "--workers",
        type=parse_workers,
        default=[1],
        help="server.workers values to measure, comma-separated (e.g. 1,2): one server each",
    )
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    peers: list[tuple[str, Any]] = [
        (server_name(w), functools.partial(ours, workers=w)) for w in args.workers
    ]
    peers += [] if args.no_dovecot else [("dovecot", dovecot)]

    if args.idle_sessions:
        users = [f"idle{n}@bench.test" for n in range(100)]
        accounts = {user: [make_message(n) for n in range(100)] for user in users}
        for name, start in peers:
            with tempfile.TemporaryDirectory() as tmp, start(Path(tmp), accounts) as (port, pid):
                idle_memory(name, port, pid, args.idle_sessions, users)
        return

    print(f"generating {args.messages} messages ...", flush=True)
    messages = [make_message(n) for n in range(args.messages)]
    size = sum(map(len, messages))
    print(f"{size / 1e6:.1f} MB, {sum(b'multipart' in m for m in messages)} multipart")
    results: dict[str, dict[str, float]] = {}
    for name, start in peers:
        with tempfile.TemporaryDirectory() as tmp:
            print(f"loading {name} ...", flush=True)
            with start(Path(tmp), {USER: messages}) as (port, _pid):
                print(f"measuring {name} ...", flush=True)
                results[name] = run_operations(port, args.runs, name)
    print()
    print_table(results, args.runs, width=36)
    if "dovecot" in REPLIES:
        # ARRIVAL orders by INTERNALDATE, which the two servers set differently (our append
        # time, Dovecot's file time), so only the others are expected to match.
        print()
        for _, command in SORT_COMMANDS:
            size = len(REPLIES["dovecot"][command])
            for name in (server_name(w) for w in args.workers):
                same = REPLIES[name][command] == REPLIES["dovecot"][command]
                print(
                    f"{command:<36} {name}: reply {'identical to' if same else 'DIFFERS from'}"
                    f" Dovecot's ({size} octets)"
                )


if __name__ == "__main__":
    main()
