"""What Sieve costs at delivery: deliveries per second through the whole pipeline with a
typical active script, beside the same pipeline with no script, plus the parser and the
interpreter alone; and, per script, our interpreter beside Dovecot's Pigeonhole
(``sieve-test``, Debian ``dovecot-sieve``) in the same run, with the ratio.

    .venv/bin/python bench/sieve_filter.py [--messages 2000] [--size 10240] [--concurrency 16]
                                           [--pigeonhole-runs 20]

Per script and message, ours is one run of the interpreter in process on the compiled
script (delivery caches compiled scripts by text), and beside it the parse plus the run (a
cold cache); Pigeonhole's is one ``sieve-test`` process (compile and run: how Pigeonhole's
own command-line tool filters), reported whole and less the same process on the empty
script (its start-up), which is closest to the script's own cost. Ratios are Pigeonhole's
time over our run.

The script is what a user of a personal server has: list sorting with variables, spam
flags, a body test and a vacation reply (de-duplicated in the store after the first).
"""

from __future__ import annotations

import argparse
import statistics
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


def per_script_beside_pigeonhole(runs: int, size: int) -> None:
    """Each script on one message: ours (parse + run) beside sieve-test, in ms."""
    from tests.interop.sieve_corpus import RFC_EXAMPLES
    from tests.support import pigeonhole

    scripts = {"empty": "", "bench": SCRIPT}
    for name in ("5228-9-full", "5229-3-matches", "5231-value", "5232-variables", "5173-text"):
        scripts[name] = RFC_EXAMPLES[name]
    data = message(3, size)
    envelope = pigeonhole.Envelope("sender3@remote.test", "bob@example.test")
    if pigeonhole.available() is None:
        print("sieve-test is not installed (apt-get install dovecot-sieve): no comparison")
        return
    print(
        f"{'script':<16} {'parse+run':>9} {'run':>7} {'sieve-test':>10} {'ratio':>6}"
        f" {'less start-up':>13} {'ratio':>6}   (ms; ratios over our run)"
    )
    start_up = 0.0
    with pigeonhole.workspace() as home:
        mail = pigeonhole.write(home / "message.eml", data)
        for name, text in scripts.items():
            text = text.replace("\n", "\r\n")
            started = time.perf_counter()
            for _ in range(runs * 10):
                environment = Environment(MessageView(data), envelope.mail_from, envelope.recipient)
                Interpreter(parse_script(text), environment).run()
            cold = (time.perf_counter() - started) / (runs * 10) * 1000
            compiled = parse_script(text)  # what delivery runs: compiled scripts are cached
            started = time.perf_counter()
            for _ in range(runs * 10):
                environment = Environment(MessageView(data), envelope.mail_from, envelope.recipient)
                Interpreter(compiled, environment).run()
            ours = (time.perf_counter() - started) / (runs * 10) * 1000
            path = pigeonhole.write(home / f"{name}.sieve", text.encode())
            samples = []
            for _ in range(runs):
                started = time.perf_counter()
                [result] = pigeonhole.run_pigeonhole(home, [(path, mail, envelope)], workers=1)
                samples.append((time.perf_counter() - started) * 1000)
                assert result.status == "ok", result.detail
            theirs = statistics.median(samples)
            if name == "empty":
                start_up = theirs
            net = theirs - start_up
            print(
                f"{name:<16} {cold:9.3f} {ours:7.3f} {theirs:10.2f} {theirs / ours:5.0f}x"
                f" {net:13.2f} {net / ours:5.1f}x"
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=10240)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--pigeonhole-runs", type=int, default=20)
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

    per_script_beside_pigeonhole(args.pigeonhole_runs, args.size)

    plain = anyio.run(deliveries_per_second, False, args.messages, args.size, args.concurrency)
    sieve = anyio.run(deliveries_per_second, True, args.messages, args.size, args.concurrency)
    print(f"deliveries/s without a script: {plain:.0f}")
    print(f"deliveries/s with the script:  {sieve:.0f}  (ratio {sieve / plain:.2f})")


if __name__ == "__main__":
    main()
