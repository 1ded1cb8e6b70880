"""CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 section 4) and PARTIAL results (RFC 9394) over
real sockets: updates as messages arrive, change flags and are expunged, CANCELUPDATE, and
PARTIAL ranges in SEARCH and SORT."""

from __future__ import annotations

import pytest

from tests.integration.imap_support import append, start

JAN_1 = 1704067200.0
USER = "alice@example.test"


def mail(subject: str) -> bytes:
    return f"From: a@x\r\nSubject: {subject}\r\n\r\nbody\r\n".encode()


@pytest.fixture
def server(start_server, server_cert):
    server = start(start_server, server_cert)
    for index, subject in enumerate(["delta", "bravo", "echo", "alpha"]):
        append(server, USER, "INBOX", mail(subject), internaldate=JAN_1 + index)
    return server


def esearch(untagged: list[bytes]) -> list[bytes]:
    return [line for line in untagged if line.startswith(b"* ESEARCH")]


def test_capabilities(raw):
    untagged, _ = raw.command("CAPABILITY")
    assert b"CONTEXT=SEARCH" in untagged[0].split()
    assert b"CONTEXT=SORT" in untagged[0].split()


def test_search_update_follows_flags_arrivals_and_expunges(server, raw):
    untagged, tagged = raw.command("UID SEARCH RETURN (UPDATE) UNSEEN", "s1")
    assert tagged.startswith(b"s1 OK"), tagged
    assert esearch(untagged) == [b'* ESEARCH (TAG "s1") UID ALL 1:4']
    untagged, _ = raw.command("STORE 2:3 +FLAGS (\\Seen)", "t2")
    assert esearch(untagged) == [b'* ESEARCH (TAG "s1") UID REMOVEFROM (0 2:3)']
    append(server, USER, "INBOX", mail("foxtrot"), internaldate=JAN_1 + 10)
    untagged, _ = raw.command("NOOP", "t3")
    assert b"* 5 EXISTS" in untagged
    assert esearch(untagged) == [b'* ESEARCH (TAG "s1") UID ADDTO (0 5)']
    raw.command("STORE 1 +FLAGS (\\Deleted)", "t4")
    untagged, _ = raw.command("EXPUNGE", "t5")
    assert esearch(untagged) == [b'* ESEARCH (TAG "s1") UID REMOVEFROM (0 1)']
    _, tagged = raw.command('CANCELUPDATE "s1"', "t6")
    assert tagged.startswith(b"t6 OK"), tagged
    untagged, _ = raw.command("STORE 4 +FLAGS (\\Seen)", "t7")
    assert esearch(untagged) == []
    _, tagged = raw.command('CANCELUPDATE "s1"', "t8")
    assert tagged.startswith(b"t8 BAD"), tagged


def test_sort_update_gives_positions(server, raw):
    # by subject: alpha(4) bravo(2) delta(1) echo(3)
    untagged, _ = raw.command("SORT RETURN (UPDATE COUNT) (SUBJECT) UTF-8 UNDELETED", "s2")
    assert esearch(untagged) == [b'* ESEARCH (TAG "s2") COUNT 4']
    append(server, USER, "INBOX", mail("charlie"), internaldate=JAN_1 + 10)
    untagged, _ = raw.command("NOOP", "t1")
    assert esearch(untagged) == [b'* ESEARCH (TAG "s2") ADDTO (3 5)']
    untagged, _ = raw.command("STORE 2 +FLAGS (\\Deleted)", "t2")
    assert esearch(untagged) == [b'* ESEARCH (TAG "s2") REMOVEFROM (2 2)']
    raw.command("UNSELECT", "t3")
    raw.command("SELECT INBOX", "t4")
    untagged, _ = raw.command("STORE 3 +FLAGS (\\Deleted)", "t5")
    assert esearch(untagged) == []  # a new selection has no updating searches


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("UID SEARCH RETURN (PARTIAL 1:2) ALL", b"UID PARTIAL (1:2 1:2)"),
        ("UID SEARCH RETURN (PARTIAL -1:-3) ALL", b"UID PARTIAL (-1:-3 2:4)"),
        ("SEARCH RETURN (COUNT PARTIAL 3:10) ALL", b"COUNT 4 PARTIAL (3:10 3:4)"),
        ("SEARCH RETURN (PARTIAL 5:9) ALL", b"PARTIAL (5:9 NIL)"),
        ("SORT RETURN (PARTIAL 1:2) (SUBJECT) UTF-8 ALL", b"PARTIAL (1:2 4,2)"),
        ("SORT RETURN (PARTIAL -1:-2) (SUBJECT) UTF-8 ALL", b"PARTIAL (-1:-2 1,3)"),
    ],
)
def test_partial(raw, command, expected):
    untagged, tagged = raw.command(command, "p1")
    assert tagged.startswith(b"p1 OK"), tagged
    assert esearch(untagged) == [b'* ESEARCH (TAG "p1") ' + expected]


@pytest.mark.parametrize(
    "command",
    [
        "SEARCH RETURN (PARTIAL 1:2 ALL) ALL",
        "SEARCH RETURN (PARTIAL 0:2) ALL",
        "SEARCH RETURN (PARTIAL -1:2) ALL",
    ],
)
def test_partial_errors(raw, command):
    _, tagged = raw.command(command, "p2")
    assert tagged.startswith(b"p2 BAD"), tagged


@pytest.mark.parametrize(
    ("modifier", "uids"),
    [("1:2", [1, 2]), ("-1:-2", [3, 4]), ("2:3", [2, 3]), ("5:9", []), ("-3:-9", [1, 2])],
)
def test_uid_fetch_partial(raw, modifier, uids):
    untagged, tagged = raw.command(f"UID FETCH 1:* (FLAGS) (PARTIAL {modifier})", "f1")
    assert tagged.startswith(b"f1 OK"), tagged
    assert [int(line.split(b"UID ")[1].split()[0]) for line in untagged] == uids


def test_partial_is_advertised(raw):
    untagged, _ = raw.command("CAPABILITY")
    assert b"PARTIAL" in untagged[0].split()
