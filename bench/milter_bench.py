"""The cost of a milter: SMTP intake through OpenDKIM (signing, over the milter protocol)
beside the same server without a filter, in one run, and the milter round trip alone.

    .venv/bin/python bench/milter_bench.py [--messages 500] [--size 10240] [--clients 8]
                                           [--rounds 3]

OpenDKIM (Debian's ``opendkim``) runs on loopback, signing mail from example.test with an RSA
2048 key, so each message costs it one RSA signature; the filtered server sends each message
through it (a connection, option negotiation, connect/HELO/MAIL/RCPT/DATA, the header, the
body, end of message, the signature inserted). Both servers are ``stalwart-py serve`` child
processes; the load client runs in its own process; the best round of each is reported.

Then ``--messages`` conversations alone, one after another, from this process (no SMTP, no
store): the latency of one milter round trip, OpenDKIM's signing included.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.inbound_checks import client_main, make_message, send  # noqa: E402
from bench.smtp_throughput import Stalwart  # noqa: E402


def round_trips(port: int, messages: int, data: bytes) -> float:
    """Seconds for ``messages`` milter conversations in a row."""
    import anyio

    from stalwart_py.connection import Address
    from stalwart_py.filters.api import Accept, FilterMessage
    from stalwart_py.milter.client import filter_message
    from stalwart_py.milter.settings import MilterSettings

    settings = MilterSettings(hostname="127.0.0.1", port=port)
    message = FilterMessage(
        session_id="bench",
        listener="smtp",
        hostname="mail.example.test",
        peer=Address.from_sockaddr(2, ("127.0.0.1", 40000)),
        local=Address.from_sockaddr(2, ("127.0.0.1", 25)),
        tls=None,
        helo="client.test",
        authenticated=None,
        sender="alice@example.test",
        recipients=("bob@example.test",),
        content=data,
    )

    async def run() -> float:
        started = time.perf_counter()
        for _ in range(messages):
            verdict = await filter_message(settings, message)
            assert isinstance(verdict, Accept), verdict
            assert verdict.changes.headers, verdict  # the signature
        return time.perf_counter() - started

    return anyio.run(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--size", type=int, default=10240)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    if shutil.which("opendkim") is None:
        print("milter_bench: the milter peer is missing: apt-get install opendkim")
        return
    from tests.support.auth_world import rsa_key
    from tests.support.real_milters import opendkim

    key = rsa_key()
    data = make_message(args.size, lambda m: m).replace(b"sender.test", b"example.test")
    with tempfile.TemporaryDirectory(prefix="milter-bench-") as tmp:
        directory = Path(tmp)
        path = directory / "message.eml"
        path.write_bytes(data)
        (directory / "on").mkdir()
        (directory / "off").mkdir()
        with opendkim(directory / "opendkim", "example.test", "bench", key.private) as port:
            filtered = (
                'smtp.filters = ["opendkim"]\n\n[filter.opendkim]\n'
                f'type = "milter"\nhostname = "127.0.0.1"\nport = {port}\n'
            )
            best: dict[str, float] = {}
            with (
                Stalwart(directory / "on", filtered) as on,
                Stalwart(directory / "off") as off,
            ):
                servers = {"milter": on, "no filter": off}
                for server in servers.values():
                    send(server.address, args.clients * 5, args.clients, path)  # warm up
                for _ in range(args.rounds):
                    for name, server in servers.items():
                        seconds = send(server.address, args.messages, args.clients, path)
                        best[name] = min(best.get(name, seconds), seconds)
            alone = round_trips(port, args.messages, data)
    print(
        f"{args.messages} messages of {args.size} bytes, {args.clients} clients, "
        f"best of {args.rounds} rounds"
    )
    for name, seconds in best.items():
        print(f"  {name:10} {args.messages / seconds:8.1f} msg/s  ({seconds:.2f} s)")
    print(f"  ratio (milter/no filter rate): {best['no filter'] / best['milter']:.2f}")
    extra = (best["milter"] - best["no filter"]) / args.messages * args.clients
    print(f"  added per message (per session): {extra * 1000:.2f} ms")
    print(
        f"milter round trips alone, one at a time: {alone / args.messages * 1000:.2f} ms each "
        f"({args.messages / alone:.0f}/s), OpenDKIM's RSA signature included"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        client_main(sys.argv[2:])
    else:
        main()
