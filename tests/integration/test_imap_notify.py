"""NOTIFY (RFC 5465) with two sessions: one sets NOTIFY and only reads, the other (or a
delivery) appends, creates, renames, deletes, subscribes, flags and expunges; the first sees
STATUS, LIST, EXISTS, EXPUNGE and FETCH without sending a command. NOTIFY NONE stops them;
selected-delayed holds expunges back until a command; IDLE carries them too."""

from __future__ import annotations

import re

import pytest

from tests.integration.imap_support import USER, Raw, append, message, start

PERSONAL = "(personal (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange))"


@pytest.fixture
def server(start_server, server_cert):
    return start(start_server, server_cert)


def session(server) -> Raw:
    raw = Raw(server)
    raw.login()
    return raw


def status_of(line: bytes) -> tuple[bytes, dict[str, int]]:
    match = re.fullmatch(rb'\* STATUS ("?[^"(]*"?) \((.*)\)', line)
    assert match, line
    words = match.group(2).split()
    return match.group(1).strip(b'"'), {
        words[i].decode(): int(words[i + 1]) for i in range(0, len(words), 2)
    }


def test_capability_and_badevent(server):
    with session(server) as a:
        untagged, _ = a.command("CAPABILITY")
        assert b" NOTIFY" in untagged[0]
        _, tagged = a.command("NOTIFY SET (personal (MailboxMetadataChange))")
        assert tagged == (
            b"t1 NO [BADEVENT (MessageNew MessageExpunge FlagChange MailboxName "
            b"SubscriptionChange)] Unsupported event MailboxMetadataChange"
        )
        _, tagged = a.command("NOTIFY SET (personal (MessageNew))")
        assert tagged.startswith(b"t1 BAD MessageNew and MessageExpunge must be given together")
        _, tagged = a.command("NOTIFY NONE")
        assert tagged == b"t1 OK NOTIFY NONE completed"


def test_mailbox_events_without_commands(server):
    with session(server) as a, session(server) as b:
        untagged, tagged = a.command(f"NOTIFY SET (STATUS) {PERSONAL}")
        assert tagged == b"t1 OK NOTIFY completed"
        statuses = dict(status_of(line) for line in untagged)
        assert set(statuses) >= {b"INBOX", b"Sent", b"Trash"}
        assert statuses[b"INBOX"]["MESSAGES"] == 0 and "UIDVALIDITY" in statuses[b"INBOX"]

        assert b.command("CREATE Projects")[1] == b"t1 OK CREATE completed"
        assert a.line() == b'* LIST (\\HasNoChildren) "/" "Projects"'  # CREATE subscribes nothing
        assert b.command("SUBSCRIBE Projects")[1] == b"t1 OK SUBSCRIBE completed"
        assert a.line() == b'* LIST (\\HasNoChildren \\Subscribed) "/" "Projects"'
        assert b.command("UNSUBSCRIBE Projects")[1] == b"t1 OK UNSUBSCRIBE completed"
        assert a.line() == b'* LIST (\\HasNoChildren) "/" "Projects"'
        assert b.command("SUBSCRIBE Projects")[1] == b"t1 OK SUBSCRIBE completed"
        assert a.line() == b'* LIST (\\HasNoChildren \\Subscribed) "/" "Projects"'

        append(server, USER, "Projects", message("one"))  # a delivery, not a session
        name, values = status_of(a.line())
        assert name == b"Projects" and values["MESSAGES"] == 1 and values["UIDNEXT"] == 2
        assert values["UNSEEN"] == 1

        assert b.command("SELECT Projects")[1].startswith(b"t1 OK")
        assert b.command("STORE 1 +FLAGS (\\Seen)")[1] == b"t1 OK STORE completed"
        name, values = status_of(a.line())  # FlagChange: UNSEEN moved
        assert name == b"Projects" and values["UNSEEN"] == 0 and values["MESSAGES"] == 1
        b.command("STORE 1 +FLAGS (\\Deleted)")
        assert status_of(a.line())[1]["UNSEEN"] == 0  # FlagChange without a count change
        b.command("EXPUNGE")
        name, values = status_of(a.line())
        assert name == b"Projects" and values["MESSAGES"] == 0 and values["UIDNEXT"] == 2
        assert b.command("CLOSE")[1] == b"t1 OK CLOSE completed"

        assert b.command("RENAME Projects Work")[1] == b"t1 OK RENAME completed"
        # The subscription stays with the old name (RFC 9051 section 6.3.7).
        assert a.line() == b'* LIST (\\HasNoChildren) "/" "Work" ("OLDNAME" ("Projects"))'
        assert b.command("DELETE Work")[1] == b"t1 OK DELETE completed"
        assert a.line() == b'* LIST (\\NonExistent) "/" "Work"'

        # NOTIFY NONE: nothing more, even when asked with a command
        assert a.command("NOTIFY NONE")[1] == b"t1 OK NOTIFY NONE completed"
        b.command("CREATE Quiet")
        append(server, USER, "INBOX", message("quiet"))
        assert a.command("NOOP") == ([], b"t1 OK NOOP completed")


def test_filters_choose_the_mailboxes(server):
    with session(server) as a, session(server) as b:
        b.command("CREATE Lists/dev")
        b.command("CREATE Lists/announce")
        b.command("CREATE Other")
        _, tagged = a.command(
            "NOTIFY SET (mailboxes Other NONE) (subtree Lists (MessageNew MessageExpunge)) "
            "(inboxes (MessageNew MessageExpunge))"
        )
        assert tagged == b"t1 OK NOTIFY completed"
        append(server, USER, "Other", message("ignored"))  # its group says NONE
        append(server, USER, "Sent", message("ignored too"))  # no group
        append(server, USER, "Lists/dev", message("dev"))
        name, values = status_of(a.line())
        assert name == b"Lists/dev" and values["MESSAGES"] == 1
        append(server, USER, "INBOX", message("inbox"))
        assert status_of(a.line())[0] == b"INBOX"
        b.command("CREATE Lists/new")  # no MailboxName asked: no LIST
        append(server, USER, "Lists/announce", message("announce"))
        assert status_of(a.line())[0] == b"Lists/announce"


def test_the_selected_mailbox_hears_exists_fetch_and_expunge(server):
    append(server, USER, "INBOX", message("first"))
    with session(server) as a, session(server) as b:
        a.command("SELECT INBOX")
        _, tagged = a.command(
            "NOTIFY SET (selected (MessageNew (UID BODY[HEADER.FIELDS (SUBJECT)]) "
            f"MessageExpunge FlagChange)) {PERSONAL}"
        )
        assert tagged == b"t1 OK NOTIFY completed"
        append(server, USER, "INBOX", message("second"))
        assert a.line() == b"* 2 EXISTS"
        fetched = a.line()
        assert fetched.startswith(b"* 2 FETCH (UID 2 BODY[HEADER.FIELDS (SUBJECT)] {")
        assert b"Subject: second" in fetched
        b.command("SELECT INBOX")
        b.command("STORE 1 +FLAGS (\\Flagged)")
        assert a.line() == b"* 1 FETCH (UID 1 FLAGS (\\Flagged))"
        # the notification's BODY[] did not set \Seen on message 2
        untagged, _ = b.command("FETCH 2 FLAGS")
        assert untagged == [b"* 2 FETCH (FLAGS ())"]
        b.command("STORE 1 +FLAGS (\\Deleted)")
        assert a.line() == b"* 1 FETCH (UID 1 FLAGS (\\Flagged \\Deleted))"
        b.command("EXPUNGE")
        assert a.line() == b"* 1 EXPUNGE"
        # no STATUS for the selected mailbox: the next thing A hears is its own reply
        assert a.command("NOOP") == ([], b"t1 OK NOOP completed")


def test_selected_delayed_holds_expunges_until_a_command(server):
    append(server, USER, "INBOX", message("first"))
    with session(server) as a, session(server) as b:
        a.command("SELECT INBOX")
        _, tagged = a.command("NOTIFY SET (selected-delayed (MessageNew MessageExpunge))")
        assert tagged == b"t1 OK NOTIFY completed"
        b.command("SELECT INBOX")
        b.command("STORE 1 +FLAGS (\\Deleted)")
        b.command("EXPUNGE")
        append(server, USER, "INBOX", message("second"))
        # the expunge is held back; the new message is announced (message 1 still counts)
        assert a.line() == b"* 1 FETCH (UID 1 FLAGS (\\Deleted))"
        assert a.line() == b"* 2 EXISTS"
        untagged, tagged = a.command("NOOP")
        assert (untagged, tagged) == ([b"* 1 EXPUNGE"], b"t1 OK NOOP completed")


def test_notify_during_idle(server):
    with session(server) as a, session(server) as b:
        a.command(f"NOTIFY SET {PERSONAL}")
        a.command("SELECT INBOX")
        a.send("i1 IDLE\r\n")
        assert a.line() == b"+ idling"
        b.command("CREATE During")
        assert a.line() == b'* LIST (\\HasNoChildren) "/" "During"'
        # recent: the idling session claims it (the helper's own later claim would race
        # with the session's, which a notification over PostgreSQL often wins)
        append(server, USER, "INBOX", message("while idle"), recent=True)
        assert a.line() == b"* 1 EXISTS"  # IDLE reports the selected mailbox as ever
        assert a.line() == b"* 1 RECENT"
        append(server, USER, "During", message("elsewhere"))
        assert status_of(a.line())[0] == b"During"
        a.send("DONE\r\n")
        assert a.line() == b"i1 OK IDLE terminated"
