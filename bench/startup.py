"""Start-up time and idle memory: ``stalwart-py serve`` on the shipped local configuration
(every listener, on free ports) side by side with the floor of any Python server: a bare
asyncio program that binds the same number of sockets and does nothing else.

    .venv/bin/python bench/startup.py [--runs 5]

Time is from spawning the process to "all listeners bound" (stalwart-py's ``ready`` event on
--notify-fd; the peer prints a line when it has bound). RSS is read from /proc once each is
ready and idle.
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


def time_ours(config: Path) -> tuple[float, int]:
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
        cwd=ROOT,
    )
    os.close(write_fd)
    try:
        buffer = b""
        while b'"event": "ready"' not in buffer:
            ready, _, _ = select.select([read_fd], [], [], 30)
            chunk = os.read(read_fd, 65536) if ready else b""
            if not chunk:
                raise RuntimeError("stalwart-py did not become ready")
            buffer += chunk
        elapsed = time.perf_counter() - started
        return elapsed, rss_kib(process.pid)
    finally:
        process.terminate()
        process.wait(30)
        os.close(read_fd)


def time_peer(count: int) -> tuple[float, int]:
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", PEER, str(count)], stdout=subprocess.PIPE)
    try:
        assert process.stdout.readline().strip() == b"ready"
        return time.perf_counter() - started, rss_kib(process.pid)
    finally:
        process.terminate()
        process.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    ours, peer = [], []
    with tempfile.TemporaryDirectory() as directory:
        config, listeners = local_config(Path(directory))
        for _ in range(args.runs):
            ours.append(time_ours(config))
            peer.append(time_peer(listeners))
    ours_time = statistics.median(t for t, _ in ours)
    peer_time = statistics.median(t for t, _ in peer)
    ours_rss = statistics.median(r for _, r in ours)
    peer_rss = statistics.median(r for _, r in peer)
    print(f"{listeners} listeners from config/local.toml, median of {args.runs} runs")
    for name, elapsed, rss in (
        ("stalwart-py serve", ours_time, ours_rss),
        ("bare asyncio", peer_time, peer_rss),
    ):
        print(f"  {name:<18}  ready in {elapsed * 1000:7.1f} ms   idle RSS {rss / 1024:6.1f} MiB")
    print(
        f"  ratio stalwart-py / bare asyncio: time {ours_time / peer_time:.2f}, "
        f"memory {ours_rss / peer_rss:.2f}"
    )


if __name__ == "__main__":
    main()
