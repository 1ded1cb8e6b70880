"""Start-up time and idle memory: ``stalwart-py serve`` on the shipped local configuration
(every listener, on free ports) side by side with the floor of any Python server: a bare
asyncio program that binds the same number of sockets and does nothing else.

    .venv/bin/python bench/startup.py [--runs 5]

Two starts of ours are timed, both from a fresh clone of this repository (``git clone`` of
HEAD into a temporary directory, imported ahead of the installed copy):

* cold: no bytecode at all (the clone has no ``__pycache__`` and PYTHONDONTWRITEBYTECODE
  keeps it so), as on a fresh machine with an editable install;
* warm: after one start wrote the bytecode.

Both with the server's default ``server.workers`` (one worker per CPU: the setting is taken
out of local.toml, which asks for one process; the row says how many served); a warm start
with ``server.workers = 1`` (one process, no supervisor) is timed too, or, when the default
is 1, one with 2 workers, to show what the supervisor and its forks cost.

Time is from spawning the process to "all listeners bound and accepting" (stalwart-py's
``ready`` event on --notify-fd, which the supervisor sends when every worker is ready; the
peer prints a line when it has bound). CPU and RSS are summed over the server's processes,
read from /proc once each is ready and idle (summed RSS counts the pages a fork shares once
per process, so it overstates the memory of several workers). Goals (issue 21): cold under
1.0 s, warm under 0.5 s.
"""

from __future__ import annotations

import argparse
import os
import re
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ROOT / "config" / "local.toml"

PEER = r"""
import asyncio, socket, sys
async def main(count):
    servers = [await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0) for _ in range(count)]
    print("ready", flush=True)
    await asyncio.Event().wait()
asyncio.run(main(int(sys.argv[1])))
"""


def processes(pid: int) -> list[int]:
    """``pid`` and its children (a supervisor's workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *map(int, children)]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process and its children so far: on a shared, loaded
    machine the wall time of a start stretches with the load, its CPU time much less."""
    total = 0
    for each in processes(pid):
        fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    total = 0
    for each in processes(pid):
        status = Path(f"/proc/{each}/status").read_text()
        total += int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))
    return total


def local_config(directory: Path, workers: int | None = None) -> tuple[Path, int]:
    """The shipped local configuration, with every port 0, the data in ``directory`` and
    ``server.workers`` when given (else the server's default, whatever local.toml says)."""
    text = LOCAL.read_text()
    text = re.sub(r'"127\.0\.0\.1:\d+"', '"127.0.0.1:0"', text)
    text = re.sub(r'data-dir = "[^"]*"', f'data-dir = "{directory / "var"}"', text)
    # local.toml asks for one process (make run); the bench measures the server's default
    # (one worker per CPU) unless told otherwise.
    text = re.sub(r"^\s*workers\s*=.*$", "", text, flags=re.MULTILINE)
    if workers is not None:
        text = text.replace("[server]\n", f"[server]\nworkers = {workers}\n", 1)
    path = directory / ("local.toml" if workers is None else f"local-{workers}.toml")
    path.write_text(text)
    headers = re.findall(r"^\[server\.listener\.[^.\]]+\]", text, re.MULTILINE)
    return path, len(headers)


Sample = tuple[float, int, float, int]  # seconds to ready, RSS KiB, CPU seconds, processes


def time_ours(config: Path, clone: Path, *, cold: bool) -> Sample:
    """One start of the clone's server; ``cold`` runs without bytecode (none is written)."""
    env = {**os.environ, "PYTHONPATH": str(clone)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if cold:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    read_fd, write_fd = os.pipe()
    started = time.perf_counter()
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
            "--log-level",
            "warning",
        ],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=clone,
        env=env,
    )
    os.close(write_fd)
    try:
        buffer = b""
        while b'"event": "ready"' not in buffer:
            ready, _, _ = select.select([read_fd], [], [], 60)
            chunk = os.read(read_fd, 65536) if ready else b""
            if not chunk:
                raise RuntimeError("stalwart-py did not become ready")
            buffer += chunk
        elapsed = time.perf_counter() - started
        served = len(processes(process.pid))
        workers = served - 1 if served > 1 else 1  # a supervisor does not serve
        return elapsed, rss_kib(process.pid), cpu_seconds(process.pid), workers
    finally:
        process.terminate()
        process.wait(30)
        os.close(read_fd)


def fresh_clone(directory: Path, revision: str = "HEAD") -> Path:
    """``revision`` of this repository, cloned without bytecode; asserts that it is what
    imports."""
    clone = directory / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(ROOT), str(clone)], check=True)
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", revision], capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", commit], check=True)
    assert not list(clone.rglob("__pycache__"))
    where = subprocess.run(
        [sys.executable, "-B", "-c", "import stalwart_py, protocols; print(stalwart_py.__file__)"],
        env={**os.environ, "PYTHONPATH": str(clone)},
        cwd=clone,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert where.startswith(str(clone)), f"the clone is not what imports: {where}"
    return clone


def time_peer(count: int) -> Sample:
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", PEER, str(count)], stdout=subprocess.PIPE)
    try:
        assert process.stdout.readline().strip() == b"ready"
        elapsed = time.perf_counter() - started
        return elapsed, rss_kib(process.pid), cpu_seconds(process.pid), 1
    finally:
        process.terminate()
        process.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rev", default="HEAD", help="the commit to measure (default: HEAD)")
    args = parser.parse_args()
    cold, warm, other, peer = [], [], [], []
    with tempfile.TemporaryDirectory() as directory:
        config, listeners = local_config(Path(directory))
        clone = fresh_clone(Path(directory), args.rev)
        time_ours(config, clone, cold=True)  # the first start makes the data directory
        for _ in range(args.runs):
            cold.append(time_ours(config, clone, cold=True))
        assert not list(clone.rglob("__pycache__")), "a cold start wrote bytecode"
        time_ours(config, clone, cold=False)  # writes the bytecode
        default_workers = cold[0][3]
        other_config, _ = local_config(Path(directory), 2 if default_workers == 1 else 1)
        for _ in range(args.runs):
            warm.append(time_ours(config, clone, cold=False))
            other.append(time_ours(other_config, clone, cold=False))
            peer.append(time_peer(listeners))
    rows = [
        (f"cold, workers {default_workers}", cold, 1.0),
        (f"warm, workers {default_workers}", warm, 0.5),
        (f"warm, workers {other[0][3]}", other, None),
        ("bare asyncio", peer, None),
    ]
    peer_time = statistics.median(s[0] for s in peer)
    peer_rss = statistics.median(s[1] for s in peer)
    print(
        f"{args.rev}: {listeners} listeners from config/local.toml (server.workers unset: "
        f"{default_workers}), median of {args.runs} runs"
    )
    for name, samples, goal in rows:
        elapsed = statistics.median(s[0] for s in samples)
        rss = statistics.median(s[1] for s in samples)
        cpu = statistics.median(s[2] for s in samples)
        verdict = (
            ""
            if goal is None
            else f"  goal < {goal:.1f} s: {'met' if elapsed < goal else 'MISSED'}"
        )
        print(
            f"  {name:<17} ready in {elapsed * 1000:6.0f} ms ({elapsed / peer_time:5.2f}x), "
            f"CPU {cpu * 1000:5.0f} ms, idle RSS {rss / 1024:5.1f} MiB ({rss / peer_rss:4.2f}x)"
            f"{verdict}"
        )
    print(f"  load average while measuring: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
