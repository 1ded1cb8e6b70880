"""APPEND, MULTIAPPEND and CATENATE: stalwart-py beside Dovecot in one run.

    .venv/bin/python bench/append_bench.py [--count 1000] [--runs 3] [--no-dovecot]

Both servers run as child processes on loopback (the launchers of ``bench/imap_bench.py``),
with one message in INBOX, and are timed by the same client from this process:

* ``APPEND x N``: N APPEND commands one after another, each waiting for its OK (LITERAL+);
* ``MULTIAPPEND of N``: one APPEND carrying N messages (RFC 3502), stored all or none;
* ``CATENATE of N URLs``: one APPEND building a message from N URL parts, each the whole
  INBOX message (RFC 4469), plus a TEXT part.

The messages are those of ``imap_bench.make_message`` (1 to 40 KB, some multipart). Each
operation runs into a fresh mailbox ``--runs`` times; the table gives the median and ours
over Dovecot's. Figures are indicative: client and servers share the machine's cores.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.imap_bench import (  # noqa: E402
    USER,
    Client,
    dovecot,
    logged_in,
    make_message,
    ours,
    print_table,
)


def literal(data: bytes) -> str:
    """A LITERAL+ literal inside a command (the bench messages are ASCII)."""
    return f"{{{len(data)}+}}\r\n{data.decode('ascii')}"


def appends(client: Client, mailbox: str, messages: list[bytes]) -> None:
    for data in messages:
        client.command(f"APPEND {mailbox} {literal(data)}")


def multiappend(client: Client, mailbox: str, messages: list[bytes]) -> None:
    reply = client.command(f"APPEND {mailbox} " + " ".join(map(literal, messages)))
    assert b"APPENDUID" in reply or b"OK" in reply, reply[-200:]


def catenate(client: Client, mailbox: str, count: int) -> None:
    parts = " ".join(['URL "/INBOX/;UID=1"'] * count)
    client.command(f"APPEND {mailbox} CATENATE ({parts} TEXT {literal(b'-- end')})")


def run_operations(port: int, count: int, runs: int) -> dict[str, float]:
    messages = [make_message(n) for n in range(count)]
    operations: dict[str, Callable[[Client, str], None]] = {
        f"APPEND x {count}": lambda client, box: appends(client, box, messages),
        f"MULTIAPPEND of {count}": lambda client, box: multiappend(client, box, messages),
        f"CATENATE of {count} URLs": lambda client, box: catenate(client, box, count),
    }
    results = {}
    client = logged_in(port)
    try:
        for index, (name, operation) in enumerate(operations.items()):
            times = []
            for run in range(runs):
                box = f"Bench{index}x{run}"
                client.command(f"CREATE {box}")
                start = time.perf_counter()
                operation(client, box)
                times.append(time.perf_counter() - start)
                status = client.command(f"STATUS {box} (MESSAGES SIZE)").decode()
                expected = count if "APPEND" in name else 1
                assert f"MESSAGES {expected}" in status, status
            results[name] = statistics.median(times)
    finally:
        client.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-dovecot", action="store_true")
    args = parser.parse_args()
    peers = [("stalwart-py", ours)] + ([] if args.no_dovecot else [("dovecot", dovecot)])
    seed = make_message(7)  # a multipart with an attachment: the CATENATE part
    size = sum(len(make_message(n)) for n in range(args.count))
    print(f"{args.count} messages, {size / 1e6:.1f} MB; CATENATE part {len(seed)} octets")
    results: dict[str, dict[str, float]] = {}
    for name, start in peers:
        with tempfile.TemporaryDirectory() as tmp, start(Path(tmp), {USER: [seed]}) as (port, _):
            print(f"measuring {name} ...", flush=True)
            results[name] = run_operations(port, args.count, args.runs)
    print()
    print_table(results, args.runs, width=28)


if __name__ == "__main__":
    main()
