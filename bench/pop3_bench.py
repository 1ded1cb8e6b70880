"""POP3: stalwart-py beside Dovecot (dovecot-pop3d), RETR of 1,000 messages of 50 KB.

    .venv/bin/python bench/pop3_bench.py [--messages 1000] [--size 51200] [--runs 3]

Both servers run as child processes on loopback and hold the same messages in INBOX
(Dovecot as indexed Maildir files, ours through the store, as deliveries would); the same
poplib client logs in (USER/PASS), sends STAT, then RETR of every message, and QUIT without
deleting. One run warms up, then ``--runs`` are timed; the table gives the median of each and
ours over Dovecot's (the goal: <= 1.0x). Figures are indicative: client and servers share the
machine's cores; the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import os
import poplib
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.imap_bench import PASSWORD, USER, dovecot, ours  # noqa: E402
from tests.support.servers import free_port  # noqa: E402


def make_message(n: int, size: int) -> bytes:
    head = (
        f"From: sender{n % 17}@example.org\r\nTo: {USER}\r\nSubject: message {n}\r\n"
        f"Message-ID: <{n}@bench.test>\r\n\r\n"
    ).encode()
    line = b"The quick brown fox jumps over the lazy dog. " * 1 + b"0123456789 abcdefghijkl\r\n"
    body = line * ((size - len(head)) // len(line))
    body = b"." + body[1:] if n % 10 == 0 else body  # some lines to byte-stuff
    return head + body


def retrieve_all(port: int, count: int) -> float:
    started = time.perf_counter()
    client = poplib.POP3("127.0.0.1", port, timeout=60)
    client.user(USER)
    client.pass_(PASSWORD)
    messages, _size = client.stat()
    assert messages == count, (messages, count)
    total = 0
    for number in range(1, count + 1):
        _, _lines, octets = client.retr(number)
        total += octets
    client.quit()
    elapsed = time.perf_counter() - started
    assert total > 0
    return elapsed


def timed(name: str, port: int, count: int, runs: int) -> float:
    retrieve_all(port, count)  # warm up (and, for us, learn the sizes once)
    times = [retrieve_all(port, count) for _ in range(runs)]
    median = statistics.median(times)
    print(f"{name:12} RETR x{count}: median {median:.3f} s  runs {[round(t, 3) for t in times]}")
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--size", type=int, default=50 * 1024)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    messages = [make_message(n, args.size) for n in range(args.messages)]
    accounts = {USER: messages}
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        extra = (
            f'[server.listener.pop3]\nbind = "127.0.0.1:{port}"\nprotocol = "pop3"\n'
            "pop3.auth.allow-plaintext = true\n"
        )
        with ours(Path(tmp), accounts, extra=extra):
            mine = timed("stalwart-py", port, args.messages, args.runs)
    pop3_port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        dovecot_extra = (
            "protocols = imap pop3\n"
            f"service pop3-login {{\n  inet_listener pop3 {{\n    port = {pop3_port}\n  }}\n"
            "  inet_listener pop3s {\n    port = 0\n  }\n}\n"
        )
        with dovecot(Path(tmp), accounts, extra=dovecot_extra):
            theirs = timed("dovecot", pop3_port, args.messages, args.runs)
    print(f"load average after: {os.getloadavg()}")
    print(f"stalwart-py / dovecot: {mine / theirs:.2f}x (goal <= 1.0x)")


if __name__ == "__main__":
    main()
