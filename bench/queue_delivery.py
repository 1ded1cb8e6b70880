"""Outbound queue throughput: N messages to one domain through a loopback aiosmtpd peer.

Prints messages per second for pipelined delivery over reused connections (indicative: the
peer is Python too, on the same cores).
Run: .venv/bin/python bench/queue_delivery.py [N]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import anyio
import trustme

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' support modules
from tests.support.queue_world import make_world, running


async def main(count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with make_world(Path(tmp), trustme.CA()) as world:
            peer = await world.peer("127.0.0.1")
            world.dns.add("remote.test", "A", "127.0.0.1")
            for index in range(count):
                await world.enqueue(f"user{index}@remote.test")
            manager = world.manager(port=peer.port)
            async with running(manager):
                start = time.perf_counter()
                await manager.flush()
                elapsed = time.perf_counter() - start
            assert len(peer.received) == count, len(peer.received)
            print(
                f"{count} messages in {elapsed:.2f}s: {count / elapsed:.0f} msg/s "
                f"over {peer.connections} connection(s)"
            )


if __name__ == "__main__":
    anyio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
