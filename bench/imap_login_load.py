"""IMAP logins under load: stalwart-py beside Dovecot, clients that log in all the time.

    .venv/bin/python bench/imap_login_load.py [--seconds 15] [--clients 10 50] [--no-dovecot]
                                              [--workers 1,2]

What phones and webmail do all day: each of N clients loops connect, ``LOGIN``, ``SELECT
INBOX``, ``FETCH 1:10 (FLAGS ENVELOPE)``, ``LOGOUT`` for ``--seconds``, each client as its
own account (20 messages in its INBOX). Printed for each server and N: commands per second
(the four commands of a round), the median and p99 latency of LOGIN, the refused logins
(none is expected), ours over Dovecot's, and the resident memory of our process (its peak,
sampled through the run, summed over the supervisor and its workers) at the largest N.
``--workers 1,2`` runs one stalwart-py server per ``server.workers`` value.

The servers are the launchers of ``bench/imap_bench.py``: stalwart-py with scrypt passwords
as the CLI makes them (its defaults: the hash pool, the authentication cache; the per-address
connection limit raised, as every client comes from 127.0.0.1); Dovecot (Debian's
dovecot-imapd) with a passwd-file passdb of ``{SHA512-CRYPT}`` hashes and its default
authentication settings (``auth_cache_size = 0``: no cache). Each server is started once and
runs the values of N in turn.

Goal (issue 14): ours >= Dovecot at both N, and our RSS under 150 MB at 50 clients. The
clients run in worker processes on the same machine, so the figures are indicative.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import re
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from imap_bench import (  # noqa: E402
    PASSWORD,
    dovecot,
    make_message,
    memory_of,
    ours,
    parse_workers,
    server_name,
)

MESSAGES = 20  # per account; FETCH 1:10 needs at least 10
COMMANDS_PER_ROUND = 4  # LOGIN, SELECT, FETCH, LOGOUT
WORKERS = 2  # client processes: one Python process alone could not keep up with Dovecot
_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")

# Every client from 127.0.0.1: more connections per address than the default 50.
OURS_EXTRA = """
[server.listener.imap.peer."127.0.0.0/8"]
max-connections-per-ip = 10000
"""


# -- the clients (in worker processes) ------------------------------------------------------


class Refused(Exception):
    """A command answered otherwise than OK."""


async def _response(reader: asyncio.StreamReader, tag: bytes) -> bytes:
    """Read up to the tagged line (literals read through); the tagged line."""
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        while (match := _LITERAL.search(line)) is not None:
            await reader.readexactly(int(match.group(1)))
            line = await reader.readline()
        if line.startswith(tag + b" "):
            return line


async def _command(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tag: bytes, text: bytes
) -> None:
    writer.write(tag + b" " + text + b"\r\n")
    line = await _response(reader, tag)
    if not line.startswith(tag + b" OK"):
        raise Refused(line.decode(errors="replace").strip())


async def _client(port: int, user: str, until: float, stats: dict) -> None:
    login = f'a LOGIN "{user}" "{PASSWORD}"\r\n'.encode()
    while time.monotonic() < until:
        writer = None
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await reader.readline()  # the greeting
            started = time.perf_counter()
            writer.write(login)
            line = await _response(reader, b"a")
            stats["logins"].append(time.perf_counter() - started)
            if not line.startswith(b"a OK"):
                raise Refused(line.decode(errors="replace").strip())
            await _command(reader, writer, b"b", b"SELECT INBOX")
            await _command(reader, writer, b"c", b"FETCH 1:10 (FLAGS ENVELOPE)")
            await _command(reader, writer, b"d", b"LOGOUT")
            stats["commands"] += COMMANDS_PER_ROUND
        except (Refused, OSError, ConnectionError, asyncio.IncompleteReadError) as error:
            stats["errors"] += 1
            stats["last_error"] = str(error)[:200]
        finally:
            if writer is not None:
                writer.close()
                with contextlib.suppress(OSError, ConnectionError):
                    await writer.wait_closed()


def _worker(port: int, users: list[str], until: float) -> dict:
    """One client process: the clients of ``users`` until ``until`` (time.monotonic, which
    is system-wide on Linux)."""
    stats: dict = {"commands": 0, "logins": [], "errors": 0, "last_error": ""}

    async def run() -> None:
        await asyncio.gather(*(_client(port, user, until, stats) for user in users))

    asyncio.run(run())
    return stats


def load(port: int, pid: int, users: list[str], seconds: float) -> dict:
    """Run the clients of ``users`` for ``seconds``; totals, and the peak RSS of ``pid``
    and its children (KiB) sampled meanwhile."""
    workers = min(WORKERS, len(users))
    shares = [users[n::workers] for n in range(workers)]
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.25):
            peak[0] = max(peak[0], memory_of(pid)[0])

    sampler = threading.Thread(target=sample, daemon=True)
    with concurrent.futures.ProcessPoolExecutor(workers) as pool:
        list(pool.map(abs, range(workers)))  # the processes started before the clock runs
        until = time.monotonic() + seconds
        started = time.perf_counter()
        sampler.start()
        results = list(pool.map(_worker, [port] * workers, shares, [until] * workers))
        elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    logins = sorted(t for result in results for t in result["logins"])
    return {
        "commands_per_second": sum(r["commands"] for r in results) / elapsed,
        "login_p50": statistics.median(logins) if logins else float("nan"),
        "login_p99": logins[min(len(logins) - 1, int(len(logins) * 0.99))] if logins else 0.0,
        "errors": sum(r["errors"] for r in results),
        "last_error": next((r["last_error"] for r in results if r["last_error"]), ""),
        "peak_rss_kib": max(peak[0], memory_of(pid)[0]),
    }


# -- main -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--no-dovecot", action="store_true")
    parser.add_argument(
        "--workers",
        type=parse_workers,
        default=[1],
        help="server.workers values to measure, comma-separated (e.g. 1,2): one server each",
    )
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    most = max(args.clients)
    users = [f"load{n}@bench.test" for n in range(most)]
    messages = [make_message(n) for n in range(MESSAGES)]
    accounts = {user: messages for user in users}
    peers = [
        (
            server_name(w),
            lambda tmp, w=w: ours(
                tmp, accounts, cheap_passwords=False, extra=OURS_EXTRA, workers=w
            ),
        )
        for w in args.workers
    ]
    if not args.no_dovecot:
        peers.append(
            ("dovecot", lambda tmp: dovecot(tmp, accounts, password_scheme="SHA512-CRYPT"))
        )
    results: dict[str, dict[int, dict]] = {}
    for name, start in peers:
        with tempfile.TemporaryDirectory() as tmp:
            print(f"starting {name} ({most} accounts) ...", flush=True)
            with start(Path(tmp)) as (port, pid):
                for clients in args.clients:
                    print(f"  {clients} clients for {args.seconds:g}s ...", flush=True)
                    result = load(port, pid, users[:clients], args.seconds)
                    results.setdefault(name, {})[clients] = result
                    if result["errors"]:
                        print(f"  {result['errors']} errors, e.g. {result['last_error']}")
    print()
    print(
        f"{'server':<22} {'clients':>7} {'commands/s':>11} {'LOGIN p50':>10} "
        f"{'LOGIN p99':>10} {'errors':>7} {'peak RSS':>9}"
    )
    for name, by_clients in results.items():
        for clients, r in by_clients.items():
            print(
                f"{name:<22} {clients:>7} {r['commands_per_second']:>11.0f} "
                f"{r['login_p50'] * 1000:>8.1f}ms {r['login_p99'] * 1000:>8.1f}ms "
                f"{r['errors']:>7} {r['peak_rss_kib'] / 1024:>6.0f}MiB"
            )
    names = [server_name(w) for w in args.workers]
    if "dovecot" in results:
        print()
        for name in names:
            for clients in args.clients:
                ours_r, theirs = results[name][clients], results["dovecot"][clients]
                ratio = ours_r["commands_per_second"] / theirs["commands_per_second"]
                p99 = ours_r["login_p99"] / theirs["login_p99"] if theirs["login_p99"] else 0.0
                print(
                    f"{name}, {clients} clients: ours/dovecot commands/s {ratio:.2f}x "
                    f"(goal >= 1.00x), LOGIN p99 {p99:.2f}x"
                )
    for name in names:
        rss = results[name][most]["peak_rss_kib"] / 1024
        print(f"{name} peak RSS at {most} clients: {rss:.0f} MiB (goal < 150 MB)")


if __name__ == "__main__":
    main()
