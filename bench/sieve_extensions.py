"""What the Sieve extensions date, regex and editheader cost per run of the interpreter,
beside a plain ``header`` test (which parses the same header block), and the worst case of
editheader: many edits of a large message (each edit copies the message once).

    .venv/bin/python bench/sieve_extensions.py [--runs 2000] [--large-mb 10] [--edits 100]

Each figure is the best of three rounds of ``--runs`` runs: a fresh ``MessageView`` and
``Interpreter`` per run, as a delivery has, the script compiled once (the filter caches it).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stalwart_py.sieve import Environment, Interpreter, MessageView, parse_script

REQUIRE = 'require ["date", "editheader", "regex", "variables", "relational"];\n'
MESSAGE = (
    b"Received: from a by b; Thu, 13 Nov 2008 01:02:03 +0200\r\n"
    b"From: Ann <ann@remote.test>\r\nTo: Bob <bob@example.test>\r\nSubject: Hello\r\n"
    b"Date: Wed, 12 Nov 2008 12:34:56 -0800\r\nX-Tag: one\r\nX-Tag: two\r\n"
    b"Message-ID: <m1@remote.test>\r\n\r\nBody.\r\n"
)
SCRIPTS = (
    ("keep (nothing parsed)", "keep;"),
    ("header :contains (parses the header)", 'if header :contains "from" "ann" { keep; }'),
    ("date :value ge :zone hour", 'if date :value "ge" :zone "+0100" "date" "hour" "09" { keep; }'),
    ("currentdate :matches iso8601", 'if currentdate :matches "iso8601" "*" { keep; }'),
    ("header :regex, two groups", 'if header :regex "from" "([a-z]+)@(remote|x)" { keep; }'),
    ("addheader, deleteheader, header", 'addheader "X-A" "1"; deleteheader "x-tag"; keep;'),
)  # fmt: skip


def per_run(script: str, message: bytes, runs: int) -> float:
    compiled = parse_script(REQUIRE + script)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(runs):
            environment = Environment(MessageView(message), "ann@remote.test", "bob@example.test")
            Interpreter(compiled, environment).run()
        best = min(best, (time.perf_counter() - started) / runs)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--large-mb", type=int, default=10)
    parser.add_argument("--edits", type=int, default=100)
    args = parser.parse_args()
    for label, script in SCRIPTS:
        print(f"{label:42s} {per_run(script, MESSAGE, args.runs) * 1e6:9.1f} us/run")
    large = MESSAGE + b"x" * (args.large_mb << 20)
    seconds = per_run('addheader "X-A" "1";' * args.edits, large, 1)
    print(f"{args.edits} addheader on a {args.large_mb} MB message {seconds * 1e3:12.1f} ms/run")


if __name__ == "__main__":
    main()
