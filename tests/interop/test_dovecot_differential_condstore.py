"""STATUS, CONDSTORE and QRESYNC against Dovecot: STATUS with every item, FETCH and STORE
with MODSEQ, CHANGEDSINCE and UNCHANGEDSINCE (RFC 7162 3.1), SEARCH MODSEQ, expunges seen
as VANISHED, and SELECT with QRESYNC (RFC 7162 3.2). MODSEQ values are compared by rank."""

from __future__ import annotations

import pytest

from tests.interop.differential import (
    HIGHESTMODSEQ_ALWAYS,
    KEYWORDS_IN_PERMANENTFLAGS,
    NONEXISTENT_CODE,
    Deliberate,
    Message,
    Step,
    append_all,
    compare,
)
from tests.support.dovecot import Dovecot
from tests.support.servers import InProcessServer

pytestmark = pytest.mark.interop

# (Every STORE below changes every message it names: a non-silent STORE that changes nothing
# on a message still reports its flags here, as RFC 9051 6.4.6 describes STORE's answer;
# Dovecot reports only the messages that changed. Both are allowed; not compared.)
DELIBERATE = (
    HIGHESTMODSEQ_ALWAYS,
    NONEXISTENT_CODE,
    KEYWORDS_IN_PERMANENTFLAGS,
    Deliberate(
        r"^STATUS ",
        r"^OK \[CLIENTBUG\]$",
        "STATUS of the selected mailbox is answered plainly (RFC 9051 6.3.11 only says a "
        "client SHOULD NOT ask); Dovecot adds the hint CLIENTBUG (RFC 5530).",
        replace="OK",
    ),
    Deliberate(
        r"^(UID )?(STORE|EXPUNGE)",
        r"^NO \[READ-ONLY\]$",
        "STORE and EXPUNGE in a mailbox opened with EXAMINE are refused with NO (RFC 9051 "
        "6.3.3: no changes are permitted); Dovecot answers OK and changes nothing.",
        replace="OK",
    ),
    Deliberate(
        r"^(UID )?STORE ",
        r"^OK \[PERMANENTFLAGS ",
        "A STORE that adds a keyword new to the mailbox announces the new FLAGS; Dovecot "
        "also repeats PERMANENTFLAGS, which keeps \\* and so has not changed here.",
    ),
)


def message(n: int) -> Message:
    data = (
        f"From: sender{n}@example.org\r\nTo: alice@example.test\r\nSubject: modseq {n}\r\n"
        f"Date: Mon, {n} Jan 2024 10:00:00 +0000\r\nMessage-ID: <m{n}@example.org>\r\n"
        f"\r\nBody {n}.\r\n" + "padding\r\n" * n
    ).encode()
    flags = ["", "\\Seen", "\\Flagged", "\\Seen \\Answered", "$Label1", "\\Seen"][n % 6]
    return Message(data, flags, f"0{n}-Jan-2024 10:00:00 +0000")


@pytest.fixture(scope="module")
def servers(stalwart: InProcessServer, dovecot: Dovecot) -> tuple[tuple[str, int], ...]:
    ours, theirs = stalwart.address("imap"), ("127.0.0.1", dovecot.port)
    for address in (ours, theirs):
        append_all(address, "Status", [message(n) for n in range(1, 7)])
        append_all(address, "Status/Child", [message(n) for n in range(1, 3)])
        append_all(address, "Condstore", [message(n) for n in range(1, 9)])
        append_all(address, "Qresync", [message(n) for n in range(1, 9)])
    return ours, theirs


STATUS_ITEMS = ["MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ", "SIZE"]
# (Not compared: DELETED, an IMAP4rev2 item Dovecot 2.3 does not know, and APPENDLIMIT,
# which Dovecot does not advertise.)


def test_status_with_every_item(servers):
    steps = [f"STATUS Status ({item})" for item in STATUS_ITEMS]
    steps += [
        f"STATUS Status ({' '.join(STATUS_ITEMS)})",
        "STATUS Status/Child (MESSAGES UNSEEN SIZE)",
        "STATUS INBOX (MESSAGES UIDNEXT)",
        "STATUS Nonexistent (MESSAGES)",
        "STATUS Status ()",
        "STATUS Status (BOGUS)",
        "SELECT Status",
        "STORE 1 -FLAGS (\\Seen)",
        "STATUS Status (MESSAGES UNSEEN)",  # of the selected mailbox: allowed, current
        "STORE 2 +FLAGS (\\Deleted)",
        "EXPUNGE",
        f"STATUS Status ({' '.join(STATUS_ITEMS)})",
    ]
    compare(*servers, steps, DELIBERATE)


def test_condstore_fetch_store_and_search(servers):
    compare(
        *servers,
        [
            Step("SELECT Condstore (CONDSTORE)", {"start": r"HIGHESTMODSEQ (\d+)"}),
            "FETCH 1:* (UID FLAGS MODSEQ)",
            "STORE 2 +FLAGS (\\Seen)",
            "STORE 3:4 +FLAGS.SILENT (\\Flagged)",
            "STORE 5 FLAGS ($Label2)",
            "FETCH 1:* (FLAGS) (CHANGEDSINCE {start})",
            "UID FETCH 1:* (FLAGS) (CHANGEDSINCE {start})",
            "SEARCH MODSEQ {start_next}",
            "UID SEARCH MODSEQ {start_next} FLAGGED",
            'SEARCH MODSEQ "/flags/\\\\Seen" all {start_next}',
            "SEARCH RETURN (COUNT) MODSEQ {start_next}",
            "SEARCH RETURN (MIN) MODSEQ {start_next}",
            "SEARCH RETURN (MAX) MODSEQ {start_next}",
            "UID SEARCH RETURN (MIN MAX) MODSEQ {start_next}",
            "SEARCH RETURN (ALL) MODSEQ {start_next} UNFLAGGED",
            Step("STATUS Condstore (HIGHESTMODSEQ)", {"later": r"HIGHESTMODSEQ (\d+)\)"}),
            "STORE 1:* (UNCHANGEDSINCE {start}) +FLAGS (\\Draft)",
            "STORE 1:* (UNCHANGEDSINCE {later}) +FLAGS (\\Deleted)",
            "UID STORE 6:8 (UNCHANGEDSINCE 1) +FLAGS.SILENT (\\Answered)",
            "FETCH 1:* (FLAGS MODSEQ)",
            "EXPUNGE",
            "FETCH 1:* (UID MODSEQ) (CHANGEDSINCE {later})",
            "NOOP",
        ],
        DELIBERATE,
    )


def test_the_first_condstore_command_enables_it(servers):
    """RFC 7162 3.1: a FETCH of MODSEQ (or a SEARCH MODSEQ) enables CONDSTORE, and the
    first such command gets OK [HIGHESTMODSEQ] before its tagged reply."""
    compare(
        *servers,
        [
            "EXAMINE Status",
            "FETCH 1:2 (UID)",
            "FETCH 1:2 (UID MODSEQ)",
            "FETCH 1:2 (FLAGS)",
            "EXAMINE Status/Child",
            "SEARCH MODSEQ 1",
            "NOOP",
        ],
        DELIBERATE,
    )


def test_qresync_vanished_and_select(servers):
    compare(
        *servers,
        [
            "ENABLE QRESYNC",
            Step(
                "SELECT Qresync",
                {"validity": r"UIDVALIDITY (\d+)", "start": r"HIGHESTMODSEQ (\d+)"},
            ),
            "STORE 2,3 +FLAGS (\\Deleted)",
            "STORE 6 +FLAGS (\\Flagged)",
            "EXPUNGE",
            "UID FETCH 1:* (FLAGS) (CHANGEDSINCE {start} VANISHED)",
            "UID FETCH 3:7 (FLAGS) (CHANGEDSINCE {start} VANISHED)",
            "UNSELECT",
            "SELECT Qresync (QRESYNC ({validity} {start}))",
            "UNSELECT",
            "SELECT Qresync (QRESYNC ({validity} {start} 1:8))",
            "UNSELECT",
            "SELECT Qresync (QRESYNC ({validity} {start} 1:8 (1,5 1,5)))",
            "UNSELECT",
            "EXAMINE Qresync (QRESYNC (1 {start}))",  # a wrong UIDVALIDITY: no VANISHED
            "STORE 1 +FLAGS (\\Seen)",  # read-only: NO
            "UID EXPUNGE 1",
        ],
        DELIBERATE,
    )
