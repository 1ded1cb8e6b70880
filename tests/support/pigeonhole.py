"""Run Sieve scripts through Dovecot's Pigeonhole (Debian ``dovecot-sieve``, its
``sieve-test`` tool) and through our interpreter, and reduce both to one comparable form.

``sieve-test`` evaluates a script against one message and prints the actions it would
perform, without delivering anything. It refuses to run as root, so as root it is run as
``nobody`` (setpriv) in a temporary directory that user can read. It reads a configuration
of our own (``-c``), which sets what our defaults are: 4 redirects at most, the subaddress
separator "+", vacation periods from a day to 90 days, and vacation-seconds enabled.

One process per (script, message) costs about 70 ms, so runs go through a thread pool (the
work is in the child processes) and callers pack many tests into one script where they can.

The comparable form, ``Result``:

* ``status``: "ok", "error" (the run failed: both then keep the message) or "invalid" (the
  script does not compile);
* ``stores``: mailbox -> flags, the implicit keep included (INBOX), each mailbox once;
  system flags lowercased (Pigeonhole prints ``\\seen``), keywords as they are;
* ``redirects``: the addresses, sorted; ``reject``: the reason or None; ``discard``;
* ``vacation``: (seconds, subject, from, reason) of the reply the script asks for, or None:
  as the script decided it, before the RFC 3834 rules of whether to send it (sieve-test
  prints it before those checks; tests/unit/test_sieve_vacation.py covers them).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from stalwart_py.sieve import (
    Environment,
    Interpreter,
    Limits,
    MessageView,
    SieveRuntimeError,
    SieveSyntaxError,
    parse_script,
)
from stalwart_py.sieve.actions import Discard, FileInto, Keep, Redirect, Reject, Vacation
from stalwart_py.sieve.ext_delivery import environment_items
from stalwart_py.sieve.ext_run import NeedDuplicate

CONFIG = """\
mail_location = maildir:{home}/mail
recipient_delimiter = +
plugin {{
  sieve_extensions = +vacation-seconds +editheader +spamtest +spamtestplus
  sieve_max_redirects = 4
  sieve_vacation_min_period = 1d
  sieve_vacation_max_period = 90d
  # spamtest (RFC 5235) reads the junk filter's score from our X-Spam-Status field, a
  # probability from 0 to 1 (stalwart_py/junk/headers.py)
  sieve_spamtest_status_type = score
  sieve_spamtest_status_header = X-Spam-Status: [^,]*, score=(-?[0-9]+(\\.[0-9]+)?)
  sieve_spamtest_max_value = 1
}}
"""
RUN_TIMEOUT = 30


@dataclass(frozen=True)
class Envelope:
    mail_from: str  # "" for the null reverse path
    recipient: str


@dataclass(frozen=True)
class Result:
    status: str
    stores: tuple[tuple[str, tuple[str, ...]], ...] = ()
    redirects: tuple[str, ...] = ()
    reject: str | None = None
    discard: bool = False
    vacation: tuple[int, str | None, str | None, str] | None = None
    detail: str = field(default="", compare=False)  # the error, for the report

    def flags_of(self, mailbox: str) -> tuple[str, ...] | None:
        return dict(self.stores).get(mailbox)


def norm_flags(flags: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({f.lower() if f.startswith("\\") else f for f in flags}))


# -- ours ------------------------------------------------------------------------------------


def run_ours(script_text: str, message: bytes, envelope: Envelope) -> Result:
    """Our interpreter, in process, reduced as SieveFilter reduces its outcome: each mailbox
    once with the union of its flags, and a vacation reply only where vacation.py allows."""
    try:
        script = parse_script(script_text)
    except SieveSyntaxError as exc:
        return Result("invalid", detail=str(exc))
    view = MessageView(message)
    items = environment_items("mx.example.test", message)
    environment = Environment(view, envelope.mail_from, envelope.recipient, frozenset(), "+", items)
    seen: dict[str, bool] = {}  # RFC 7352: nothing was delivered before (as sieve-test)
    try:
        while True:
            try:
                with_seen = dataclasses.replace(environment, duplicates=seen)
                outcome = Interpreter(script, with_seen, limits=Limits()).run()
                break
            except NeedDuplicate as need:
                seen[need.key] = False
    except SieveRuntimeError as exc:
        return Result("error", detail=str(exc))
    stores: dict[str, set[str]] = {}
    redirects: set[str] = set()
    reject = None
    discard = False
    vacation = None
    for action in outcome.actions:
        if isinstance(action, Keep):
            stores.setdefault("INBOX", set()).update(action.flags)
        elif isinstance(action, FileInto):
            name = "INBOX" if action.mailbox.upper() == "INBOX" else action.mailbox
            stores.setdefault(name, set()).update(action.flags)
        elif isinstance(action, Redirect):
            redirects.add(action.address)
        elif isinstance(action, Reject):
            reject = action.reason
        elif isinstance(action, Discard):
            discard = True
        elif isinstance(action, Vacation):
            # Compared as the script decided it: sieve-test (without -e) prints the reply
            # before the RFC 3834 checks, which vacation.py's own tests cover.
            subject = action.subject.strip() if action.subject is not None else None
            vacation = (int(action.period), subject, action.sender, _text(action.reason))
    if outcome.implicit_keep:
        stores.setdefault("INBOX", set()).update(outcome.keep_flags)
    return Result(
        "ok",
        tuple(sorted((name, norm_flags(flags)) for name, flags in stores.items())),
        tuple(sorted(redirects)),
        reject,
        discard and not stores,
        vacation,
    )


# -- Pigeonhole ------------------------------------------------------------------------------


def available() -> str | None:
    return shutil.which("sieve-test")


@contextmanager
def workspace() -> Iterator[Path]:
    """A directory ``nobody`` can read (pytest's tmp_path is private to root)."""
    home = Path(tempfile.mkdtemp(prefix="pigeonhole-"))
    try:
        home.chmod(0o755)
        (home / "mail").mkdir(mode=0o777)
        (home / "mail").chmod(0o777)
        write(home / "dovecot.conf", CONFIG.format(home=home).encode())
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o644)
    return path


def _command(home: Path, script: Path, message: Path, envelope: Envelope) -> list[str]:
    command = ["sieve-test", "-c", str(home / "dovecot.conf")]
    command += ["-f", envelope.mail_from or "<>", "-r", envelope.recipient]
    command += ["-a", envelope.recipient, str(script), str(message)]
    if os.geteuid() == 0:  # sieve-test refuses root
        drop = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        command = [*drop, "env", f"HOME={home}", *command]
    return command


def run_pigeonhole(
    home: Path, jobs: Sequence[tuple[Path, Path, Envelope]], workers: int | None = None
) -> list[Result]:
    """Each (script file, message file, envelope) through sieve-test, in parallel."""

    def one(job: tuple[Path, Path, Envelope]) -> Result:
        completed = subprocess.run(
            _command(home, *job),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=RUN_TIMEOUT,
            check=False,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)},
        )
        return parse_output(completed.stdout.decode("utf-8", "replace"))

    workers = workers or max(2, (os.cpu_count() or 2) * 2)
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, jobs))


_ACTION = re.compile(r"^ \* (.*)$")
_DETAIL = re.compile(r"^\s+(?:\+|=>) (.*)$")


def parse_output(text: str) -> Result:
    """sieve-test's report (stdout and stderr together) as a Result."""
    if "failed to compile sieve script" in text or "validation failed" in text:
        return Result("invalid", detail=_first_error(text))
    if "final result: failed" in text:
        return Result("error", detail=_first_error(text))
    if "final result: success" not in text:
        return Result("error", detail=text[-500:])
    stores: dict[str, set[str]] = {}
    redirects: set[str] = set()
    reject = None
    discard = False
    vacation: dict[str, str] | None = None
    current: tuple[str, str] | None = None
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if line.startswith("START MESSAGE") and vacation is not None:
            body: list[str] = []
            while index < len(lines) and not lines[index].startswith("END MESSAGE"):
                body.append(lines[index])
                index += 1
            vacation["reason"] = "\n".join(body)
            continue
        action = _ACTION.match(line)
        if action is not None:
            what = action.group(1)
            if what.startswith("store message in folder: "):
                name = what.split(": ", 1)[1]
                name = "INBOX" if name.upper() == "INBOX" else name
                stores.setdefault(name, set())
                current = ("store", name)
            elif what.startswith("redirect message to: "):
                redirects.add(what.split(": ", 1)[1].strip("<>"))
                current = None
            elif what.startswith("reject message with reason: "):
                reject = what.split(": ", 1)[1]
                current = None
            elif what == "discard":
                discard = True
                current = None
            elif what.startswith("send vacation message"):
                vacation = {}
                current = ("vacation", "")
            else:
                current = None
            continue
        detail = _DETAIL.match(line)
        if detail is not None and current is not None:
            text_ = detail.group(1)
            if current[0] == "store" and text_.startswith("add IMAP flags: "):
                stores[current[1]].update(text_.split(": ", 1)[1].split())
            elif current[0] == "vacation" and vacation is not None and ":" in text_:
                key, _, value = text_.partition(":")
                vacation[key.strip()] = value.strip()
    sent = None
    if vacation is not None:
        sent = (
            int(vacation.get("seconds", "0")),
            vacation.get("subject"),
            vacation.get("from"),
            _text(vacation.get("reason", "")),
        )
    return Result(
        "ok",
        tuple(sorted((name, norm_flags(flags)) for name, flags in stores.items())),
        tuple(sorted(redirects)),
        reject,
        discard and not stores,
        sent,
    )


def _text(text: str) -> str:
    return text.replace("\r\n", "\n").strip()


def _first_error(text: str) -> str:
    for line in text.splitlines():
        if "error" in line.lower():
            return line.strip()
    return text.strip()[:300]
