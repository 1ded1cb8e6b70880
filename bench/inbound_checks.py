"""MX intake with every check of mail from strangers on, beside the same server with every
check off, in one run (issue 15: goal >= 0.7 of the unchecked rate).

    .venv/bin/python bench/inbound_checks.py [--messages 1000] [--size 10240] [--clients 8]
                                             [--rounds 3]

Both servers are ``stalwart-py serve`` child processes with the MX listener taking mail from
127.0.0.1 as from a stranger (``relay-hosts = []``) and their ``[resolver]`` pointed at a DNS
server on loopback (tests/support/mail_peers.py ZoneServer, in this process). The sender domain
publishes SPF, a DKIM key, DMARC ``p=reject`` and a PTR/A pair for 127.0.0.1, and the "on"
server also asks an IP and a domain blocklist (nobody is listed). The message is 10 KB, DKIM
signed (RSA 2048), so the "on" server does SPF (MAIL FROM and HELO), DKIM, ARC (none), DMARC,
iprev, three DNSBL lookups, and writes Authentication-Results and Received-SPF; the "off" server
has every ``auth.*.verify = "disable"`` and no lists.

A warm-up of ``--clients * 10`` messages fills the resolver cache first (the warm case: a
mail server sees the same senders again and again, within their TTLs). Then each round sends
``--messages`` to each server in turn, from a client in its own process (``--clients``
concurrent sessions, one command at a time); the best round of each is reported, and their
ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.smtp_throughput import Stalwart, client_process, send_messages  # noqa: E402

RECIPIENT = "bob@example.test"
SENDER = "bounce@sender.test"
AUTH_OFF = "".join(
    f'[auth.{method}]\nverify = "disable"\n' for method in ("spf", "dkim", "dmarc", "arc", "iprev")
)
MX = "[server.smtp]\nrelay-hosts = []\n\n"  # loopback is a stranger, so its mail is checked
LISTS = '[spam.dnsbl]\nip-zones = ["bl.test"]\ndomain-zones = ["dbl.test"]\n'


def make_message(size: int, sign) -> bytes:
    head = (
        f"From: Alice <alice@sender.test>\r\nTo: {RECIPIENT}\r\nSubject: bench\r\n"
        "Date: Fri, 04 Dec 2026 15:00:00 +0000\r\nMessage-ID: <bench@sender.test>\r\n\r\n"
    ).encode()
    line = b"abcdefghijklmnopqrstuvwxyz0123456789 " * 2 + b"\r\n"
    body = line * ((size - len(head)) // len(line) + 1)
    return sign((head + body)[: size - 2] + b"\r\n")


async def _client(address: tuple[str, int], messages: int, clients: int, data: bytes) -> float:
    """Seconds to send ``messages`` over ``clients`` sessions, one command at a time, as the
    sender whose SPF, DKIM and DMARC records the zone publishes."""
    seconds, _ = await send_messages(
        address, messages, clients, data, sender=SENDER, helo="client.sender.test"
    )
    return seconds


def send(address: tuple[str, int], messages: int, clients: int, path: Path) -> float:
    """``_client`` in its own process."""
    return float(client_process(__file__, address, messages, clients, path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--size", type=int, default=10240)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from tests.support.inbound import rsa_key
    from tests.support.mail_peers import ZoneServer, background_loop, txt_text

    key = rsa_key()

    def sign(message: bytes) -> bytes:
        import dkim

        return (
            dkim.sign(
                message, b"s1", b"sender.test", key.private, canonicalize=(b"relaxed", b"relaxed")
            )
            + message
        )

    zone = ZoneServer()
    zone.negative_ttl = 300  # NXDOMAIN with an SOA, cached, as real DNSBLs answer
    zone.add("sender.test", "TXT", txt_text("v=spf1 ip4:127.0.0.1 -all"))
    zone.add("client.sender.test", "TXT", txt_text("v=spf1 a -all"))
    zone.add("client.sender.test", "A", "127.0.0.1")
    zone.add("1.0.0.127.in-addr.arpa", "PTR", "client.sender.test.")
    zone.add("s1._domainkey.sender.test", "TXT", txt_text(key.record))
    zone.add("_dmarc.sender.test", "TXT", txt_text("v=DMARC1; p=reject"))
    with background_loop() as portal, tempfile.TemporaryDirectory(prefix="inbound-") as tmp:
        port = portal.call(zone.start)
        resolver = f'[resolver]\nnameservers = ["127.0.0.1:{port}"]\n'
        directory = Path(tmp)
        path = directory / "message.eml"
        path.write_bytes(make_message(args.size, sign))
        (directory / "on").mkdir()
        (directory / "off").mkdir()
        best: dict[str, float] = {}
        with (
            Stalwart(directory / "on", MX + resolver + LISTS) as on,
            Stalwart(directory / "off", MX + resolver + AUTH_OFF) as off,
        ):
            servers = {"checks on": on, "checks off": off}
            for server in servers.values():
                send(server.address, args.clients * 10, args.clients, path)  # warm up
            for _ in range(args.rounds):
                for name, server in servers.items():
                    seconds = send(server.address, args.messages, args.clients, path)
                    best[name] = min(best.get(name, seconds), seconds)
        print(
            f"{args.messages} messages of {args.size} bytes, {args.clients} clients, "
            f"best of {args.rounds} rounds"
        )
        for name, seconds in best.items():
            print(f"  {name:11} {args.messages / seconds:8.1f} msg/s  ({seconds:.2f} s)")
        ratio = best["checks off"] / best["checks on"]
        print(f"  ratio (on/off rate): {ratio:.2f}  (goal >= 0.7)")


def client_main(argv: list[str]) -> None:
    host, _, port = argv[0].rpartition(":")
    messages, clients, path = int(argv[1]), int(argv[2]), argv[3]
    data = Path(path).read_bytes()
    print(asyncio.run(_client((host, int(port)), messages, clients, data)))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        client_main(sys.argv[2:])
    else:
        main()
