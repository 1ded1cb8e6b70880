"""Relaying with and without ``smtp.deferred-spool``: smtp-source submits N messages for a
remote domain, the queue relays them to smtp-sink (both C programs from Debian's postfix
package, so neither end is the bottleneck), and the time until the last one is delivered is
measured, with the store commits it took.

    .venv/bin/python bench/deferred_spool.py [--messages 2000] [--size 4096] [--sessions 16]

Indicative only: the server shares the machine's cores with both C programs.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stalwart_py.plugin import discover_protocols  # noqa: E402
from tests.support.mail_peers import smtp_sink  # noqa: E402
from tests.support.servers import InProcessServer, free_port, write_config  # noqa: E402


def config_text(sink_port: int, spool: bool) -> str:
    return f"""
[server]
hostname = "mail.example.test"
shutdown-timeout = "1s"

[server.listener.mx]
bind = "127.0.0.1:0"
protocol = "smtp"
smtp.deferred-spool = {"true" if spool else "false"}

[queue]
max-connections-per-destination = 8

[queue.route."remote.test"]
host = "127.0.0.1"
port = {sink_port}
tls = "none"
"""


def run(spool: bool, args: argparse.Namespace) -> float:
    sink_port = free_port()
    with smtp_sink(sink_port) as sink, tempfile.TemporaryDirectory() as tmp:
        path = write_config(Path(tmp), config_text(sink_port, spool))
        with InProcessServer(path, discover_protocols()) as server:
            host, port = server.address("mx")
            metrics = server.context.metrics.registry
            engine = server.context.store._engine
            commits = engine.batches
            start = time.perf_counter()
            subprocess.run(
                [
                    "smtp-source",
                    *("-s", str(args.sessions), "-m", str(args.messages)),
                    *("-l", str(args.size), "-f", "a@sender.test", "-t", "b@remote.test"),
                    f"{host}:{port}",
                ],
                check=True,
            )
            accepted = time.perf_counter() - start

            def delivered() -> float:
                sample = metrics.get_sample_value(
                    "stalwart_queue_attempts_total", {"result": "delivered"}
                )
                return sample or 0.0

            deadline = time.monotonic() + 600
            while delivered() < args.messages:
                if time.monotonic() > deadline or sink.poll() is not None:
                    sys.exit(f"only {delivered():.0f} of {args.messages} delivered")
                time.sleep(0.01)  # ok: polling a counter from outside the server's loop
            done = time.perf_counter() - start
            commits = engine.batches - commits
    print(
        f"deferred-spool={'on ' if spool else 'off'}: {args.messages} messages accepted in"
        f" {accepted:.2f}s, all delivered in {done:.2f}s ({args.messages / done:.0f} msg/s),"
        f" {commits} store commits"
    )
    return args.messages / done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--sessions", type=int, default=16)
    args = parser.parse_args()
    for tool in ("smtp-source", "smtp-sink"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (apt-get install postfix)")
    durable, spooled = (run(spool, args) for spool in (False, True))
    print(f"ratio deferred-spool on / off: {spooled / durable:.2f}")


if __name__ == "__main__":
    main()
