"""SMTP intake cost in instructions: what one message costs stalwart-py (durable, one worker)
and aiosmtpd (a no-op handler), counted by valgrind, side by side.

    .venv/bin/python bench/smtp_instructions.py [--messages 200] [--size 10240]
                                                [--clients 16] [--persistent]

Each server runs under ``valgrind --tool=callgrind``; ``smtp-source`` (Debian's postfix
package) sends a few messages to warm it up, its counters are zeroed
(``callgrind_control --zero``), ``--messages`` more are sent, and the counters are dumped:
user-space instructions per message, every thread of the server process included (our
store's writer thread too). Rates on a machine shared with other work move by tens of
percent from run to run; this count moves by a few (batch sizes and event-loop passes
still follow timing). So a change to the per-message path is measured here, and its rate
with ``smtp_throughput.py``.

What it does not count: the kernel (system calls, fsync, the loopback TCP stack), and the
cost of instructions that miss caches or wait for the GIL. A ratio here is therefore an
upper bound of what the rates can show.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import smtp_throughput as throughput  # noqa: E402  (the servers and the load, shared)

WARM_UP = 30
DUMP_WAIT = 30.0  # seconds for a dump to be written


def callgrind(command: list[str], out: Path) -> list[str]:
    return [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        "--dump-instr=no",
        *command,
    ]


def count(pid: int, out_dir: Path, send: object) -> int:
    """Instructions the process ``pid`` runs while ``send()`` runs."""
    subprocess.run(["callgrind_control", "--zero", str(pid)], check=True, capture_output=True)
    send()  # type: ignore[operator]
    before = set(out_dir.glob("callgrind.*"))
    subprocess.run(["callgrind_control", "--dump", str(pid)], check=True, capture_output=True)
    deadline = time.monotonic() + DUMP_WAIT
    while True:
        for path in set(out_dir.glob("callgrind.*")) - before:
            match = re.search(r"^summary: (\d+)", path.read_text(), re.MULTILINE)
            if match:
                return int(match.group(1))
        if time.monotonic() > deadline:
            raise RuntimeError("callgrind wrote no dump")
        time.sleep(0.05)  # ok: callgrind_control returns before the dump file is complete


class CountedStalwart(throughput.Stalwart):
    """``stalwart-py serve`` (one worker) under callgrind."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, workers=1)
        self.out_dir = directory / "callgrind"
        self.out_dir.mkdir()

    def __enter__(self) -> CountedStalwart:
        real = subprocess.Popen
        out = self.out_dir / "callgrind.%p"

        def popen(command: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
            return real(callgrind(command, out), **kwargs)  # type: ignore[call-overload]

        throughput.subprocess.Popen = popen  # type: ignore[assignment,misc]
        try:
            super().__enter__()
        finally:
            throughput.subprocess.Popen = real  # type: ignore[misc]
        return self


class CountedAiosmtpd:
    """``throughput.AIOSMTPD_SERVER`` under callgrind."""

    def __init__(self, directory: Path) -> None:
        self.out_dir = directory / "callgrind-aiosmtpd"
        self.out_dir.mkdir()

    def __enter__(self) -> CountedAiosmtpd:
        command = [sys.executable, "-c", throughput.AIOSMTPD_SERVER]
        self.process = subprocess.Popen(
            callgrind(command, self.out_dir / "callgrind.%p"),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        self.address = ("127.0.0.1", int(self.process.stdout.readline()))
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.process.terminate()
        self.process.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--size", type=int, default=10240)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--persistent", action="store_true", help="smtp-source -d")
    args = parser.parse_args()
    for tool in ("valgrind", "callgrind_control", "smtp-source"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing (Debian: valgrind, postfix)")
    try:
        import aiosmtpd  # noqa: F401
    except ImportError:
        sys.exit("the peer is missing: .venv/bin/pip install aiosmtpd")
    print(
        f"{args.messages} messages of {args.size} octets, {args.clients} sessions,"
        f" {'one connection per session' if args.persistent else 'a connection per message'}"
    )
    results = {}
    with tempfile.TemporaryDirectory(dir=ROOT) as scratch:
        for name, make in (
            ("stalwart-py (durable)", lambda: CountedStalwart(Path(scratch) / "stalwart")),
            ("aiosmtpd (no-op)", lambda: CountedAiosmtpd(Path(scratch))),
        ):
            with contextlib.ExitStack() as stack:
                server = stack.enter_context(make())

                def send(server: object = server, messages: int = args.messages) -> None:
                    throughput.smtp_source(
                        server.address,  # type: ignore[attr-defined]
                        messages,
                        args.clients,
                        args.size,
                        args.persistent,
                    )

                send(messages=WARM_UP)
                total = count(server.process.pid, server.out_dir, send)
            results[name] = total / args.messages
            print(f"  {name:22s} {results[name] / 1e6:7.3f} M instructions per message")
    ours, peer = results.values()
    print(f"  ratio aiosmtpd / stalwart-py: {peer / ours:.2f}")


if __name__ == "__main__":
    main()
