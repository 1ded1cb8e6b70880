"""What Sieve costs at delivery: deliveries per second through the whole pipeline with a
typical active script, beside the same pipeline with no script, plus the parser and the
interpreter alone.

    .venv/bin/python bench/sieve_filter.py [--messages 2000] [--size 10240] [--concurrency 16]

The script is what a user of a personal server has: list sorting with variables, spam
flags, a body test and a vacation reply (de-duplicated in the store after the first).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stalwart_py import passwords
from stalwart_py.delivery import Delivery, Envelope, Origin, Recipient
from stalwart_py.directory import Directory
from stalwart_py.sieve import Environment, Interpreter, MessageView, SieveFilter, parse_script
from stalwart_py.store.sqlite import SqliteStore

SCRIPT = """require ["fileinto", "imap4flags", "variables", "mailbox", "body", "vacation",
                     "relational", "comparator-i;ascii-numeric", "envelope", "subaddress"];
if header :value "ge" :comparator "i;ascii-numeric" "X-Spam-Score" "5" {
  fileinto :flags "\\\\Seen" "Junk"; stop;
}
if header :matches "List-Id" "*<*.*>*" { fileinto :create "Lists/${2}"; stop; }
if address :domain :is "from" ["bank.test", "shop.test"] { addflag "$Important"; }
if envelope :detail "to" "work" { fileinto :create "Work"; }
if body :text :contains ["unsubscribe", "newsletter"] { fileinto :create "Newsletters"; }
if header :contains "subject" "bench 7" { vacation :days 7 "I am away until Monday."; }
"""


def message(n: int, size: int) -> bytes:
    head = (
        f"From: sender{n % 50}@remote.test\r\nTo: bob@example.test\r\nSubject: bench {n}\r\n"
        f"Message-ID: <{n}@bench.test>\r\n"
        + (f"List-Id: Bench <list{n % 5}.remote.test>\r\n" if n % 3 == 0 else "")
        + (f"X-Spam-Score: {n % 10}\r\n")
        + "\r\n"
    )
    line = "The quick brown fox jumps over the lazy dog, a newsletter of sorts.\r\n"
    return (head + line * max(1, (size - len(head)) // len(line))).encode()


async def deliveries_per_second(filtered: bool, count: int, size: int, concurrency: int) -> float:
    with tempfile.TemporaryDirectory() as directory:
        store = SqliteStore(Path(directory))
        await store.open()
        directory_ = Directory(store)
        await directory_.add_domain("example.test")
        account = await directory_.add_account("bob@example.test", "password123")
        delivery = Delivery(store, directory_, lambda: "mx.example.test")
        if filtered:
            delivery.message_filter = SieveFilter(store, directory_, lambda: "mx.example.test")
            await store.put_script(account.id, "main", SCRIPT)
            await store.set_active_script(account.id, "main")
        messages = [message(n, size) for n in range(count)]
        origin = Origin("ESMTP", "bench")
        started = time.perf_counter()

        async def worker(start: int) -> None:
            for n in range(start, count, concurrency):
                envelope = Envelope(f"sender{n % 50}@remote.test", (Recipient("bob@example.test"),))
                [result] = await delivery.deliver(envelope, messages[n], origin)
                assert result.ok, result

        async with anyio.create_task_group() as group:
            for start in range(concurrency):
                group.start_soon(worker, start)
        elapsed = time.perf_counter() - started
        await store.close()
        return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=10240)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    passwords.SCRYPT_LOG2_N = 8  # account creation is not what is measured

    started = time.perf_counter()
    for _ in range(200):
        script = parse_script(SCRIPT)
    parse_ms = (time.perf_counter() - started) / 200 * 1000
    view_messages = [message(n, args.size) for n in range(200)]
    started = time.perf_counter()
    for data in view_messages:
        environment = Environment(MessageView(data), "a@remote.test", "bob+work@example.test")
        Interpreter(script, environment).run()
    run_ms = (time.perf_counter() - started) / len(view_messages) * 1000
    print(
        f"parse the {len(SCRIPT)}-byte script: {parse_ms:.3f} ms;"
        f" run it on one message: {run_ms:.3f} ms"
    )

    plain = anyio.run(deliveries_per_second, False, args.messages, args.size, args.concurrency)
    sieve = anyio.run(deliveries_per_second, True, args.messages, args.size, args.concurrency)
    print(f"deliveries/s without a script: {plain:.0f}")
    print(f"deliveries/s with the script:  {sieve:.0f}  (ratio {sieve / plain:.2f})")


if __name__ == "__main__":
    main()
