"""THREAD and UID THREAD over real sockets (RFC 5256): REFERENCES from Message-ID,
In-Reply-To and References kept by the store, ORDEREDSUBJECT from base subjects, search
criteria, charsets and the empty answer."""

from __future__ import annotations

import pytest

from tests.integration.imap_support import Raw, append, start

JAN_1 = 1704067200.0


def mail(number: int, subject: str, headers: str = "", day: int | None = None) -> bytes:
    date = f"Date: {1 + (number if day is None else day)} Jan 2024 10:00:00 +0000\r\n"
    return (
        f"From: a@x\r\nSubject: {subject}\r\n{date}Message-ID: <m{number}@x>\r\n{headers}"
        "\r\nbody\r\n"
    ).encode()


@pytest.fixture
def raw(start_server, server_cert):
    server = start(start_server, server_cert)
    messages = [
        mail(1, "Plans"),
        mail(2, "Re: Plans", "In-Reply-To: <m1@x>\r\n"),
        mail(3, "Other"),
        mail(4, "Re: Plans", "References: <m1@x> <m2@x>\r\n"),
        mail(5, "Re: [list] Plans", "References: <m1@x>\r\n"),
        mail(6, "Other (fwd)"),  # no references: gathered by subject under 3
        mail(7, "Lost", "References: <gone@x>\r\n"),
        mail(8, "Lost too", "References: <gone@x>\r\n"),
    ]
    for index, data in enumerate(messages):
        append(server, "alice@example.test", "INBOX", data, internaldate=JAN_1 + index)
    with Raw(server) as raw:
        raw.login()
        raw.command("SELECT INBOX")
        raw.command("STORE 1:4 +FLAGS (\\Seen)")
        yield raw


def thread(raw: Raw, text: str) -> bytes:
    untagged, tagged = raw.command(text)
    assert b" OK " in tagged, tagged
    (line,) = [line for line in untagged if line.startswith(b"* THREAD")]
    return line


def test_references(raw):
    assert thread(raw, "THREAD REFERENCES UTF-8 ALL") == (b"* THREAD (1 (2 4)(5))(3 6)((7)(8))")


def test_uid_thread_and_search_criteria(raw):
    assert thread(raw, "UID THREAD REFERENCES US-ASCII UNSEEN") == b"* THREAD (5)(6)((7)(8))"
    assert thread(raw, "THREAD REFERENCES UTF-8 SUBJECT nothing") == b"* THREAD"


def test_ordered_subject(raw):
    # base subjects: Lost (7), Lost too (8), Other (3, 6), Plans (1, 2, 4, 5)
    assert thread(raw, "THREAD ORDEREDSUBJECT UTF-8 ALL") == (b"* THREAD (1 (2)(4)(5))(3 6)(7)(8)")


def test_errors(raw):
    _, tagged = raw.command("THREAD REFERENCES KOI8-R ALL")
    assert tagged.startswith(b"t1 NO [BADCHARSET"), tagged
    _, tagged = raw.command("THREAD NOSUCH UTF-8 ALL")
    assert tagged.startswith(b"t1 BAD"), tagged
    _, tagged = raw.command("THREAD REFERENCES UTF-8")
    assert tagged.startswith(b"t1 BAD"), tagged
