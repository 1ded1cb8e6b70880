"""\\Recent for IMAP4rev1 sessions over real sockets (RFC 3501 section 2.3.2): the first
session to see a new message gets it, and only that one; EXAMINE claims nothing; a session
that ENABLEd IMAP4rev2 sees none and claims none."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from stalwart_py.store import schema
from stalwart_py.store.schema import MIGRATIONS, migrate
from tests.integration.imap_support import USER, Raw, append, message, start


@pytest.fixture
def server(start_server, server_cert):
    server = start(start_server, server_cert)
    for n in range(3):
        append(server, USER, "INBOX", message(f"m{n}"), recent=True)
    return server


def session(server) -> Raw:
    raw = Raw(server)
    raw.login()
    return raw


def recent_line(untagged: list[bytes]) -> bytes:
    (line,) = [line for line in untagged if line.endswith(b" RECENT")]
    return line


def test_the_first_select_gets_recent_and_a_second_does_not(server):
    with session(server) as first, session(server) as second:
        assert first.command("STATUS INBOX (RECENT MESSAGES)")[0] == [
            b'* STATUS "INBOX" (RECENT 3 MESSAGES 3)'
        ]
        assert recent_line(first.command("SELECT INBOX")[0]) == b"* 3 RECENT"
        assert first.command("FETCH 1:* FLAGS")[0] == [
            b"* 1 FETCH (FLAGS (\\Recent))",
            b"* 2 FETCH (FLAGS (\\Recent))",
            b"* 3 FETCH (FLAGS (\\Recent))",
        ]
        assert first.command("SEARCH RECENT")[0] == [b"* SEARCH 1 2 3"]
        first.command("STORE 1 +FLAGS (\\Seen)")
        assert first.command("SEARCH NEW")[0] == [b"* SEARCH 2 3"]
        assert first.command("SEARCH OLD")[0] == [b"* SEARCH"]
        # \Recent is the server's: STORE FLAGS cannot remove it, and the reply shows it.
        assert first.command("STORE 2 FLAGS (\\Flagged)")[0] == [
            b"* 2 FETCH (FLAGS (\\Flagged \\Recent))"
        ]
        # Another session finds them claimed.
        assert second.command("STATUS INBOX (RECENT)")[0] == [b'* STATUS "INBOX" (RECENT 0)']
        assert recent_line(second.command("SELECT INBOX")[0]) == b"* 0 RECENT"
        assert second.command("SEARCH RECENT")[0] == [b"* SEARCH"]
        assert second.command("SEARCH OLD")[0] == [b"* SEARCH 1 2 3"]
        assert second.command("FETCH 3 FLAGS")[0] == [b"* 3 FETCH (FLAGS ())"]
        # The first session keeps them while it has the mailbox selected...
        assert first.command("STATUS INBOX (RECENT)")[0] == [b'* STATUS "INBOX" (RECENT 3)']
        # ... and loses them when it selects again: nobody has them any more.
        assert recent_line(first.command("SELECT INBOX")[0]) == b"* 0 RECENT"


def test_new_mail_is_claimed_by_the_selected_session(server):
    with session(server) as first, session(server) as second:
        first.command("SELECT INBOX")
        second.command("SELECT INBOX")
        append(server, USER, "INBOX", message("new"), recent=True)
        # Whichever session is told first gets it; NOOP in the first.
        untagged, _ = first.command("NOOP")
        assert untagged == [b"* 4 EXISTS", b"* 4 RECENT"]
        assert first.command("FETCH 4 FLAGS")[0] == [b"* 4 FETCH (FLAGS (\\Recent))"]
        untagged, _ = second.command("NOOP")
        assert untagged == [b"* 4 EXISTS"]  # none of them is recent to it: still 0
        assert second.command("FETCH 4 FLAGS")[0] == [b"* 4 FETCH (FLAGS ())"]
        # In IDLE too.
        second.send("i1 IDLE\r\n")
        assert second.line() == b"+ idling"
        append(server, USER, "INBOX", message("while idle"), recent=True)
        assert second.line() == b"* 5 EXISTS"
        assert second.line() == b"* 1 RECENT"
        second.send("DONE\r\n")
        assert second.until("i1")[1] == b"i1 OK IDLE terminated"
        assert second.command("SEARCH RECENT")[0] == [b"* SEARCH 5"]
        untagged, _ = first.command("NOOP")
        assert untagged == [b"* 5 EXISTS"]  # the second took it: still 4 recent
        assert first.command("SEARCH RECENT")[0] == [b"* SEARCH 1 2 3 4"]


def test_a_message_appended_by_the_session_itself_is_recent_to_it(server):
    with session(server) as raw:
        raw.command("SELECT INBOX")
        data = message("mine")
        raw.send(b"a1 APPEND INBOX {%d+}\r\n%s\r\n" % (len(data), data))
        untagged, tagged = raw.until("a1")
        assert tagged.startswith(b"a1 OK [APPENDUID")
        assert untagged == [b"* 4 EXISTS", b"* 4 RECENT"]


def test_examine_shows_recent_without_claiming(server):
    with session(server) as looker, session(server) as owner:
        assert recent_line(looker.command("EXAMINE INBOX")[0]) == b"* 3 RECENT"
        assert looker.command("SEARCH RECENT")[0] == [b"* SEARCH 1 2 3"]
        assert looker.command("FETCH 1 FLAGS")[0] == [b"* 1 FETCH (FLAGS (\\Recent))"]
        assert looker.command("STATUS INBOX (RECENT)")[0] == [b'* STATUS "INBOX" (RECENT 3)']
        assert recent_line(owner.command("SELECT INBOX")[0]) == b"* 3 RECENT"
        assert owner.command("STATUS INBOX (RECENT)")[0] == [b'* STATUS "INBOX" (RECENT 3)']
        assert looker.command("STATUS INBOX (RECENT)")[0] == [b'* STATUS "INBOX" (RECENT 0)']


def test_an_imap4rev2_session_sees_none_and_claims_none(server):
    with session(server) as rev2, session(server) as rev1:
        rev2.command("ENABLE IMAP4rev2")
        untagged, _ = rev2.command("SELECT INBOX")
        assert not any(line.endswith(b" RECENT") for line in untagged)
        assert rev2.command("FETCH 1:* FLAGS")[0] == [
            b"* 1 FETCH (FLAGS ())",
            b"* 2 FETCH (FLAGS ())",
            b"* 3 FETCH (FLAGS ())",
        ]
        append(server, USER, "INBOX", message("new"), recent=True)
        assert rev2.command("NOOP")[0] == [b"* 4 EXISTS"]
        assert rev2.command("STORE 1 +FLAGS (\\Seen)")[0] == [b"* 1 FETCH (FLAGS (\\Seen))"]
        # Everything is still there for the rev1 session.
        assert recent_line(rev1.command("SELECT INBOX")[0]) == b"* 4 RECENT"


def test_copy_into_another_mailbox_makes_recent_messages_there(server):
    with session(server) as raw:
        raw.command("SELECT INBOX")
        raw.command("COPY 1:2 Archive")
        assert raw.command("STATUS Archive (RECENT MESSAGES)")[0] == [
            b'* STATUS "Archive" (RECENT 2 MESSAGES 2)'
        ]
        assert recent_line(raw.command("SELECT Archive")[0]) == b"* 2 RECENT"


def test_claims_are_atomic(server):
    """Sessions claiming at once: every message goes to exactly one of them."""

    async def run() -> list[tuple[int, int]]:
        store = server.context.store
        account = await store.get_account(USER)
        box = await store.get_mailbox(account.id, "INBOX")
        ups = (2, 3, 1, 3, 2, 1, 3)
        marks = await asyncio.gather(*(store.claim_recent(box.id, up) for up in ups))
        return list(zip(marks, ups, strict=True))

    claimed: list[int] = []
    for mark, up in server.run(run):
        claimed.extend(range(mark + 1, up + 1))
    assert sorted(claimed) == [1, 2, 3]


def test_the_migration_counts_existing_mail_as_claimed(tmp_path):
    conn = sqlite3.connect(tmp_path / "old.sqlite3", isolation_level=None)
    version = MIGRATIONS.index(schema._v4_recent)
    for step in MIGRATIONS[:version]:
        step(conn)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.execute("INSERT INTO domains VALUES ('example.test', 0)")
    conn.execute(
        "INSERT INTO accounts(id, address, domain, secret, created)"
        " VALUES (1, 'a@example.test', 'example.test', 'x', 0)"
    )
    conn.execute(
        "INSERT INTO mailboxes(account_id, name, uidvalidity, uidnext) VALUES (1, 'INBOX', 1, 8)"
    )
    migrate(conn)
    assert conn.execute("SELECT recent_uid FROM mailboxes").fetchone() == (7,)
    conn.close()
