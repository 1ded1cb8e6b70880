"""Sender-authentication checks per message: DKIM, ARC, DMARC and iprev through the one
resolver (a loopback zone server, warm cache), beside dkimpy alone on the same messages.

    .venv/bin/python bench/inbound_verify.py [--count 300]

* ``dkim rsa-2048`` / ``dkim ed25519`` / ``dkim both``: ``verify_dkim`` on a 10 KB message
  signed once or twice; ``dkimpy alone``: ``dkim.verify`` with its key answered from a dict
  (what the library costs without our prefetch and checks);
* ``arc (1 set)``: ``verify_arc`` on a list-sealed 10 KB message; ``arc (unsealed)`` on one
  without ARC fields (most mail: answered from a scan of the header block);
* ``dmarc`` and ``iprev``: answered from the resolver's cache;
* ``1 MB inline`` / ``1 MB thread``: a 1 MB message verified on the event loop or in a worker
  thread, with the longest stall a 1 ms ticker on the loop saw meanwhile.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dkim  # noqa: E402

from stalwart_py.inbound import dkim as inbound_dkim  # noqa: E402
from stalwart_py.inbound.arc import verify_arc  # noqa: E402
from stalwart_py.inbound.dkim import DkimResult, verify_dkim  # noqa: E402
from stalwart_py.inbound.dmarc import verify_dmarc  # noqa: E402
from stalwart_py.inbound.iprev import verify_iprev  # noqa: E402
from stalwart_py.inbound.spf import SpfResult  # noqa: E402
from tests.integration.test_inbound_arc import seal  # noqa: E402
from tests.support.auth_world import auth_world, ed25519_key, message, rsa_key  # noqa: E402

BODY = b"The quick brown fox jumps over the lazy dog, again and again.\r\n" * 160  # ~10 KB


async def timed(count: int, call: Callable[[], Awaitable[object]]) -> float:
    """Median milliseconds per call over ``count`` calls, in 5 batches."""
    await call()  # warm the cache
    batches = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(max(1, count // 5)):
            await call()
        batches.append((time.perf_counter() - start) / max(1, count // 5) * 1000)
    return statistics.median(batches)


async def stall_while(call: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """(ms the call took, the longest ms a 1 ms ticker on the loop waited meanwhile)."""
    longest = 0.0
    done = False

    async def ticker() -> None:
        nonlocal longest
        while not done:
            before = time.perf_counter()
            await anyio.sleep(0.001)
            longest = max(longest, (time.perf_counter() - before) * 1000)

    async with anyio.create_task_group() as group:
        group.start_soon(ticker)
        await anyio.sleep(0.01)
        start = time.perf_counter()
        await call()
        took = (time.perf_counter() - start) * 1000
        done = True
    return took, longest


async def main(count: int) -> None:
    rsa, ed = rsa_key(2048), ed25519_key()
    async with auth_world() as world:
        world.publish_key(rsa, "example.test", "rsa1")
        world.publish_key(ed, "example.test", "ed1")
        world.publish_key(rsa, "lists.example.org", "arc1")
        world.publish("_dmarc.example.test", "TXT", "v=DMARC1; p=reject")
        world.publish("25.2.0.192.in-addr.arpa", "PTR", "mx.example.test.")
        world.publish("mx.example.test", "A", "192.0.2.25")
        plain = message(body=BODY)
        by_rsa = rsa.sign(plain, "example.test", "rsa1")
        by_ed = ed.sign(plain, "example.test", "ed1")
        both = ed.sign(by_rsa, "example.test", "ed1")
        sealed = seal(by_rsa, rsa, "lists.example.org", "arc1", "dkim=pass header.d=example.test")
        records = {b"rsa1._domainkey.example.test.": rsa.record.encode()}
        spf = SpfResult("pass", "example.test", "mailfrom")
        passed = [DkimResult("pass", "example.test", "rsa1", "rsa-sha256", "x" * 12, "")]
        resolver = world.resolver

        async def dkimpy_alone() -> None:
            assert dkim.verify(by_rsa, dnsfunc=lambda name, timeout=5: records[name])

        rows = [
            ("dkim rsa-2048", await timed(count, lambda: verify_dkim(resolver, by_rsa))),
            ("dkim ed25519", await timed(count, lambda: verify_dkim(resolver, by_ed))),
            ("dkim both", await timed(count, lambda: verify_dkim(resolver, both))),
            ("dkimpy alone, rsa-2048", await timed(count, dkimpy_alone)),
            ("arc (1 set)", await timed(count, lambda: verify_arc(resolver, sealed))),
            ("arc (unsealed: none)", await timed(count, lambda: verify_arc(resolver, by_rsa))),
            (
                "dmarc",
                await timed(count, lambda: verify_dmarc(resolver, "example.test", spf, passed)),
            ),
            ("iprev", await timed(count, lambda: verify_iprev(resolver, "192.0.2.25"))),
        ]
        print(f"{'check (10 KB message)':28} {'ms/message':>10}")
        for name, ms in rows:
            print(f"{name:28} {ms:10.3f}")
        big = rsa.sign(message(body=BODY * 100), "example.test", "rsa1")  # ~1 MB
        for label, threshold in (("1 MB inline", len(big) + 1), ("1 MB thread", 0)):
            inbound_dkim.THREAD_THRESHOLD = threshold
            took, stall = await stall_while(lambda: verify_dkim(resolver, big))
            print(f"{label:28} {took:10.1f}   longest loop stall {stall:.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    anyio.run(main, parser.parse_args().count)
