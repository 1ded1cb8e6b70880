"""Start-up time and idle memory: ``stalwart-py serve`` on the shipped local configuration
(every listener, on free ports) side by side with the floor of any Python server: a bare
asyncio program that binds the same number of sockets and does nothing else.

    .venv/bin/python bench/startup.py [--runs 5]

Two starts of ours are timed, both from a fresh clone of this repository (``git clone`` of
HEAD into a temporary directory, imported ahead of the installed copy):

* cold: no bytecode at all (the clone has no ``__pycache__`` and PYTHONDONTWRITEBYTECODE
  keeps it so), as on a fresh machine with an editable install;
* warm: after one start wrote the bytecode.

Time is from spawning the process to "all listeners bound and accepting" (stalwart-py's
``ready`` event on --notify-fd; the peer prints a line when it has bound). RSS is read from
/proc once each is ready and idle. Goals (issue 21): cold under 1.0 s, warm under 0.5 s.
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


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far: on a shared, loaded machine the wall
    time of a start stretches with the load, its CPU time much less."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))


def local_config(directory: Path) -> tuple[Path, int]:
    """The shipped local configuration, with every port 0 and the data in ``directory``."""
    text = LOCAL.read_text()
    text = re.sub(r'"127\.0\.0\.1:\d+"', '"127.0.0.1:0"', text)
    text = re.sub(r'data-dir = "[^"]*"', f'data-dir = "{directory / "var"}"', text)
    path = directory / "local.toml"
    path.write_text(text)
    headers = re.findall(r"^\[server\.listener\.[^.\]]+\]", text, re.MULTILINE)
    return path, len(headers)


def time_ours(config: Path, clone: Path, *, cold: bool) -> tuple[float, int, float]:
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
        return elapsed, rss_kib(process.pid), cpu_seconds(process.pid)
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


def time_peer(count: int) -> tuple[float, int, float]:
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", PEER, str(count)], stdout=subprocess.PIPE)
    try:
        assert process.stdout.readline().strip() == b"ready"
        return time.perf_counter() - started, rss_kib(process.pid), cpu_seconds(process.pid)
    finally:
        process.terminate()
        process.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rev", default="HEAD", help="the commit to measure (default: HEAD)")
    args = parser.parse_args()
    cold, warm, peer = [], [], []
    with tempfile.TemporaryDirectory() as directory:
        config, listeners = local_config(Path(directory))
        clone = fresh_clone(Path(directory), args.rev)
        time_ours(config, clone, cold=True)  # the first start makes the data directory
        for _ in range(args.runs):
            cold.append(time_ours(config, clone, cold=True))
        assert not list(clone.rglob("__pycache__")), "a cold start wrote bytecode"
        time_ours(config, clone, cold=False)  # writes the bytecode
        for _ in range(args.runs):
            warm.append(time_ours(config, clone, cold=False))
            peer.append(time_peer(listeners))
    rows = [
        ("stalwart-py cold", cold, 1.0),
        ("stalwart-py warm", warm, 0.5),
        ("bare asyncio", peer, None),
    ]
    peer_time = statistics.median(t for t, _, _ in peer)
    peer_rss = statistics.median(r for _, r, _ in peer)
    print(f"{args.rev}: {listeners} listeners from config/local.toml, median of {args.runs} runs")
    for name, samples, goal in rows:
        elapsed = statistics.median(t for t, _, _ in samples)
        rss = statistics.median(r for _, r, _ in samples)
        cpu = statistics.median(c for _, _, c in samples)
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
