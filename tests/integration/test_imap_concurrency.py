"""Several sessions on one mailbox (RFC 9051 sections 5.2, 5.5 and 7.5.1): each sees the
others' flag changes, expunges and new messages at the points the RFC allows, with sequence
numbers kept consistent; IDLE is woken at once by a delivery (over SMTP or LMTP);
CONDSTORE/QRESYNC resync (RFC 7162) after changes made while the client was away."""

from __future__ import annotations

import asyncio
import re
import smtplib

import aioimaplib
import pytest

from tests.integration.imap_support import (
    PASSWORD,
    USER,
    Raw,
    append,
    message,
    start,
)
from tests.support.servers import InProcessServer

SMTP_LISTENER = '[server.listener.smtp]\nbind = "127.0.0.1:0"\nprotocol = "smtp"\n'
LMTP_LISTENER = '[server.listener.lmtp]\nbind = "127.0.0.1:0"\nprotocol = "lmtp"\n'


@pytest.fixture
def server(start_server, server_cert):
    server = start(start_server, server_cert, SMTP_LISTENER + LMTP_LISTENER)
    for index in range(1, 6):
        append(server, USER, "INBOX", message(f"message {index}"))
    return server


def selected(server: InProcessServer) -> Raw:
    raw = Raw(server)
    raw.login()
    raw.command("SELECT INBOX")
    return raw


def deliver(server: InProcessServer, subject: str) -> None:
    """A delivery over SMTP, with smtplib, to the server's own smtp listener."""
    host, port = server.address("smtp")
    with smtplib.SMTP(host, port, timeout=20) as client:
        assert client.sendmail("bob@example.org", [USER], message(subject)) == {}


def test_flag_changes_and_expunges_reach_the_other_session(server):
    with selected(server) as a, selected(server) as b:
        b.command("STORE 2 +FLAGS.SILENT (\\Flagged)")
        untagged, _ = a.command("NOOP")
        assert untagged == [b"* 2 FETCH (UID 2 FLAGS (\\Flagged))"]
        b.command("STORE 2,4 +FLAGS.SILENT (\\Deleted)")
        assert b.command("EXPUNGE")[0] == [b"* 4 EXPUNGE", b"* 2 EXPUNGE"]
        untagged, _ = a.command("NOOP")
        assert untagged == [b"* 4 EXPUNGE", b"* 2 EXPUNGE"]
        untagged, _ = a.command("FETCH 1:* (UID)")
        assert untagged == [b"* 1 FETCH (UID 1)", b"* 2 FETCH (UID 3)", b"* 3 FETCH (UID 5)"]


def test_no_expunge_while_fetch_store_or_search_are_in_progress(server):
    with selected(server) as a, selected(server) as b:
        b.command("STORE 1 +FLAGS.SILENT (\\Deleted)")
        b.command("EXPUNGE")
        append(server, USER, "INBOX", message("message 6"))
        untagged, tagged = a.command("FETCH 1:* (UID)")
        # message 1 is gone but its number stays until EXPUNGE can be said, and what the
        # session knows of it is still served (RFC 2180 section 4.1.1); new mail is told
        assert untagged == [
            b"* 1 FETCH (UID 1)",
            b"* 2 FETCH (UID 2)",
            b"* 3 FETCH (UID 3)",
            b"* 4 FETCH (UID 4)",
            b"* 5 FETCH (UID 5)",
            b"* 6 EXISTS",
        ]
        assert tagged == b"t1 OK FETCH completed"
        untagged, tagged = a.command("FETCH 1:2 (ENVELOPE)")
        assert [line[:12] for line in untagged] == [b"* 2 FETCH (E"]  # its body is gone
        assert tagged == b"t1 OK [EXPUNGEISSUED] Some messages were expunged meanwhile"
        assert a.command("SEARCH ALL")[0] == [b"* SEARCH 1 2 3 4 5 6"]
        assert a.command("STORE 2 +FLAGS (x)")[0] == [
            b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft x)",  # a new keyword
            b"* 2 FETCH (FLAGS (x))",
        ]
        # a UID command may hear it
        untagged, _ = a.command("UID FETCH 2 (UID)")
        assert untagged == [b"* 2 FETCH (UID 2)", b"* 1 EXPUNGE"]
        assert a.command("FETCH 5 (UID)")[0] == [b"* 5 FETCH (UID 6)"]


def test_idle_is_woken_by_a_delivery_through_smtp_and_by_other_sessions(server):
    with selected(server) as a, selected(server) as b:
        a.send("i1 IDLE\r\n")
        assert a.line() == b"+ idling"
        deliver(server, "fresh mail")
        assert a.line() == b"* 6 EXISTS"
        assert a.line() == b"* 1 RECENT"  # the first session told of it claims it
        b.command("STORE 1 +FLAGS.SILENT (\\Seen)")
        assert a.line() == b"* 1 FETCH (UID 1 FLAGS (\\Seen))"
        b.command("STORE 3 +FLAGS.SILENT (\\Deleted)")
        assert a.line() == b"* 3 FETCH (UID 3 FLAGS (\\Deleted))"
        b.command("EXPUNGE")
        assert a.line() == b"* 3 EXPUNGE"
        a.send("DONE\r\n")
        assert a.line() == b"i1 OK IDLE terminated"
        untagged, _ = a.command("FETCH 5 (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert untagged == [
            b"* 5 FETCH (UID 6 BODY[HEADER.FIELDS (SUBJECT)] {23}\r\nSubject: fresh mail\r\n\r\n)"
        ]


def test_idle_is_woken_by_an_lmtp_delivery(server):
    with selected(server) as a:
        a.send("i1 IDLE\r\n")
        assert a.line() == b"+ idling"
        host, port = server.address("lmtp")
        with smtplib.LMTP(host, port, timeout=20) as client:
            assert client.sendmail("bob@example.org", [USER], message("via lmtp")) == {}
        assert a.line() == b"* 6 EXISTS"
        assert a.line() == b"* 1 RECENT"
        a.send("DONE\r\n")
        assert a.line() == b"i1 OK IDLE terminated"
        untagged, _ = a.command("FETCH 6 (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert untagged == [
            b"* 6 FETCH (UID 6 BODY[HEADER.FIELDS (SUBJECT)] {21}\r\nSubject: via lmtp\r\n\r\n)"
        ]


def test_idle_with_aioimaplib(server):
    async def run() -> None:
        host, port = server.address("imap")
        client = aioimaplib.IMAP4(host, port, timeout=20)
        await client.wait_hello_from_server()
        await client.login(USER, PASSWORD)
        await client.select("INBOX")
        idle = await client.idle_start(timeout=60)
        await asyncio.to_thread(deliver, server, "pushed")
        push = await client.wait_server_push(timeout=20)
        assert push == [b"6 EXISTS", b"1 RECENT"]
        client.idle_done()
        response = await asyncio.wait_for(idle, 20)
        assert response.result == "OK"
        await client.logout()

    asyncio.run(run())


def test_idle_ends_on_anything_but_done(server):
    with selected(server) as a:
        a.send("i1 IDLE\r\n")
        assert a.line() == b"+ idling"
        a.send("NOOP\r\n")
        assert a.line() == b"i1 BAD Expected DONE to end IDLE"
        assert a.command("NOOP")[1] == b"t1 OK NOOP completed"


def test_condstore_and_qresync_resynchronization(server):
    with selected(server) as a:
        untagged, _ = a.command("SELECT INBOX (CONDSTORE)")
        uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", b" ".join(untagged)).group(1))
        known = int(re.search(rb"HIGHESTMODSEQ (\d+)", b" ".join(untagged)).group(1))
    with selected(server) as b:  # changes while the first client is away
        b.command("STORE 2 +FLAGS.SILENT (\\Answered)")
        b.command("STORE 3 +FLAGS.SILENT (\\Deleted)")
        b.command("EXPUNGE")
    append(server, USER, "INBOX", message("message 6"))
    with Raw(server) as c:
        c.login()
        assert c.command(f"SELECT INBOX (QRESYNC ({uidvalidity} {known}))")[1] == (
            b"t1 BAD QRESYNC is not enabled"
        )
        c.command("ENABLE QRESYNC")
        untagged, tagged = c.command(f"SELECT INBOX (QRESYNC ({uidvalidity} {known} 1:5))")
        assert tagged == b"t1 OK [READ-WRITE] SELECT completed"
        assert b"* 5 EXISTS" in untagged
        assert b"* VANISHED (EARLIER) 3" in untagged
        fetches = [line for line in untagged if b" FETCH " in line]
        assert [re.sub(rb"MODSEQ \(\d+\)", b"MODSEQ (n)", f) for f in fetches] == [
            b"* 2 FETCH (UID 2 FLAGS (\\Answered) MODSEQ (n))",  # UID 6 is beyond 1:5
        ]
        # the same question by UID FETCH (CHANGEDSINCE ... VANISHED)
        untagged, _ = c.command(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {known} VANISHED)")
        assert untagged[0] == b"* VANISHED (EARLIER) 3"
        assert [re.sub(rb"MODSEQ \(\d+\)", b"MODSEQ (n)", f) for f in untagged[1:]] == [
            b"* 2 FETCH (UID 2 FLAGS (\\Answered) MODSEQ (n))",
            b"* 5 FETCH (UID 6 FLAGS () MODSEQ (n))",
        ]
        # once QRESYNC is on, expunges are told as VANISHED
        with selected(server) as d:
            d.command("STORE 1 +FLAGS.SILENT (\\Deleted)")
            d.command("EXPUNGE")
        untagged, _ = c.command("NOOP")
        assert untagged == [b"* VANISHED 1"]
        # and an EXPUNGE of one's own ends with the new HIGHESTMODSEQ (RFC 7162 3.2.10)
        c.command("STORE 2 +FLAGS.SILENT (\\Deleted)")
        untagged, tagged = c.command("EXPUNGE")
        assert untagged == [b"* VANISHED 4"]
        status, _ = c.command("STATUS INBOX (HIGHESTMODSEQ)")
        highest = re.search(rb"HIGHESTMODSEQ (\d+)", status[0]).group(1)
        assert tagged == b"t1 OK [HIGHESTMODSEQ " + highest + b"] EXPUNGE completed"
        # a stale UIDVALIDITY gets no resync data, just the mailbox
        untagged, _ = c.command("SELECT INBOX (QRESYNC (1 1))")
        assert not any(b"VANISHED" in line or b"FETCH" in line for line in untagged)


def test_deleting_the_selected_mailbox_ends_the_other_session(server):
    with Raw(server) as a, Raw(server) as b:
        a.login()
        b.login()
        a.command("CREATE Doomed")
        a.command("SELECT Doomed")
        b.command("DELETE Doomed")
        a.send("t1 NOOP\r\n")
        assert a.line() == b"* BYE The selected mailbox was deleted"
