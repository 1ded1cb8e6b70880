"""The selected-mailbox view (sequence numbers and untagged updates) and the section and
structure writers, without sockets."""

from __future__ import annotations

import sys

from protocols.imap.fetch_items import Section
from protocols.imap.lexer import Reader
from protocols.imap.search_eval import FOLDS_TO_ASCII, structure_terms
from protocols.imap.search_keys import SearchParser
from protocols.imap.sections import (
    apply_partial,
    binary_bytes,
    decode_body,
    filter_header,
    section_bytes,
)
from protocols.imap.sequence import SequenceSet
from protocols.imap.structure import body_structure, envelope
from protocols.imap.view import MailboxView, Options
from stalwart_py import mime
from stalwart_py.store import MailboxChanges, MessageInfo


def info(uid: int, modseq: int = 1, flags: tuple[str, ...] = ()) -> MessageInfo:
    return MessageInfo(uid, modseq, frozenset(flags), 0.0, 100, uid)


def make_view(*uids: int) -> MailboxView:
    return MailboxView.create(1, "INBOX", 7, False, 10, max(uids, default=0) + 1, map(info, uids))


def test_sequence_numbers_and_selection():
    view = make_view(3, 5, 9, 12)
    assert view.seq_of(9) == 3 and view.seq_of(4) == 0
    assert view.select(SequenceSet(((2, 3),)), uid=False) == [5, 9]
    assert view.select(SequenceSet(((4, 10),)), uid=True) == [5, 9]
    view.saved = [5, 12, 99]
    assert view.select(SequenceSet(saved=True), uid=False) == [5, 12]


def test_views_of_one_snapshot_share_it_until_one_changes():
    """Sessions that select a mailbox in the same state share the snapshot's index; the
    first change a view takes (flags, new mail, expunge, \\Recent) copies it first."""
    from protocols.imap.cache import SnapshotCache
    from stalwart_py.store import Mailbox

    messages = tuple(info(uid) for uid in (1, 2, 3))
    head = Mailbox(1, 1, "INBOX", None, uidvalidity=7, uidnext=4, highestmodseq=10)
    cache = SnapshotCache()
    cache._store(head, messages)
    views = [
        MailboxView.create(1, "INBOX", 7, False, 10, 4, messages, index=cache.index(head, messages))
        for _ in range(4)
    ]
    assert all(v.messages is views[0].messages and v.uids is views[0].uids for v in views)
    flagged = MailboxChanges(11, 4, changed=(info(2, 11, ("\\Seen",)),), vanished=())
    views[0].apply(flagged, Options(), allow_expunge=True)
    gone = MailboxChanges(highestmodseq=12, uidnext=5, changed=(info(4, 12),), vanished=(1,))
    views[1].apply(gone, Options(), allow_expunge=True)
    views[2].mark_recent([3])
    assert views[0].messages[2].flags == {"\\Seen"} and views[0].uids == [1, 2, 3]
    assert views[1].uids == [2, 3, 4] and 1 not in views[1].messages
    assert "\\Recent" in views[2].messages[3].flags
    untouched = views[3]  # and the snapshot's index, which the next SELECT gets
    assert untouched.shared and untouched.uids == [1, 2, 3]
    assert all(m.flags == frozenset() for m in untouched.messages.values())
    assert cache.index(head, messages) == (untouched.messages, untouched.uids)


def test_changes_become_expunge_fetch_and_exists_in_that_order():
    view = make_view(1, 2, 3, 4)
    changes = MailboxChanges(
        highestmodseq=20,
        uidnext=7,
        changed=(info(3, 15, ("\\Seen",)), info(5, 16), info(6, 17, ("$Work",))),
        vanished=(2, 4, 99),
    )
    out = view.apply(changes, Options(), allow_expunge=True)
    assert out == (
        b"* 4 EXPUNGE\r\n* 2 EXPUNGE\r\n"
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work)\r\n"
        b"* 2 FETCH (UID 3 FLAGS (\\Seen))\r\n"
        b"* 4 EXISTS\r\n"
    )
    assert view.uids == [1, 3, 5, 6]
    assert (view.modseq, view.uidnext) == (20, 7)


def test_expunges_wait_while_sequence_numbers_are_in_use():
    view = make_view(1, 2, 3)
    changes = MailboxChanges(12, 5, (info(4, 12),), (2,))
    out = view.apply(changes, Options(), allow_expunge=False)
    assert out == b"* 4 EXISTS\r\n"  # numbering keeps message 2 until it can be told
    assert view.uids == [1, 2, 3, 4] and view.deferred == {2}
    out = view.apply(MailboxChanges(12, 5, (), ()), Options(), allow_expunge=True)
    assert out == b"* 2 EXPUNGE\r\n"
    assert view.uids == [1, 3, 4]


def test_qresync_clients_get_vanished_and_condstore_clients_modseq():
    view = make_view(1, 2, 3)
    options = Options(condstore=True, qresync=True)
    changes = MailboxChanges(30, 4, (info(1, 25, ("\\Flagged",)),), (2, 3))
    out = view.apply(changes, options, allow_expunge=True)
    assert out == b"* VANISHED 2:3\r\n* 1 FETCH (UID 1 FLAGS (\\Flagged) MODSEQ (25))\r\n"


def test_own_changes_are_not_reported_twice():
    view = make_view(1, 2)
    view.update([info(2, 11, ("\\Seen",))])  # our own STORE, already answered
    out = view.apply(
        MailboxChanges(11, 3, (info(2, 11, ("\\Seen",)),), ()), Options(), allow_expunge=True
    )
    assert out == b""


MESSAGE = (
    b"From: =?utf-8?q?J=C3=B6rg?= <jorg@example.org>\r\n"
    b"To: a@example.test, Friends: b@example.test, c@example.test;\r\n"
    b"Subject: Report\r\n"
    b"X-Long: one\r\n two\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="outer"\r\n'
    b"\r\n"
    b"preamble\r\n"
    b"--outer\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Gr=C3=BC=C3=9Fe\r\n"
    b"--outer\r\n"
    b"Content-Type: application/octet-stream; name=x.bin\r\n"
    b"Content-Disposition: attachment; filename=x.bin\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"AAEC/w==\r\n"
    b"--outer--\r\n"
)


def test_sections_are_slices_of_the_message():
    parsed = mime.parse_message(MESSAGE)
    header = section_bytes(MESSAGE, parsed, Section(text="HEADER"))
    assert header.startswith(b"From:") and header.endswith(b'boundary="outer"\r\n\r\n')
    assert section_bytes(MESSAGE, parsed, Section()) == MESSAGE
    assert section_bytes(MESSAGE, parsed, Section((1,))) == b"Gr=C3=BC=C3=9Fe"
    assert section_bytes(MESSAGE, parsed, Section((2,), "MIME")).startswith(
        b"Content-Type: application/octet-stream"
    )
    assert section_bytes(MESSAGE, parsed, Section((3,))) == b""
    assert section_bytes(MESSAGE, parsed, Section((1,), "HEADER")) == b""  # not a message
    fields = section_bytes(MESSAGE, parsed, Section((), "HEADER.FIELDS", ("subject", "X-LONG")))
    assert fields == b"Subject: Report\r\nX-Long: one\r\n two\r\n\r\n"
    others = filter_header(
        header, ("From", "To", "Subject", "X-Long", "MIME-Version"), exclude=True
    )
    assert others == b'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n'
    assert binary_bytes(MESSAGE, parsed, Section((1,))) == "Grüße".encode()
    assert binary_bytes(MESSAGE, parsed, Section((2,))) == b"\x00\x01\x02\xff"
    assert apply_partial(b"abcdef", (2, 3)) == b"cde"
    assert apply_partial(b"abcdef", (10, 3)) == b""
    assert decode_body(b"QUJD\r\nRA", "base64") == b"ABCD"  # missing padding tolerated


def test_envelope_and_bodystructure_writers():
    parsed = mime.parse_message(MESSAGE)
    assert envelope(parsed.envelope) == (
        b'(NIL "Report" (("=?utf-8?q?J=C3=B6rg?=" NIL "jorg" "example.org"))'
        b' (("=?utf-8?q?J=C3=B6rg?=" NIL "jorg" "example.org"))'
        b' (("=?utf-8?q?J=C3=B6rg?=" NIL "jorg" "example.org"))'
        b' ((NIL NIL "a" "example.test")(NIL NIL "Friends" NIL)(NIL NIL "b" "example.test")'
        b'(NIL NIL "c" "example.test")(NIL NIL NIL NIL)) NIL NIL NIL NIL)'
    )
    assert body_structure(parsed.body) == (
        b'(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 15 1 NIL NIL NIL NIL)'
        b'("APPLICATION" "OCTET-STREAM" ("NAME" "x.bin") NIL NIL "BASE64" 8 NIL'
        b' ("ATTACHMENT" ("FILENAME" "x.bin")) NIL NIL)'
        b' "MIXED" ("BOUNDARY" "outer") NIL NIL NIL)'
    )
    assert body_structure(parsed.body, extended=False) == (
        b'(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 15 1)'
        b'("APPLICATION" "OCTET-STREAM" ("NAME" "x.bin") NIL NIL "BASE64" 8) "MIXED")'
    )


def test_a_text_part_without_charset_says_us_ascii():
    """RFC 2045 5.2: text without a charset parameter is us-ascii; BODYSTRUCTURE says so
    (as Dovecot does: found by the differential tests), other parameters kept after it."""
    parsed = mime.parse_message(b"Content-Type: text/html; format=flowed\r\n\r\n<p>hi</p>")
    assert body_structure(parsed.body, extended=False) == (
        b'("TEXT" "HTML" ("CHARSET" "us-ascii" "FORMAT" "flowed") NIL NIL "7BIT" 9 1)'
    )
    parsed = mime.parse_message(b"Content-Type: application/pdf\r\n\r\nx")
    assert body_structure(parsed.body, extended=False).startswith(b'("APPLICATION" "PDF" NIL ')


def test_structure_terms_only_where_a_match_needs_them():
    def terms(text: str):
        return structure_terms(SearchParser(Reader(text.encode() + b"\r\n")).keys())

    assert terms("SUBJECT Zebra") == {"zebra", "=?", "\u1e9a"}  # folds to "a" and a half ring
    assert terms("UNSEEN FROM bob SUBJECT quarterly") == {"bob", "=?"}
    assert terms("SUBJECT strasse") == {
        "strasse",
        "=?",
        "\u1e9a",
        *"\u00df\u017f\u1e97\u1e9e\ufb05\ufb06",
    }
    assert terms("OR SUBJECT x FROM y") == {"x", "y", "=?", "\u1e99"}
    assert terms("OR SUBJECT a SEEN") is None  # a seen message matches without "a"
    assert terms("NOT SUBJECT a") is None
    assert terms('FROM "bob@example.org"') is None  # mailbox and host are stored apart
    assert terms('SUBJECT "say \\"hi\\""') is None  # JSON would escape the quotes
    assert terms("SUBJECT grüße") is None
    assert terms("BODY zebra") is None and terms("SENTON 1-Jan-2024") is None


def test_the_characters_that_fold_to_ascii_are_all_known():
    found = {
        chr(code)
        for code in range(0x80, sys.maxunicode + 1)
        if not 0xD800 <= code < 0xE000 and any(ord(c) < 0x80 for c in chr(code).casefold())
    }
    assert found == set(FOLDS_TO_ASCII)


def test_batches_bound_count_and_octets():
    view = make_view(1, 2, 3, 4, 5)  # info() gives every message 100 octets
    assert list(view.batches([1, 2, 3, 4, 5], count=2, octets=10_000)) == [[1, 2], [3, 4], [5]]
    assert list(view.batches([1, 2, 3, 4, 5], count=10, octets=250)) == [[1, 2], [3, 4], [5]]
    assert list(view.batches([1, 2], count=10, octets=50)) == [[1], [2]]  # alone if too big
    assert list(view.batches([], count=10, octets=50)) == []
