"""SEARCH against Dovecot: every search key of RFC 3501 6.4.4 / RFC 9051 6.4.4, ESEARCH's
RETURN options (RFC 4731) and SEARCHRES (RFC 5182), on the MIME corpus and on messages
made to tell each key apart (dates, sizes, flags, keywords, addresses)."""

from __future__ import annotations

import pytest

from tests.integration.mime_corpus import CORPUS
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

MAILBOX = "Search"
DELIBERATE = (
    HIGHESTMODSEQ_ALWAYS,
    KEYWORD_SEARCH_ADDS_NOTHING,
    Deliberate(
        r"^(UID )?SEARCH SENTBEFORE 4-Jan-2024$",
        r"^SEARCH",
        "A message without a Date header (message 3) has no sent date, so no SENTBEFORE, "
        "SENTON or SENTSINCE matches it (RFC 9051 6.4.4 speaks of 'the Date: header'); "
        "Dovecot takes 1970 for it. The same key on messages with a Date is compared.",
    ),
)


def made(n: int, subject: str, sender: str, date: str, body: str, extra: str = "") -> bytes:
    return (
        f"From: {sender}\r\nTo: Team <team@example.test>, dave@example.net\r\n"
        f"Cc: carol@example.net\r\nSubject: {subject}\r\nDate: {date}\r\n"
        f"Message-ID: <made{n}@example.org>\r\n{extra}\r\n{body}"
    ).encode()


MESSAGES = [
    # the corpus without its broken messages (their reading is a guess: see the FETCH tests)
    Message(CORPUS[0], "\\Seen", "03-Jan-2024 10:30:00 +0000"),
    Message(CORPUS[1], "\\Seen \\Answered", "04-Jan-2024 11:00:00 +0000"),
    Message(CORPUS[2], "", "05-Jan-2024 23:59:59 +0000"),
    Message(
        made(4, "Fourth", "Eve <eve@example.org>", "Sat, 6 Jan 2024 00:00:00 +0000", "4th.\r\n"),
        "\\Flagged $Forwarded",
        "06-Jan-2024 00:00:00 +0000",
    ),
    Message(
        made(5, "Fifth", "Eve <eve@example.org>", "Sat, 6 Jan 2024 12:00:00 +0000", "5th.\r\n"),
        "\\Draft",
        "06-Jan-2024 12:00:00 +0000",
    ),
    Message(
        made(
            6,
            "Budget meeting",
            "Ann Example <ann@example.org>",
            "Mon, 8 Jan 2024 09:00:00 +0000",
            "Let us talk about the budget.\r\n",
            "X-Priority: 1\r\n",
        ),
        "\\Seen \\Flagged Work",
        "08-Jan-2024 09:00:00 +0000",
    ),
    Message(
        made(
            7,
            "Re: Budget meeting",
            "Bob <bob@example.com>",
            "Tue, 9 Jan 2024 23:30:00 -0500",
            "Fine by me.\r\n" + "x" * 3000 + "\r\n",
            "In-Reply-To: <made6@example.org>\r\n",
        ),
        "\\Answered Work $Label1",
        "10-Jan-2024 04:30:00 +0000",
    ),
    Message(
        made(
            8,
            "=?UTF-8?Q?Gr=C3=BC=C3=9Fe?= zum Jahr",
            "=?UTF-8?Q?J=C3=B6rg?= <jorg@example.de>",
            "Wed, 10 Jan 2024 08:00:00 +0100",
            "Viele Gr\u00fc\u00dfe aus K\u00f6ln.\r\n",
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n",
        ),
        "\\Deleted",
        "10-Jan-2024 07:00:00 +0000",
    ),
    Message(
        made(
            9,
            "quarterly numbers",
            "ann@example.org",
            "Thu, 11 Jan 2024 12:00:00 +0000",
            "See =\r\nthe numbers: caf=C3=A9 au lait.\r\n",
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n",
        ),
        "\\Seen \\Draft \\Flagged",
        "11-Jan-2024 12:00:00 +0000",
    ),
]


@pytest.fixture(scope="module")
def servers(stalwart: InProcessServer, dovecot: Dovecot) -> tuple[tuple[str, int], ...]:
    ours, theirs = stalwart.address("imap"), ("127.0.0.1", dovecot.port)
    for address in (ours, theirs):
        append_all(address, MAILBOX, MESSAGES)
    return ours, theirs


# (Not compared: KEYWORD with another case than the keyword was stored with. Dovecot
# matches keywords case-insensitively, we match them exactly; see the report of issue 14.)
FLAG_KEYS = [
    "ALL",
    "ANSWERED",
    "UNANSWERED",
    "DELETED",
    "UNDELETED",
    "DRAFT",
    "UNDRAFT",
    "FLAGGED",
    "UNFLAGGED",
    "SEEN",
    "UNSEEN",
    "NEW",
    "OLD",
    "RECENT",
    "KEYWORD Work",
    "KEYWORD $Forwarded",
    "KEYWORD nothing",
    "UNKEYWORD Work",
]
DATE_KEYS = [
    "BEFORE 6-Jan-2024",
    "ON 6-Jan-2024",
    "SINCE 6-Jan-2024",
    "SINCE 10-Jan-2024",
    "ON 10-Jan-2024",
    "BEFORE 1-Jan-2000",
    "SINCE 1-Jan-2030",
    "SENTBEFORE 4-Jan-2024",
    'SENTBEFORE 4-Jan-2024 HEADER Date ""',
    "SENTON 4-Jan-2024",
    "SENTSINCE 9-Jan-2024",
    "SENTON 9-Jan-2024",
    "SENTON 10-Jan-2024",
    "SENTBEFORE 1-Jan-2030",
]
TEXT_KEYS = [
    "FROM ann",
    "FROM example.org",
    "FROM Bob",
    # (8-bit text without CHARSET is read as UTF-8 here, as IMAP4rev2 allows in quoted
    # strings; Dovecot, an IMAP4rev1 server, answers BAD: not compared)
    "FROM eve",
    "TO team",
    "TO alice@example.test",
    "TO Team",
    "CC carol",
    "CC ivan",
    "BCC hidden",
    "SUBJECT budget",
    'SUBJECT "Re: Budget"',
    "SUBJECT report",
    'SUBJECT ""',
    "BODY budget",
    "BODY numbers",
    'BODY "Second line"',
    "BODY JVBERi0",
    "TEXT budget",
    "TEXT carol",
    "TEXT Forwarded",
    'TEXT "X-Priority"',
    'HEADER X-Priority ""',
    "HEADER X-Priority 1",
    "HEADER In-Reply-To made6",
    "HEADER Message-ID nested",
    "HEADER Content-Type multipart",
    'HEADER X-None ""',
]
CHARSET_KEYS = [
    'CHARSET UTF-8 SUBJECT "Grüße"',
    'CHARSET UTF-8 BODY "Grüße"',
    'CHARSET UTF-8 BODY "café"',
    'CHARSET UTF-8 FROM "Jörg"',
    'CHARSET UTF-8 TEXT "Köln"',
    'CHARSET UTF-8 BODY "Hallö"',
    "CHARSET US-ASCII BODY budget",
]
OTHER_KEYS = [
    "LARGER 1000",
    "SMALLER 200",
    "LARGER 100000",
    "SMALLER 1",
    "UID 1:3",
    "UID 4:*",
    "UID 2,5,7",
    "UID *",
    "1:3",
    "4:*",
    "*",
    "2,9",
    "NOT SEEN",
    "NOT NOT SEEN",
    "OR SEEN FLAGGED",
    "OR (SEEN FLAGGED) DRAFT",
    "(SEEN UNFLAGGED)",
    "SEEN FLAGGED UNDRAFT",
    "OR OR SEEN DRAFT DELETED",
    "NOT (FROM ann OR SUBJECT budget SUBJECT report)",
    "UNDELETED UID 2:8 SMALLER 500",
    "1:* NOT 3",
    "UID 1:* NOT UID 3",
]
ERRORS = [
    "FOO",
    "BEFORE yesterday",
    "LARGER x",
    "CHARSET X-UNKNOWN-CHARSET BODY x",
    "UID",
    "(SEEN",
    "OR SEEN",
]


def test_every_key(servers):
    keys = FLAG_KEYS + DATE_KEYS + TEXT_KEYS + CHARSET_KEYS + OTHER_KEYS
    steps = [f"EXAMINE {MAILBOX}"]
    steps += [f"SEARCH {key}" for key in keys]
    steps += [f"UID SEARCH {key}" for key in keys[::3]]
    compare(*servers, steps, DELIBERATE)


def test_errors(servers):
    compare(
        *servers,
        [f"EXAMINE {MAILBOX}", *(f"SEARCH {key}" for key in ERRORS)],
        DELIBERATE,
    )


def test_esearch_return_options_and_searchres(servers):
    steps = [f"EXAMINE {MAILBOX}"]
    for criteria in ("ALL", "SEEN", "FLAGGED", "KEYWORD nothing", "4:*", "UID 2,5,7"):
        for options in ("", "MIN", "MAX", "COUNT", "ALL", "MIN MAX", "MIN MAX COUNT ALL"):
            steps.append(f"SEARCH RETURN ({options}) {criteria}")
            steps.append(f"UID SEARCH RETURN ({options}) {criteria}")
    steps += [
        "SEARCH RETURN (SAVE) FLAGGED",
        "FETCH $ (UID FLAGS)",
        "SEARCH $ SEEN",
        "SEARCH OR $ DRAFT",
        "UID SEARCH RETURN (SAVE MIN) SEEN",
        "FETCH $ UID",
        "SEARCH RETURN (SAVE COUNT) KEYWORD nothing",
        "SEARCH $",
        "UID SEARCH RETURN (SAVE) UID 3:5",
        "UID FETCH $ FLAGS",
        "SEARCH RETURN (BOGUS) ALL",
    ]
    compare(*servers, steps, DELIBERATE)
