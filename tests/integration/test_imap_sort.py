"""SORT and UID SORT over real sockets (RFC 5256 section 3, SORT=DISPLAY RFC 5957, ESORT
RFC 5267): every sort key, REVERSE, ties in mailbox order, the DATE fallback to the
INTERNALDATE, base subjects, charsets, and the ESEARCH form of RETURN."""

from __future__ import annotations

import pytest

from tests.integration.imap_support import Raw, append, start

DAY = 86400.0
JAN_1 = 1704067200.0  # 2024-01-01 00:00 UTC


def mail(
    subject: str | None,
    sender: str,
    to: str,
    date: str | None,
    cc: str | None = None,
    body: str = "x\r\n",
) -> bytes:
    head = f"From: {sender}\r\nTo: {to}\r\n"
    if subject is not None:
        head += f"Subject: {subject}\r\n"
    if date is not None:
        head += f"Date: {date}\r\n"
    if cc is not None:
        head += f"Cc: {cc}\r\n"
    return (head + "\r\n" + body).encode()


TUE = "Tue, 2 Jan 2024 10:00:00 +0000"
# (subject, from, to, date, cc, size padding, internal date in days after Jan 1)
MESSAGES = [
    ("Re: [list] Fwd: Zebra", '"Zed" <zed@z.example>', "b@x", TUE, "c@x", 800, 3),
    ("apple", "Amy <amy@a.example>", "A@x", "Mon, 1 Jan 2024 12:00 +0200", None, 1600, 1),
    (
        "=?utf-8?q?=C3=84rger?=",
        "=?utf-8?q?=C3=96rjan?= <orjan@o.example>",
        "c@x",
        None,
        "a@x",
        1200,
        0,
    ),
    ("Banana (fwd)", "bob@b.example", "a@x", "not a date", "b@x", 0, 2),
    (None, "Carl <Carl@c.example>", "d@x", "Wed, 3 Jan 2024 10:00 +0000", None, 2000, 4),
    ("banana", "bob@b.example", "a@x", TUE, None, 400, 5),
]


@pytest.fixture
def server(start_server, server_cert):
    server = start(start_server, server_cert)
    for subject, sender, to, date, cc, pad, day in MESSAGES:
        data = mail(subject, sender, to, date, cc, "y" * pad + "\r\n")
        append(server, "alice@example.test", "INBOX", data, internaldate=JAN_1 + day * DAY)
    return server


def sort(raw: Raw, text: str) -> list[int]:
    untagged, tagged = raw.command(text)
    assert b" OK " in tagged, tagged
    (line,) = [line for line in untagged if line.startswith(b"* SORT")]
    return [int(n) for n in line.split()[2:]]


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ("ARRIVAL", [3, 2, 4, 1, 5, 6]),
        ("REVERSE ARRIVAL", [6, 5, 1, 4, 2, 3]),
        # message 4's Date cannot be parsed and 3 has none: their INTERNALDATEs stand in
        ("DATE", [3, 2, 1, 6, 4, 5]),
        ("SIZE", [4, 6, 1, 3, 2, 5]),
        ("REVERSE SIZE", [5, 2, 3, 1, 6, 4]),
        # i;unicode-casemap: "" (no subject) < APPLE < A\u0308RGER (decomposed Ä) < BANANA
        # = BANANA (base subjects, ties in mailbox order) < ZEBRA
        ("SUBJECT", [5, 2, 3, 4, 6, 1]),
        ("SUBJECT DATE", [5, 2, 3, 6, 4, 1]),
        ("SUBJECT REVERSE DATE", [5, 2, 3, 4, 6, 1]),
        ("FROM", [2, 4, 6, 5, 3, 1]),
        ("TO", [2, 4, 6, 1, 3, 5]),
        ("CC", [2, 5, 6, 3, 4, 1]),
        ("DISPLAYFROM", [2, 4, 6, 5, 3, 1]),
        ("REVERSE DISPLAYFROM", [1, 3, 5, 4, 6, 2]),
        ("DISPLAYTO", [2, 4, 6, 1, 3, 5]),
    ],
)
def test_sort_keys(raw, criteria, expected):
    assert sort(raw, f"SORT ({criteria}) UTF-8 ALL") == expected


def test_uid_sort_and_search_criteria(raw):
    assert sort(raw, "UID SORT (SUBJECT) US-ASCII ALL") == [5, 2, 3, 4, 6, 1]
    assert sort(raw, "SORT (REVERSE SIZE) UTF-8 FROM bob") == [6, 4]
    assert sort(raw, "SORT (ARRIVAL) UTF-8 SUBJECT nothing-matches") == []
    raw.command("STORE 2 +FLAGS (\\Seen)")
    assert sort(raw, "SORT (SUBJECT) UTF-8 UNSEEN") == [5, 3, 4, 6, 1]


def test_bad_charset_is_no(raw):
    _untagged, tagged = raw.command("SORT (SUBJECT) KOI8-R ALL")
    assert tagged.startswith(b"t1 NO [BADCHARSET"), tagged


@pytest.mark.parametrize(
    "text",
    [
        "SORT () UTF-8 ALL",
        "SORT (SUBJECT) UTF-8",
        "SORT (NAME) UTF-8 ALL",
        "SORT SUBJECT UTF-8 ALL",
    ],
)
def test_syntax_errors_are_bad(raw, text):
    _, tagged = raw.command(text)
    assert tagged.startswith(b"t1 BAD"), tagged


def test_capabilities(raw):
    untagged, _ = raw.command("CAPABILITY")
    caps = untagged[0].split()
    for name in (
        b"SORT",
        b"SORT=DISPLAY",
        b"THREAD=ORDEREDSUBJECT",
        b"THREAD=REFERENCES",
        b"ESORT",
    ):
        assert name in caps


def test_esort_return_options(raw):
    untagged, _tagged = raw.command("SORT RETURN (MIN MAX COUNT ALL) (SUBJECT) UTF-8 ALL", "e1")
    assert untagged == [b'* ESEARCH (TAG "e1") MIN 5 MAX 1 COUNT 6 ALL 5,2:4,6,1'], untagged
    untagged, _ = raw.command("UID SORT RETURN (COUNT) (ARRIVAL) UTF-8 ALL", "e2")
    assert untagged == [b'* ESEARCH (TAG "e2") UID COUNT 6']
    untagged, _ = raw.command("SORT RETURN () (REVERSE ARRIVAL) UTF-8 ALL", "e3")
    assert untagged == [b'* ESEARCH (TAG "e3") ALL 6,5,1,4,2:3']
    untagged, _ = raw.command("SORT RETURN (MIN) (ARRIVAL) UTF-8 SUBJECT nothing", "e4")
    assert untagged == [b'* ESEARCH (TAG "e4")']
