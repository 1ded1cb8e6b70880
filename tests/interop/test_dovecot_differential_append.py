"""APPEND, MULTIAPPEND (RFC 3502) and CATENATE (RFC 4469) against Dovecot: the same
appends, refusals and URL forms on both servers, then what was stored, fetched back; and
the ENVELOPE of raw UTF-8 headers for a session that enabled UTF8=ACCEPT (RFC 6855)."""

from __future__ import annotations

import pytest

from tests.integration.imap_support import Raw
from tests.integration.mime_corpus import CORPUS
from tests.interop.differential import (
    HIGHESTMODSEQ_ALWAYS,
    LAST_LINE_COUNTS,
    Deliberate,
    Message,
    Step,
    append_all,
    compare,
)
from tests.support.dovecot import Dovecot
from tests.support.servers import InProcessServer

pytestmark = pytest.mark.interop

MAILBOX = '"Appended mail"'  # quoted in commands, percent-encoded in URLs
URL_BOX = "Appended%20mail"
SEED = (
    b"From: Bob <bob@example.org>\r\nTo: alice@example.test\r\nSubject: Seed\r\n"
    b"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <seed@example.org>\r\n"
    b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain\r\n\r\nFirst part.\r\n"
    b"--b\r\nContent-Type: text/plain\r\n\r\nSecond part.\r\n--b--\r\n"
)


def message(n: int) -> bytes:
    return (
        f"From: Carol <carol@example.net>\r\nTo: alice@example.test\r\nSubject: Multi {n}\r\n"
        f"Date: Tue, 2 Jan 2024 1{n}:00:00 +0000\r\nMessage-ID: <multi{n}@example.net>\r\n"
        f"\r\nBody {n}.\r\n"
    ).encode()


def literal(data: bytes) -> str:
    """A LITERAL+ literal inside a Step's text (braces doubled for str.format)."""
    return "{{" + f"{len(data)}+" + "}}\r\n" + data.decode()


@pytest.fixture(scope="module")
def servers(stalwart: InProcessServer, dovecot: Dovecot) -> tuple[tuple[str, int], ...]:
    ours, theirs = stalwart.address("imap"), ("127.0.0.1", dovecot.port)
    for address in (ours, theirs):
        with Raw(address) as client:
            client.login()
            assert b"c OK" in client.command(f"CREATE {MAILBOX}", "c")[1]
    return ours, theirs


def select_once(address: tuple[str, int]) -> None:
    """SELECT in a session of its own, so that \\Recent goes there (RFC 3501 2.3.2)."""
    with Raw(address) as client:
        client.login()
        assert client.command(f"SELECT {MAILBOX}", "s")[1].startswith(b"s OK")


def test_append_multiappend_and_catenate_answers_and_results(servers):
    header_url = f"/{URL_BOX};UIDVALIDITY={{uv}}/;UID=1/;SECTION=HEADER"
    new_text = b"\r\nA new body.\r\n"
    appends = [
        Step(f"STATUS {MAILBOX} (UIDVALIDITY)", capture={"uv": r"UIDVALIDITY (\d+)"}),
        Step(f'APPEND {MAILBOX} (\\Seen) "01-Jan-2024 12:00:00 +0000"', literal=SEED),
        # three messages, each with its options, in one command
        f'APPEND {MAILBOX} "01-Jan-2024 13:00:00 +0000" {literal(message(1))}'
        f' (\\Flagged $Work) "02-Jan-2024 11:00:00 +0000" {literal(message(2))}'
        f' "03-Jan-2024 12:00:00 +0000" {literal(message(3))}',
        # (A bad date or an unknown \\-flag in a later message is not compared: Dovecot
        # answers BAD as soon as it reads it and takes the rest of the command, LITERAL+
        # literals included, for new commands; test_imap_multiappend has ours. Dovecot also
        # takes "31-Feb-2024", which we refuse as a date that does not exist.)
        f"APPEND Nowhere {literal(message(4))} {literal(message(5))}",
        f"STATUS {MAILBOX} (MESSAGES UIDNEXT)",
        # CATENATE: the seed's header and a new body; parts and partials of it
        f'APPEND {MAILBOX} CATENATE (URL "{header_url}" TEXT {literal(new_text)})',
        f'APPEND {MAILBOX} (\\Seen) CATENATE (URL "/{URL_BOX}/;UID=1/;SECTION=1" '
        f'TEXT {literal(b" and ")} URL "/{URL_BOX}/;UID=1/;SECTION=2/;PARTIAL=0.6" '
        f'URL "/{URL_BOX}/;UID=2/;SECTION=HEADER.FIELDS%20(SUBJECT)")',
        # a CATENATE inside a MULTIAPPEND
        f"APPEND {MAILBOX} {literal(message(6))} CATENATE "
        f'(URL "/{URL_BOX}/;UID=3" TEXT {literal(b"--")})',
        # URLs that cannot be resolved: NO [BADURL url], nothing stored
        f'APPEND {MAILBOX} CATENATE (URL "/{URL_BOX};UIDVALIDITY=1/;UID=1")',
        f'APPEND {MAILBOX} CATENATE (URL "/{URL_BOX}/;UID=99" TEXT {literal(b"x")})',
        f'APPEND {MAILBOX} CATENATE (URL "/Nowhere/;UID=1")',
        f'APPEND {MAILBOX} {literal(message(7))} CATENATE (URL "/{URL_BOX}/;UID=98")',
        f"STATUS {MAILBOX} (MESSAGES UIDNEXT)",
    ]
    compare(*servers, appends)
    for address in servers:
        select_once(address)
    compare(
        *servers,
        [
            f"EXAMINE {MAILBOX}",
            "UID FETCH 1:4 (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)",
            "UID FETCH 5:* (FLAGS RFC822.SIZE ENVELOPE)",  # dated "now", by each server
            "UID FETCH 1:* BODY.PEEK[]",
        ],
        # HIGHESTMODSEQ_ALWAYS's reason; its pattern takes a mailbox name without spaces
        (Deliberate(r"^EXAMINE ", r"^OK \[HIGHESTMODSEQ ", HIGHESTMODSEQ_ALWAYS.reason),),
    )


def test_an_enabled_utf8_session_gets_the_raw_header_text(servers):
    """With UTF8=ACCEPT enabled our ENVELOPE carries the header's raw UTF-8, as Dovecot's
    does (Dovecot 2.3 sends it to every session: it has no UTF8=ACCEPT and ignores the
    ENABLE)."""
    data = CORPUS[1]
    assert not data.isascii()
    for address in servers:
        append_all(address, "Utf8", [Message(data)])
    compare(
        *servers,
        ["ENABLE UTF8=ACCEPT", "EXAMINE Utf8", "FETCH 1 (ENVELOPE BODYSTRUCTURE)"],
        (
            HIGHESTMODSEQ_ALWAYS,
            LAST_LINE_COUNTS,
            Deliberate(
                r"^ENABLE",
                r"^ENABLED",
                "We have UTF8=ACCEPT (RFC 6855) and say so; Dovecot 2.3 enables nothing.",
            ),
        ),
    )
