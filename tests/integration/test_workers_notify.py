"""Notifications beyond IDLE with ``server.workers = 2``: a NOTIFY (RFC 5465) session in one
worker hears a delivery, a flag change, a new mailbox and an expunge made in the other worker
and a message stored by another process on the data directory (as a ``stalwart-py`` command
opens the store); a CONDSTORE/QRESYNC (RFC 7162) session in one worker sees the other's flag
change with its MODSEQ while idling, the expunge as VANISHED, and both through CHANGEDSINCE
and a QRESYNC SELECT. Each unsolicited response within 100 ms of the change (scaled by load).
"""

from __future__ import annotations

import re
import smtplib
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from tests.integration.imap_support import Raw
from tests.integration.test_workers import (
    PASSWORD,
    USER,
    _slowness,
    message,
    worker_of,
    workers_config,
)
from tests.support.nodes import configured_store
from tests.support.servers import WAIT, ServerProcess

PERSONAL = "(personal (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange))"


@pytest.fixture
def server(tmp_path):
    with ServerProcess(workers_config(tmp_path)) as running:
        yield running


def session(server: ServerProcess, *, not_in: int | None = None) -> tuple[Raw, int]:
    """A logged-in IMAP session, and its worker (``not_in``: in the other one)."""
    for _ in range(60):
        raw = Raw(server.address("imap"))
        worker = worker_of(server, raw.sock.getsockname()[1])
        if worker != not_in:
            _, tagged = raw.command(f'LOGIN "{USER}" "{PASSWORD}"', "login")
            assert tagged.startswith(b"login OK"), tagged
            return raw, worker
        raw.close()
    raise AssertionError("every connection went to one worker")


def deliver_through(server: ServerProcess, not_in: int, n: int) -> None:
    """An SMTP delivery accepted by the worker that is not ``not_in``."""
    host, port = server.address("smtp")
    for _ in range(60):
        with smtplib.SMTP(host, port, timeout=WAIT) as client:
            if worker_of(server, client.sock.getsockname()[1]) != not_in:
                client.sendmail("bob@example.org", [USER], message(n))
                return
    raise AssertionError("every SMTP connection went to one worker")


def store_from_another_process(config: Path, mailbox: str, data: bytes) -> None:
    """Append ``data`` as a command would: the server's store (either backend), opened here."""

    async def run() -> None:
        async with configured_store(config) as store:
            account = await store.get_account(USER)
            box = await store.get_mailbox(account.id, mailbox)
            await store.append(box.id, data)

    anyio.run(run)


def heard(listener: Raw, change: Callable[[], None]) -> bytes:
    """Make ``change``, then the next response ``listener`` hears, checked to come in time."""
    change()
    done = time.monotonic()
    line = listener.line()
    assert time.monotonic() - done < 0.1 * _slowness(), line
    return line


def test_notify_in_one_worker_hears_changes_made_in_the_other_and_by_another_process(server):
    a, worker = session(server)
    b, _ = session(server, not_in=worker)
    with a, b:
        a.command("SELECT INBOX")
        _, tagged = a.command(
            f"NOTIFY SET (selected (MessageNew (UID) MessageExpunge FlagChange)) {PERSONAL}"
        )
        assert tagged == b"t1 OK NOTIFY completed"
        assert heard(a, lambda: deliver_through(server, worker, 1)) == b"* 1 EXISTS"
        following = a.line()
        if following == b"* 1 RECENT":  # an IMAP4rev1 session is told it is new here
            following = a.line()
        assert following == b"* 1 FETCH (UID 1)"
        b.command("SELECT INBOX")
        flagged = plain(heard(a, lambda: b.command("STORE 1 +FLAGS (\\Flagged)")))
        assert flagged == b"* 1 FETCH (UID 1 FLAGS (\\Flagged))"
        created = heard(a, lambda: b.command("CREATE Projects"))
        assert created == b'* LIST (\\HasNoChildren) "/" "Projects"'
        data = b"Subject: stored\r\n\r\nby another process\r\n"
        status = heard(a, lambda: store_from_another_process(server.config_path, "Projects", data))
        assert re.fullmatch(rb'\* STATUS "?Projects"? \(.*MESSAGES 1 .*\)', status), status
        b.command("STORE 1 +FLAGS (\\Deleted)")
        assert plain(a.line()) == b"* 1 FETCH (UID 1 FLAGS (\\Flagged \\Deleted))"
        assert heard(a, lambda: b.command("EXPUNGE")) == b"* 1 EXPUNGE"
        assert a.command("NOOP") == ([], b"t1 OK NOOP completed")


def test_condstore_and_qresync_in_one_worker_see_the_other_workers_changes(server):
    a, worker = session(server)
    for n in (1, 2):
        deliver_through(server, worker, n)
    b, _ = session(server, not_in=worker)
    with a, b:
        assert a.command("ENABLE QRESYNC")[1].startswith(b"t1 OK")
        untagged, _ = a.command("SELECT INBOX")
        uidvalidity = _code(untagged, b"UIDVALIDITY")
        before = _code(untagged, b"HIGHESTMODSEQ")
        b.command("SELECT INBOX")
        a.send("i1 IDLE\r\n")
        assert a.line().startswith(b"+ ")
        line = plain(heard(a, lambda: b.command("STORE 1 +FLAGS (\\Flagged)")))
        match = re.fullmatch(rb"\* 1 FETCH \(UID 1 FLAGS \(\\Flagged\) MODSEQ \((\d+)\)\)", line)
        assert match, line
        flagged_at = int(match.group(1))
        assert flagged_at > before
        b.command("STORE 2 +FLAGS (\\Deleted)")
        assert a.line().startswith(b"* 2 FETCH (")
        assert heard(a, lambda: b.command("EXPUNGE")) == b"* VANISHED 2"
        a.send("DONE\r\n")
        assert a.line() == b"i1 OK IDLE terminated"
        untagged, tagged = a.command(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {before} VANISHED)")
        assert tagged.startswith(b"t1 OK")
        assert b"* VANISHED (EARLIER) 2" in untagged
        assert any(b"UID 1" in u and b"\\Flagged" in u and b"MODSEQ" in u for u in untagged)
    c, _ = session(server, not_in=worker)  # a new session in the writer's worker
    with c:
        c.command("ENABLE QRESYNC")
        untagged, tagged = c.command(f"SELECT INBOX (QRESYNC ({uidvalidity} {before}))")
        assert tagged.startswith(b"t1 OK")
        assert b"* VANISHED (EARLIER) 2" in untagged
        assert any(u.startswith(b"* 1 FETCH (") and b"\\Flagged" in u for u in untagged)


def plain(line: bytes) -> bytes:
    """A FETCH without ``\\Recent``, which an IMAP4rev1 session has on what arrived during it."""
    return line.replace(b" \\Recent", b"")


def _code(untagged: list[bytes], name: bytes) -> int:
    for line in untagged:
        if found := re.search(rb"\[" + name + rb" (\d+)\]", line):
            return int(found.group(1))
    raise AssertionError(f"no {name!r} in {untagged}")
