"""SORT, THREAD and ESORT against Dovecot (RFC 5256, 5957, 5267): every sort key alone,
with REVERSE and combined, THREAD=REFERENCES and THREAD=ORDEREDSUBJECT, on messages made
to be hard to sort: list tags and Re:/Fwd: around subjects, encoded words, a missing Date,
equal keys (ties go by sequence number), reply chains with a missing parent."""

from __future__ import annotations

import pytest

from tests.interop.differential import (
    HIGHESTMODSEQ_ALWAYS,
    KEYWORD_SEARCH_ADDS_NOTHING,
    Deliberate,
    Message,
    append_all,
    compare,
)
from tests.support.dovecot import Dovecot
from tests.support.servers import InProcessServer

pytestmark = pytest.mark.interop

MAILBOX = "Sort"
DELIBERATE = (
    HIGHESTMODSEQ_ALWAYS,
    KEYWORD_SEARCH_ADDS_NOTHING,
    Deliberate(
        r"^SORT \((REVERSE )?(DISPLAY)?TO\) UTF-8 ALL$",
        r"^SORT ",
        "SORT TO takes the first address of To that is an address, passing over group "
        "markers (stalwart_py/mime/sortfields.py), so message 5 (To: Team: ;) sorts as "
        "having none; Dovecot sorts it by the group's name. The same sorts without message "
        "5 are compared.",
    ),
)


def made(n: int, subject: str, sender: str, to: str, date: str | None, **extra: str) -> Message:
    head = f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
    head += f"Date: {date}\r\n" if date else ""
    head += f"Message-ID: <s{n}@example.org>\r\n"
    head += "".join(f"{name.replace('_', '-')}: {value}\r\n" for name, value in extra.items())
    body = f"Message {n}.\r\n" + "line\r\n" * (n * 7 % 11)
    arrival = f"{10 + n % 9:02d}-Feb-2024 {n:02d}:00:00 +0000"
    return Message((head + "\r\n" + body).encode(), "", arrival)


MESSAGES = [
    made(
        1,
        "Budget",
        "Zoe <zoe@example.org>",
        "Bob <bob@example.com>",
        "Mon, 5 Feb 2024 10:00:00 +0000",
    ),
    made(
        2,
        "Re: Budget",
        "adam@example.org",
        "carol@example.net",
        "Mon, 5 Feb 2024 11:00:00 +0100",
        In_Reply_To="<s1@example.org>",
        References="<s1@example.org>",
    ),
    made(
        3,
        "Re: [list] Fwd: Budget",
        '"Bob, B." <bob@example.com>',
        "Zoe <zoe@example.org>",
        "Tue, 6 Feb 2024 09:00:00 -0500",
        References="<s1@example.org> <s2@example.org>",
    ),
    made(
        4,
        "[list] agenda (fwd)",
        "=?UTF-8?Q?=C3=89mile?= <emile@example.fr>",
        "adam@example.org",
        "Tue, 6 Feb 2024 09:00:00 -0500",
        Cc="zed@example.org",
    ),
    made(
        5,
        "=?UTF-8?Q?Re=3A_=C3=A9t=C3=A9?=",
        "carol@example.net",
        "Team: ;",
        None,
        Cc="Anna <anna@example.org>",
    ),
    made(
        6,
        "Agenda",
        "Carol <carol@example.net>",
        "bob@example.com",
        "Wed, 7 Feb 2024 08:00:00 +0000",
        In_Reply_To="<missing@example.org>",
    ),
    made(
        7,
        "RE: re: Agenda",
        "zoe@example.org",
        "Bob <bob@example.com>",
        "Wed, 7 Feb 2024 08:00:00 +0000",
        References="<missing@example.org> <s6@example.org>",
    ),
    made(
        8,
        "Fwd: [list] Re: agenda",
        "Adam <adam@example.org>",
        "=?UTF-8?Q?=C3=89mile?= <emile@example.fr>",
        "Thu, 8 Feb 2024 12:00:00 +0000",
        References="<s7@example.org>",
    ),
    made(9, "", "nobody@example.org", "nobody@example.org", "Thu, 1 Feb 2024 12:00:00 +0000"),
    made(
        10,
        "été",
        "Émile <emile@example.fr>",
        "anna@example.org",
        "Fri, 9 Feb 2024 12:00:00 +0000",
        In_Reply_To="<s5@example.org>",
    ),
]


@pytest.fixture(scope="module")
def servers(stalwart: InProcessServer, dovecot: Dovecot) -> tuple[tuple[str, int], ...]:
    ours, theirs = stalwart.address("imap"), ("127.0.0.1", dovecot.port)
    for address in (ours, theirs):
        append_all(address, MAILBOX, MESSAGES)
    return ours, theirs


KEYS = ["ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"]


def test_sort_by_every_key(servers):
    steps = [f"EXAMINE {MAILBOX}"]
    for key in KEYS:
        steps += [f"SORT ({key}) UTF-8 ALL", f"SORT (REVERSE {key}) UTF-8 ALL"]
    steps += [
        "SORT (TO) UTF-8 NOT 5",
        "SORT (REVERSE TO) UTF-8 NOT 5",
        "SORT (DISPLAYTO) UTF-8 NOT 5",
        "SORT (REVERSE DISPLAYTO) UTF-8 NOT 5",
        "SORT (SUBJECT DATE) UTF-8 ALL",
        "SORT (SUBJECT REVERSE DATE) US-ASCII ALL",
        "SORT (FROM SUBJECT REVERSE SIZE) UTF-8 ALL",
        "SORT (REVERSE ARRIVAL) UTF-8 SUBJECT agenda",
        "UID SORT (DATE) UTF-8 2:*",
        "UID SORT (REVERSE SUBJECT) UTF-8 UID 3:8",
        "SORT (DISPLAYFROM REVERSE DATE) UTF-8 NOT FROM adam",
        "SORT (DATE) UTF-8 KEYWORD nothing",
        "SORT (BOGUS) UTF-8 ALL",
        "SORT (DATE) X-UNKNOWN ALL",
        "SORT () UTF-8 ALL",
    ]
    compare(*servers, steps, DELIBERATE)


def test_esort_return_options(servers):
    steps = [f"EXAMINE {MAILBOX}"]
    for options in ("", "MIN", "MAX", "COUNT", "ALL", "MIN MAX COUNT ALL"):
        steps.append(f"SORT RETURN ({options}) (SUBJECT) UTF-8 ALL")
        steps.append(f"UID SORT RETURN ({options}) (REVERSE DATE) UTF-8 2:9")
    compare(*servers, steps, DELIBERATE)


def test_thread_references_and_orderedsubject(servers):
    steps = [f"EXAMINE {MAILBOX}"]
    for algorithm in ("REFERENCES", "ORDEREDSUBJECT"):
        steps += [
            f"THREAD {algorithm} UTF-8 ALL",
            f"UID THREAD {algorithm} UTF-8 ALL",
            f"THREAD {algorithm} UTF-8 NOT SUBJECT budget",
            f"THREAD {algorithm} US-ASCII 2:8",
        ]
    steps += ["THREAD BOGUS UTF-8 ALL", "THREAD REFERENCES X-UNKNOWN ALL"]
    compare(*servers, steps, DELIBERATE)
