"""SPF per message: ``verify_spf`` (MAIL FROM and HELO) through the one resolver against a
loopback zone server, warm (the resolver's cache holds every answer, as for the second message
from a sender) beside cold (a fresh resolver per message: every lookup goes to the server).

    .venv/bin/python bench/spf_check.py [--count 2000]

The sender's record is shaped like a large provider's: two levels of include with IPv4 and
IPv6 netblocks, an mx and an a mechanism, and the client in the last netblock (the longest
walk); the HELO name has ``a -all``.
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

from stalwart_py.inbound.spf import verify_spf  # noqa: E402
from stalwart_py.resolver import Resolver  # noqa: E402
from tests.support.mail_peers import ZoneServer, txt_text  # noqa: E402

CLIENT = "198.51.100.77"


def zone() -> ZoneServer:
    server = ZoneServer()
    server.add(
        "sender.test",
        "TXT",
        txt_text("v=spf1 mx a:relay.sender.test include:_spf.provider.test ~all"),
    )
    server.add("sender.test", "MX", "10 mx1.sender.test.")
    server.add("sender.test", "MX", "20 mx2.sender.test.")
    server.add("mx1.sender.test", "A", "192.0.2.10")
    server.add("mx2.sender.test", "A", "192.0.2.11")
    server.add("relay.sender.test", "A", "192.0.2.12")
    server.add(
        "_spf.provider.test",
        "TXT",
        txt_text("v=spf1 include:_nb1.provider.test include:_nb2.provider.test ~all"),
    )
    blocks = " ".join(f"ip4:203.0.{n}.0/24 ip6:2001:db8:{n:x}::/48" for n in range(20))
    server.add("_nb1.provider.test", "TXT", txt_text(f"v=spf1 {blocks} ~all"))
    server.add("_nb2.provider.test", "TXT", txt_text(f"v=spf1 {blocks} ip4:198.51.100.0/24 ~all"))
    server.add("mail.sender.test", "TXT", txt_text("v=spf1 a -all"))
    server.add("mail.sender.test", "A", CLIENT)
    return server


async def timed(count: int, call: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """Median (wall, CPU) microseconds per call, in 5 batches: on a loaded machine the CPU
    time of this process says more than the wall time."""
    await call()
    batches = []
    for _ in range(5):
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(max(1, count // 5)):
            await call()
        calls = max(1, count // 5)
        wall = (time.perf_counter() - start) / calls * 1e6
        batches.append((wall, (time.process_time() - cpu) / calls * 1e6))
    return statistics.median(b[0] for b in batches), statistics.median(b[1] for b in batches)


async def main(count: int) -> None:
    server = zone()
    await server.start()
    nameservers = [("127.0.0.1", server.port)]
    warm_resolver = Resolver(nameservers)

    async def warm() -> object:
        mail, helo = await verify_spf(
            warm_resolver, CLIENT, "alice@sender.test", "mail.sender.test", "mx.receiver.test"
        )
        assert (mail.result, helo.result) == ("pass", "pass"), (mail, helo)
        return mail

    async def cold() -> object:
        mail, _ = await verify_spf(
            Resolver(nameservers), CLIENT, "alice@sender.test", "mail.sender.test", "r.test"
        )
        return mail

    try:
        warm_us = await timed(count, warm)
        cold_us = await timed(max(50, count // 20), cold)
    finally:
        server.close()
    print(f"{'verify_spf (MAIL FROM + HELO)':34} {'wall us':>10} {'cpu us':>10}")
    print(f"{'warm (cached)':34} {warm_us[0]:10.1f} {warm_us[1]:10.1f}")
    print(f"{'cold (8 lookups to loopback DNS)':34} {cold_us[0]:10.1f} {cold_us[1]:10.1f}")
    print(f"warm/cold wall: {warm_us[0] / cold_us[0]:.3f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    anyio.run(main, parser.parse_args().count)
