"""What the junk filter costs: training time and classification time per message, beside
bogofilter (a Bayesian filter in C, Debian ``bogofilter``) on the same corpus, in one run.

    .venv/bin/python bench/junk_classifier.py [--train 50] [--held-out 500] [--words 40 120]

The corpus is tests/support/junk_corpus.py (generated, deterministic): ``--train`` junk and
as many non-junk messages to train on, ``--held-out`` of each to classify. ``--words`` bounds
the body words per message (the default gives 0.5-1.5 KB messages; 1500 2000 gives ~10 KB).

Ours, through the code the server runs:

* train: the bodies are stored, then handed to ``JunkFilter`` as an IMAP MOVE into Junk (or
  out of it) hands them, and the worker's queue is waited out: reading, tokenising (in a
  thread) and one store write (fsync'd) per message;
* classify: ``JunkFilter.classify`` per message, as delivery calls it (tokenise, one read of
  the account's counts for the message's tokens, score); and ``tokenize`` alone.

bogofilter: ``-s``/``-n -B`` over the files (one process per class), then ``-t -B`` over the
held-out files (one process): per message is the total over the count, so it includes its
process start once, not per message. Without bogofilter installed, only ours is printed.

``--imap N``: also what training costs an IMAP client, on a real server (in this process):
N messages are appended, then each is marked by its own command as a client's junk button
does (``UID MOVE`` into Junk, ``UID STORE +FLAGS ($NotJunk)``), timed per command, with the
classifier on and then off; and how long the training worker takes to catch up.
"""

from __future__ import annotations

import argparse
import imaplib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stalwart_py.config.junk import ClassifierSettings
from stalwart_py.junk.filter import JunkFilter
from stalwart_py.junk.tokens import tokenize
from stalwart_py.server import discover_protocols
from stalwart_py.store import LocalDelivery
from stalwart_py.store.sqlite import SqliteStore
from tests.support.junk_corpus import Sample, corpus
from tests.support.servers import InProcessServer, write_config

HOST = "mail.example.test"


def accuracy(verdicts: list[bool], samples: list[Sample]) -> tuple[float, int]:
    right = sum(v == s.junk for v, s in zip(verdicts, samples, strict=True))
    ham_as_junk = sum(v and not s.junk for v, s in zip(verdicts, samples, strict=True))
    return right / len(samples), ham_as_junk


async def ours(training: list[Sample], held_out: list[Sample]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as directory:
        store = SqliteStore(Path(directory))
        await store.open()
        await store.add_domain("example.test")
        account = await store.add_account("bob@example.test", "x", None)
        inbox = await store.get_mailbox(account.id, "INBOX")
        for sample in training:
            await store.deliver(sample.data, [LocalDelivery(account.id)])
        infos = await store.messages(inbox.id)
        junk_filter = JunkFilter(store, ClassifierSettings, lambda: HOST)
        async with anyio.create_task_group() as group:
            await group.start(junk_filter.run)
            started = time.perf_counter()
            for info, sample in zip(infos, training, strict=True):
                if sample.junk:
                    junk_filter.trained_by_move(account.id, None, "\\Junk", [info.blob_id])
                else:
                    junk_filter.trained_by_flags(account.id, "add", frozenset({"$NotJunk"}),
                                                 [info.blob_id])  # fmt: skip
            await junk_filter.settled()
            train = time.perf_counter() - started
            group.cancel_scope.cancel()
        assert junk_filter.trained == len(training)
        times, verdicts = [], []
        cpu = time.process_time()
        for sample in held_out:
            started = time.perf_counter()
            verdict = await junk_filter.classify(account.id, sample.data)
            times.append(time.perf_counter() - started)
            verdicts.append(verdict.junk)
        cpu = time.process_time() - cpu
        tokenize_times = []
        for sample in held_out:
            started = time.perf_counter()
            tokenize(sample.data, HOST)
            tokenize_times.append(time.perf_counter() - started)
        await store.close()
    right, ham_as_junk = accuracy(verdicts, held_out)
    return {
        "train_ms": train / len(training) * 1000,
        "classify_ms": statistics.mean(times) * 1000,
        "classify_p50_ms": statistics.median(times) * 1000,
        "classify_cpu_ms": cpu / len(held_out) * 1000,  # every thread of the process
        "tokenize_ms": statistics.mean(tokenize_times) * 1000,
        "accuracy": right,
        "ham_as_junk": ham_as_junk,
    }


def bogofilter(training: list[Sample], held_out: list[Sample]) -> dict[str, float] | None:
    tool = shutil.which("bogofilter")
    if tool is None:
        return None
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        (root / "db").mkdir()

        def files(samples: list[Sample], prefix: str) -> list[str]:
            paths = []
            for n, sample in enumerate(samples):
                path = root / f"{prefix}{n}"
                path.write_bytes(sample.data)
                paths.append(str(path))
            return paths

        junk = files([s for s in training if s.junk], "j")
        ham = files([s for s in training if not s.junk], "h")
        tests = files(held_out, "t")
        started = time.perf_counter()
        subprocess.run([tool, "-d", str(root / "db"), "-s", "-B", *junk], check=True)
        subprocess.run([tool, "-d", str(root / "db"), "-n", "-B", *ham], check=True)
        train = time.perf_counter() - started
        started = time.perf_counter()
        result = subprocess.run(
            [tool, "-d", str(root / "db"), "-t", "-B", *tests], capture_output=True, text=True
        )
        classify = time.perf_counter() - started
    verdicts = [line.split()[0] == "S" for line in result.stdout.splitlines()]
    right, ham_as_junk = accuracy(verdicts, held_out)
    return {
        "train_ms": train / len(training) * 1000,
        "classify_ms": classify / len(held_out) * 1000,
        "accuracy": right,
        "ham_as_junk": ham_as_junk,
    }


IMAP_CONFIG = """
[server]
hostname = "mail.example.test"

[spam.classifier]
enable = {enable}

[server.listener.imap]
bind = "127.0.0.1:0"
protocol = "imap"
imap.auth.allow-plaintext = true
"""


def imap_marking(samples: list[Sample], enable: bool) -> tuple[list[float], float]:
    """(seconds per marking command, seconds until the training worker caught up)."""
    with tempfile.TemporaryDirectory() as directory:
        path = write_config(Path(directory), IMAP_CONFIG.format(enable=str(enable).lower()))
        with InProcessServer(path, discover_protocols()) as server:
            server.add_account("bob@example.test", "bench password")
            client = imaplib.IMAP4(*server.address("imap"))
            client.login("bob@example.test", "bench password")
            for sample in samples:
                client.append("INBOX", None, None, sample.data)
            client.select("INBOX")
            times = []
            for uid, sample in enumerate(samples, 1):
                started = time.perf_counter()
                if sample.junk:
                    typ, _ = client.uid("MOVE", str(uid), "Junk")
                else:
                    typ, _ = client.uid("STORE", str(uid), "+FLAGS", "($NotJunk)")
                times.append(time.perf_counter() - started)
                assert typ == "OK"
            started = time.perf_counter()
            server.run(server.context.junk.settled)
            catch_up = time.perf_counter() - started
            client.logout()
    return times, catch_up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=50)
    parser.add_argument("--held-out", type=int, default=500)
    parser.add_argument("--words", type=int, nargs=2, default=(40, 120))
    parser.add_argument("--imap", type=int, default=0, metavar="N")
    args = parser.parse_args()
    words = (args.words[0], args.words[1])
    training = corpus(args.train, words=words)
    held_out = corpus(args.held_out, seed=4242, start=10_000, words=words)
    size = statistics.mean(len(s.data) for s in held_out)
    print(f"{len(training)} training and {len(held_out)} held-out messages, {size:.0f} B mean")
    mine = anyio.run(ours, training, held_out)
    theirs = bogofilter(training, held_out)
    print(f"{'':28} {'stalwart-py':>12} {'bogofilter':>12} {'ratio':>8}")
    rows = [
        ("train, ms per message", "train_ms"),
        ("classify, ms per message", "classify_ms"),
        ("accuracy", "accuracy"),
        ("non-junk filed as junk", "ham_as_junk"),
    ]
    for label, key in rows:
        other = theirs.get(key) if theirs else None
        ratio = f"{mine[key] / other:7.2f}x" if other and key.endswith("_ms") else ""
        print(f"{label:28} {mine[key]:12.3f} {other if other is not None else '-':>12} {ratio:>8}"
              if other is None else
              f"{label:28} {mine[key]:12.3f} {other:12.3f} {ratio:>8}")  # fmt: skip
    print(f"{'classify median, ms':28} {mine['classify_p50_ms']:12.3f}")
    print(f"{'classify CPU, ms':28} {mine['classify_cpu_ms']:12.3f}")
    print(f"{'tokenize alone, ms':28} {mine['tokenize_ms']:12.3f}")
    if args.imap:
        samples = corpus(args.imap // 2, seed=77, words=words)
        on, catch_up = imap_marking(samples, True)
        off, _ = imap_marking(samples, False)
        print(f"IMAP marking of {len(samples)} messages, one command each (ms):")
        print(f"{'':28} {'training on':>12} {'off':>12} {'ratio':>8}")
        for label, pick in (("mean", statistics.mean), ("median", statistics.median)):
            a, b = pick(on) * 1000, pick(off) * 1000
            print(f"{label:28} {a:12.3f} {b:12.3f} {a / b:7.2f}x")
        print(f"{'worker caught up after, ms':28} {catch_up * 1000:12.1f}")


if __name__ == "__main__":
    main()
