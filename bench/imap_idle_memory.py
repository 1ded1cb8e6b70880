"""IMAP sessions in IDLE: the memory they cost stalwart-py, across its workers, beside Dovecot.

    .venv/bin/python bench/imap_idle_memory.py [--sessions 10000] [--workers 2]
        [--dovecot-sessions N] [--no-dovecot]

Opens ``--sessions`` connections to a ``stalwart-py serve`` with ``server.workers =
--workers``, each one ``LOGIN``, ``SELECT INBOX`` (100 messages; 100 accounts, the sessions
spread over them) and ``IDLE``, all held open at once; the kernel spreads the connections over
the workers. Then it reads the memory of the server's whole process tree from ``/proc``
(supervisor and workers: RSS summed over every process, as the goal counts it, and PSS, which
counts a page the forked workers share with the supervisor once) and prints it per process,
with the sessions each worker holds (its open sockets) and the cost of one session in KiB.
Dovecot (Debian's dovecot-imapd, the launcher of ``bench/imap_bench.py``: one ``imap``
process per session, as it is by default) gets the same load beside it, and the ratio is
printed. Both servers run on this machine with the clients, so the figures are indicative.

Goal (issue 17): 10,000 sessions in IDLE across 2 workers under 300 MB of RSS summed over
every process. The clients raise their own open-file limit to the hard limit; the server
raises its own at start (``stalwart-py serve``).

Measured (``--sessions 10000 --dovecot-sessions 1000``, load 6-9 on 2 cores, other work
beside): stalwart-py 118.6 -> 278.6 MiB RSS summed over supervisor and 2 workers (5097 and
4918 sessions), PSS 65.2 -> 226.7 MiB, 16.4 KiB RSS / 16.5 KiB PSS a session; Dovecot (1,008
processes for 1,000 sessions) 527.7 KiB PSS and 5.2 MiB RSS a session: ours 0.03x its PSS.
Before the reductions (a view's index shared by the sessions of one mailbox snapshot, change
watches without an asyncio event each, IDLE in one task, the greeting not kept): 395.6 MiB,
27.8 KiB a session (tracemalloc of one worker, per session: 24.1 KiB of Python objects then,
12.4 KiB now).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from imap_bench import dovecot, make_message, memory_of, open_idle_sessions, ours  # noqa: E402

ACCOUNTS = 100
MESSAGES = 100  # in each account's INBOX
SETTLE = 2.0  # seconds after the last IDLE before memory is read: the sessions' tasks park
# Every session comes from 127.0.0.1: more connections per address than the default 50.
OURS_EXTRA = """
[server.listener.imap.peer."127.0.0.0/8"]
max-connections-per-ip = 100000
"""


def family(pid: int) -> list[int]:
    """``pid`` and its children (the workers; Dovecot's services)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    members, queue = [], [pid]
    while queue:
        current = queue.pop()
        members.append(current)
        queue.extend(children.get(current, ()))
    return members


def sockets_of(pid: int) -> int:
    count = 0
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
            except OSError:
                continue
    except OSError:
        return 0
    return count


def measure(name: str, port: int, pid: int, count: int, users: list[str]) -> dict[str, float]:
    """Open ``count`` sessions in IDLE; print and return the memory before and with them."""
    before_rss, before_pss = memory_of(pid)
    result: dict[str, float] = {}

    async def run() -> None:
        started = time.perf_counter()
        sessions = await open_idle_sessions(port, count, users)
        elapsed = time.perf_counter() - started
        await asyncio.sleep(SETTLE)  # ok: the server's tasks settle before memory is read
        rss, pss = memory_of(pid)
        members = family(pid)
        print(
            f"{name}: {count} sessions in IDLE, opened in {elapsed:.1f}s; {len(members)} processes",
            flush=True,
        )
        if name == "stalwart-py":
            for member in members:
                own_rss, own_pss = memory_of_one(member)
                role = "supervisor" if member == pid else "worker"
                print(
                    f"  {role:<10} pid {member}: RSS {own_rss / 1024:6.1f} MiB, "
                    f"PSS {own_pss / 1024:6.1f} MiB, {sockets_of(member)} sockets"
                )
        print(
            f"  all: RSS {before_rss / 1024:.1f} -> {rss / 1024:.1f} MiB, "
            f"PSS {before_pss / 1024:.1f} -> {pss / 1024:.1f} MiB; a session: "
            f"{(rss - before_rss) / count:.1f} KiB RSS, {(pss - before_pss) / count:.1f} KiB PSS",
            flush=True,
        )
        result.update(rss=rss, pss=pss, rss_session=(rss - before_rss) / count)
        result["pss_session"] = (pss - before_pss) / count
        for _, writer in sessions:
            writer.close()

    asyncio.run(run())
    return result


def memory_of_one(pid: int) -> tuple[int, int]:
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--dovecot-sessions", type=int, help="sessions for Dovecot (default: --sessions)"
    )
    parser.add_argument("--no-dovecot", action="store_true")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.sessions + 256:
        sys.exit(f"the open-file hard limit ({hard}) is below {args.sessions} sessions")
    print(f"load average {os.getloadavg()[0]:.1f} at start", flush=True)
    users = [f"idle{n}@bench.test" for n in range(ACCOUNTS)]
    accounts = {user: [make_message(n) for n in range(MESSAGES)] for user in users}
    results = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        ours(Path(tmp), accounts, extra=OURS_EXTRA, workers=args.workers) as (port, pid),
    ):
        results["ours"] = measure("stalwart-py", port, pid, args.sessions, users)
    goal = "under" if results["ours"]["rss"] < 300 * 1024 else "OVER"
    print(f"goal: {args.sessions} sessions under 300 MB RSS summed: {goal}", flush=True)
    if not args.no_dovecot:
        count = args.dovecot_sessions or args.sessions
        with tempfile.TemporaryDirectory() as tmp, dovecot(Path(tmp), accounts) as (port, pid):
            results["dovecot"] = measure("dovecot", port, pid, count, users)
        for kind in ("rss", "pss"):
            ratio = results["ours"][f"{kind}_session"] / results["dovecot"][f"{kind}_session"]
            print(f"a session, {kind.upper()}: ours / Dovecot's = {ratio:.3f}x")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
