"""Outbound queue throughput: N queued messages delivered to one destination, side by side
with Postfix's ``smtp-source`` sending the same messages to the same receiver.

The receiver is ``smtp-sink`` and the peer client ``smtp-source`` (both C programs from
Debian's postfix package): the peer shows what the receiver takes from a client that does
nothing but send, over as many connections as the queue opens, each reused for every message
(``-d``). The queue reads each message from the store, delivers it over reused connections and
records every outcome durably. Printed: each rate and ours over the peer's.

    .venv/bin/python bench/queue_delivery.py [--messages 2000] [--size 4096]

Indicative: everything shares the machine's cores.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import trustme

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' support modules
from tests.support.mail_peers import smtp_sink
from tests.support.queue_world import make_world, running
from tests.support.servers import free_port

CONNECTIONS = 8  # the queue's max-connections-per-destination, and the peer's sessions


def message(index: int, size: int) -> bytes:
    head = (
        f"From: <alice@example.test>\r\nTo: <user{index}@remote.test>\r\n"
        f"Subject: message {index}\r\nMessage-ID: <{index}@example.test>\r\n\r\n"
    ).encode()
    line = b"x" * 76 + b"\r\n"
    return head + line * max(1, (size - len(head)) // len(line))


async def queue_rate(count: int, size: int, sink_port: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        async with make_world(Path(tmp), trustme.CA()) as world:
            world.dns.add("remote.test", "A", "127.0.0.1")
            for index in range(count):
                await world.enqueue(f"user{index}@remote.test", data=message(index, size))
            manager = world.manager(port=sink_port, max_connections_per_destination=CONNECTIONS)
            async with running(manager):
                start = time.perf_counter()
                while await world.store.queue_entries(limit=1):  # a scan takes 1,000 at most
                    await manager.flush()
                elapsed = time.perf_counter() - start
    return count / elapsed


def peer_rate(count: int, size: int, sink_port: int) -> float:
    start = time.perf_counter()
    subprocess.run(
        [
            "smtp-source",
            *("-d", "-s", str(CONNECTIONS), "-m", str(count), "-l", str(size)),
            *("-f", "alice@example.test", "-t", "user@remote.test"),
            f"127.0.0.1:{sink_port}",
        ],
        check=True,
    )
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=4096)
    args = parser.parse_args()
    for tool in ("smtp-source", "smtp-sink"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (apt-get install postfix)")
    port = free_port()
    with smtp_sink(port):
        ours = anyio.run(queue_rate, args.messages, args.size, port)
        peer = peer_rate(args.messages, args.size, port)
    print(f"{args.messages} messages of {args.size} bytes, {CONNECTIONS} connections")
    print(f"  stalwart-py queue (from the store)   {ours:7.0f} msg/s")
    print(f"  smtp-source (sending only)           {peer:7.0f} msg/s")
    print(f"  ratio stalwart-py / smtp-source: {ours / peer:.2f}")


if __name__ == "__main__":
    main()
