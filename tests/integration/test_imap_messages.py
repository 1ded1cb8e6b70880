"""Commands on messages over real sockets: STORE (+/-FLAGS, .SILENT, UNCHANGEDSINCE), COPY
and MOVE by UID and by sequence number (COPYUID), EXPUNGE, UID EXPUNGE, CLOSE, UNSELECT,
CHECK, and SEARCH with every kind of key, CHARSET, ESEARCH return options and SAVE."""

from __future__ import annotations

import asyncio
import re

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

DAY = 86400.0
JAN_1 = 1704067200.0  # 2024-01-01 00:00 UTC


@pytest.fixture
def server(start_server, server_cert):
    server = start(start_server, server_cert)
    bodies = [
        message("Meeting on Monday", "Agenda: budget.\r\n"),
        message("Re: Meeting on Monday", "Count me in.\r\n", sender="carol@example.net"),
        (
            b"From: =?UTF-8?Q?J=C3=B6rg?= <jorg@example.de>\r\nTo: alice@example.test\r\n"
            b"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\nDate: Fri, 5 Jan 2024 08:00:00 +0100\r\n"
            b"X-Priority: 1\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\nU2Now7ZuZSBHcsO8w59lIGF1cyBLw7ZsbiE=\r\n"
        ),
        message("Invoice 42", "Please pay " + "x" * 5000 + "\r\n", sender="billing@shop.example"),
    ]
    flags = [("\\Seen",), ("\\Seen", "\\Answered"), (), ("\\Flagged", "$Invoice")]
    for index, (data, flag) in enumerate(zip(bodies, flags, strict=True)):
        append(server, USER, "INBOX", data, flags=frozenset(flag), internaldate=JAN_1 + index * DAY)
    return server


def search(raw: Raw, criteria: str, uid: bool = False) -> list[int]:
    untagged, tagged = raw.command(("UID SEARCH " if uid else "SEARCH ") + criteria)
    assert tagged.endswith(b"SEARCH completed"), tagged
    (line,) = [line for line in untagged if line.startswith(b"* SEARCH")]
    return [int(n) for n in line.split()[2:]]


def test_store_variants(raw):
    untagged, tagged = raw.command("STORE 1:2 +FLAGS (\\Flagged Work)")
    assert tagged == b"t1 OK STORE completed"
    assert untagged == [
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Invoice Work)",
        b"* 1 FETCH (FLAGS (\\Flagged \\Seen Work))",
        b"* 2 FETCH (FLAGS (\\Answered \\Flagged \\Seen Work))",
    ]
    assert raw.command("STORE 1 -FLAGS.SILENT (Work)")[0] == []
    assert raw.command("UID STORE 3 FLAGS (\\Draft)")[0] == [b"* 3 FETCH (UID 3 FLAGS (\\Draft))"]
    assert raw.command("STORE 1 +FLAGS (\\Recent)")[0] == [
        b"* 1 FETCH (FLAGS (\\Flagged \\Seen))"  # \Recent is the server's: ignored
    ]
    assert raw.command("STORE 1 +FLAGS (\\Bogus)")[1] == b"t1 BAD Unknown system flag \\Bogus"
    assert raw.command("FETCH 1:* FLAGS")[0] == [
        b"* 1 FETCH (FLAGS (\\Flagged \\Seen))",
        b"* 2 FETCH (FLAGS (\\Answered \\Flagged \\Seen Work))",
        b"* 3 FETCH (FLAGS (\\Draft))",
        b"* 4 FETCH (FLAGS (\\Flagged $Invoice))",
    ]


def test_conditional_store(raw):
    untagged, _ = raw.command("FETCH 1:4 (MODSEQ)")
    assert untagged[0].startswith(b"* OK [HIGHESTMODSEQ ")  # the first enabling command
    modseqs = [int(re.search(rb"MODSEQ \((\d+)\)", line).group(1)) for line in untagged[1:]]
    highest = max(modseqs)
    raw.command("STORE 2 +FLAGS.SILENT ($Later)")  # now message 2 changed after `highest`
    untagged, tagged = raw.command(f"STORE 1:3 (UNCHANGEDSINCE {highest}) +FLAGS (\\Deleted)")
    assert tagged == b"t1 OK [MODIFIED 2] Some messages were modified since"
    assert [line.split(b" FETCH")[0] for line in untagged] == [b"* 1", b"* 3"]
    assert all(b"MODSEQ (" in line for line in untagged)  # CONDSTORE is on now
    untagged, _ = raw.command("UID STORE 2 (UNCHANGEDSINCE 1) +FLAGS.SILENT (x)")
    assert untagged == []
    untagged, _ = raw.command("STORE 4 +FLAGS.SILENT (y)")
    assert re.fullmatch(rb"\* 4 FETCH \(MODSEQ \(\d+\)\)", untagged[-1])  # RFC 7162 3.1.3


def test_copy_and_move_report_copyuid(raw):
    untagged, tagged = raw.command("COPY 1:2 Archive")
    match = re.fullmatch(rb"t1 OK \[COPYUID (\d+) 1:2 1:2\] COPY completed", tagged)
    assert match is not None and untagged == []
    assert raw.command("COPY 1 Nope")[1] == b"t1 NO [TRYCREATE] No mailbox Nope"
    untagged, tagged = raw.command("UID MOVE 2:3 Archive")
    assert re.fullmatch(rb"\* OK \[COPYUID \d+ 2:3 3:4\] Moved", untagged[0])
    assert untagged[1:] == [b"* 3 EXPUNGE", b"* 2 EXPUNGE"]
    assert tagged == b"t1 OK UID MOVE completed"
    untagged, _ = raw.command("STATUS Archive (MESSAGES UIDNEXT)")
    assert untagged == [b'* STATUS "Archive" (MESSAGES 4 UIDNEXT 5)']
    assert search(raw, "ALL") == [1, 2]


def test_move_by_sequence_number(raw):
    untagged, tagged = raw.command("MOVE 1,3 Archive")
    assert re.fullmatch(rb"\* OK \[COPYUID \d+ 1,3 1:2\] Moved", untagged[0])
    assert untagged[1:] == [b"* 3 EXPUNGE", b"* 1 EXPUNGE"]
    assert tagged == b"t1 OK MOVE completed"
    assert raw.command("FETCH 1:* (UID)")[0] == [b"* 1 FETCH (UID 2)", b"* 2 FETCH (UID 4)"]
    assert raw.command("MOVE 3 Archive") == (  # there is no message 3 now
        [],
        b"t1 BAD Message sequence number out of range (there are 2 messages)",
    )
    assert raw.command("MOVE 1 Nope")[1] == b"t1 NO [TRYCREATE] No mailbox Nope"
    untagged, tagged = raw.command("MOVE 2 Archive")  # the number, now, of UID 4
    assert re.fullmatch(rb"\* OK \[COPYUID \d+ 4 3\] Moved", untagged[0])
    assert untagged[1:] == [b"* 2 EXPUNGE"]
    raw.command("SELECT Archive")
    assert raw.command("FETCH 1:* (UID FLAGS)")[0] == [  # flags move with the messages
        # moved messages are new in Archive: \\Recent to the first session to select it
        b"* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent))",
        b"* 2 FETCH (UID 2 FLAGS (\\Recent))",
        b"* 3 FETCH (UID 3 FLAGS (\\Flagged \\Recent $Invoice))",
    ]


def test_expunge_forms_close_and_unselect(raw):
    raw.command("STORE 1,3,4 +FLAGS.SILENT (\\Deleted)")
    untagged, tagged = raw.command("UID EXPUNGE 3:4")
    assert untagged == [b"* 4 EXPUNGE", b"* 3 EXPUNGE"]
    assert tagged == b"t1 OK UID EXPUNGE completed"
    assert raw.command("CHECK")[1] == b"t1 OK CHECK completed"
    assert raw.command("UNSELECT")[1] == b"t1 OK UNSELECT completed"
    untagged, _ = raw.command("SELECT INBOX")
    assert b"* 2 EXISTS" in untagged  # UNSELECT expunged nothing
    untagged, _ = raw.command("EXPUNGE")
    assert untagged == [b"* 1 EXPUNGE"]
    raw.command("STORE 1 +FLAGS.SILENT (\\Deleted)")
    untagged, tagged = raw.command("CLOSE")
    assert (untagged, tagged) == ([], b"t1 OK CLOSE completed")  # expunges silently
    assert raw.command("FETCH 1 FLAGS")[1].startswith(b"t1 BAD")
    untagged, _ = raw.command("STATUS INBOX (MESSAGES)")
    assert untagged == [b'* STATUS "INBOX" (MESSAGES 0)']


def test_search_keys(raw):
    assert search(raw, "ALL") == [1, 2, 3, 4]
    assert search(raw, "SEEN") == [1, 2]
    assert search(raw, "UNSEEN UNANSWERED") == [3, 4]
    assert search(raw, "ANSWERED") == [2]
    assert search(raw, "FLAGGED KEYWORD $Invoice") == [4]
    assert search(raw, "UNKEYWORD $Invoice NOT DELETED UNDRAFT") == [1, 2, 3]
    assert search(raw, 'SUBJECT "meeting"') == [1, 2]
    assert search(raw, 'SUBJECT "grüße"') == [3]  # RFC 2047 decoded, case-insensitive
    assert search(raw, "SUBJECT GRÜSSE") == [3]  # full Unicode case folding: ß is ss
    assert search(raw, "FROM carol") == [2]
    assert search(raw, "FROM jörg") == [3]
    assert search(raw, "TO alice@example.test NOT FROM billing") == [1, 2, 3]
    assert search(raw, "CC anyone") == []
    assert search(raw, "HEADER X-Priority 1") == [3]
    assert search(raw, 'HEADER X-Priority ""') == [3]
    assert search(raw, "BODY budget") == [1]
    assert search(raw, "BODY KÖLN") == [3]  # base64 and UTF-8 undone
    assert search(raw, "TEXT Invoice") == [4]
    assert search(raw, "LARGER 1000") == [4]
    assert search(raw, "SMALLER 1000") == [1, 2, 3]
    assert search(raw, "BEFORE 2-Jan-2024") == [1]
    assert search(raw, "ON 2-Jan-2024") == [2]
    assert search(raw, "SINCE 3-Jan-2024") == [3, 4]
    assert search(raw, "SENTON 5-Jan-2024") == [3]
    assert search(raw, "SENTBEFORE 2-Jan-2024") == [1, 2, 4]
    assert search(raw, "SENTSINCE 5-Jan-2024") == [3]
    assert search(raw, "OR ANSWERED FLAGGED") == [2, 4]
    assert search(raw, "NOT (SEEN FROM bob@example.org)") == [2, 3, 4]
    assert search(raw, "2:* UID 1:3") == [2, 3]
    assert search(raw, "3:4", uid=True) == [3, 4]
    assert search(raw, "RECENT") == [] and search(raw, "OLD") == [1, 2, 3, 4]
    assert search(raw, "CHARSET UTF-8 SUBJECT {6}\r\nGrüße".replace("{6}", "{7}")) == [3]
    _, tagged = raw.command("SEARCH CHARSET ISO-8859-5 ALL")
    # RFC 9051 6.4.4: an unknown charset is "a tagged NO response (not a BAD)"
    assert tagged == b"t1 NO [BADCHARSET (UTF-8 US-ASCII)] unsupported charset ISO-8859-5"


def test_search_bcc_draft_undeleted_unflagged(server, raw):
    draft = (
        b"From: alice@example.test\r\nTo: bob@example.org\r\n"
        b"Bcc: Hidden Reader <hidden@example.net>\r\nSubject: unsent\r\n\r\nDraft.\r\n"
    )
    append(server, USER, "INBOX", draft, flags=frozenset({"\\Draft", "\\Deleted"}))
    assert raw.command("NOOP")[0] == [b"* 5 EXISTS"]
    assert search(raw, "BCC hidden@example.net") == [5]
    assert search(raw, 'BCC "hidden reader"') == [5]  # the display name is in the envelope
    assert search(raw, "BCC bob@example.org") == []  # a To address is not a Bcc one
    assert search(raw, "DRAFT") == [5]
    assert search(raw, "UNDELETED") == [1, 2, 3, 4]
    assert search(raw, "UNFLAGGED") == [1, 2, 3, 5]
    raw.command("STORE 4 -FLAGS.SILENT (\\Flagged)")
    raw.command("STORE 5 -FLAGS.SILENT (\\Deleted)")
    assert search(raw, "UNFLAGGED UNDELETED") == [1, 2, 3, 4, 5]
    assert search(raw, "UNFLAGGED UNDELETED NOT DRAFT") == [1, 2, 3, 4]


def test_header_search_folds_unicode_in_raw_utf8_headers(server, raw):
    append(server, USER, "INBOX", "Subject: Straße gesperrt\r\n\r\nx".encode())
    assert raw.command("NOOP")[0] == [b"* 5 EXISTS"]
    assert search(raw, "SUBJECT STRASSE") == [5]  # ß folds to ss; the pre-filter keeps it
    assert search(raw, "SUBJECT gesperrt") == [5]


def test_esearch_save_and_modseq(raw):
    untagged, _ = raw.command("SEARCH RETURN (MIN MAX COUNT ALL) SEEN", "s1")
    assert untagged == [b'* ESEARCH (TAG "s1") MIN 1 MAX 2 COUNT 2 ALL 1:2']
    untagged, _ = raw.command("UID SEARCH RETURN () UNSEEN", "s2")
    assert untagged == [b'* ESEARCH (TAG "s2") UID ALL 3:4']
    untagged, _ = raw.command("SEARCH RETURN (COUNT) DELETED", "s3")
    assert untagged == [b'* ESEARCH (TAG "s3") COUNT 0']
    untagged, _ = raw.command("SEARCH RETURN (SAVE) FLAGGED")
    assert untagged == []
    assert raw.command("FETCH $ (UID)")[0] == [b"* 4 FETCH (UID 4)"]
    assert search(raw, "OR $ ANSWERED") == [2, 4]
    untagged, _ = raw.command("SEARCH MODSEQ 1")
    assert re.fullmatch(rb"\* OK \[HIGHESTMODSEQ \d+\] Highest", untagged[0])  # enables CONDSTORE
    assert re.fullmatch(rb"\* SEARCH 1 2 3 4 \(MODSEQ \d+\)", untagged[1])
    raw.command("ENABLE IMAP4rev2")
    untagged, _ = raw.command("SEARCH SEEN", "s4")
    assert untagged == [b'* ESEARCH (TAG "s4") ALL 1:2']


def test_aioimaplib_store_search_copy(server):
    async def run() -> None:
        host, port = server.address("imap")
        client = aioimaplib.IMAP4(host, port, timeout=20)
        await client.wait_hello_from_server()
        await client.login(USER, PASSWORD)
        await client.select("INBOX")
        response = await client.store("3", "+FLAGS", "(\\Seen)")
        assert response.result == "OK"
        assert response.lines[0] == b"3 FETCH (FLAGS (\\Seen))"
        response = await client.search("UNSEEN")
        assert response.lines[0] == b"4"
        response = await client.uid("copy", "1:2", "Trash")
        assert response.result == "OK" and b"[COPYUID " in response.lines[-1]
        response = await client.uid("fetch", "1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert response.lines[1] == bytearray(b"Subject: Meeting on Monday\r\n\r\n")
        await client.logout()

    asyncio.run(run())
