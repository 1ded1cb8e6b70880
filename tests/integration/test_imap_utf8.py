"""UTF8=ACCEPT (RFC 6855) over real sockets: ENABLE, mailbox names in raw UTF-8 in CREATE,
LIST, STATUS and SELECT (modified UTF-7 for a session that did not enable it), APPEND in the
UTF8 form, the ENVELOPE of a message with raw UTF-8 headers as it is for an enabled session
and in encoded words for another, and SEARCH with CHARSET UTF-8 in both."""

from __future__ import annotations

import re
from email.header import decode_header, make_header

import pytest

from tests.integration.imap_support import Raw, parse_data, start

MESSAGE = (
    "From: Jörg Müller <jorg@bücher.example>\r\nTo: alice@example.test\r\n"
    "Subject: Grüße aus Köln\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
    "Message-ID: <utf8@example.de>\r\nMIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n\r\nHallo aus Köln.\r\n"
).encode()


@pytest.fixture
def server(start_server, server_cert):
    return start(start_server, server_cert)


def enabled(server) -> Raw:
    raw = Raw(server)
    raw.login()
    untagged, tagged = raw.command("ENABLE UTF8=ACCEPT", "e")
    assert untagged == [b"* ENABLED UTF8=ACCEPT"]
    assert tagged == b"e OK ENABLE completed"
    return raw


def envelope_of(raw: Raw, uid: int) -> list:
    untagged, tagged = raw.command(f"UID FETCH {uid} ENVELOPE", "f")
    assert tagged.startswith(b"f OK"), tagged
    (line,) = untagged
    items = parse_data(line[line.index(b"(") :])[0]
    return items[items.index(b"ENVELOPE") + 1]


def test_capability_and_mailbox_names_in_utf8(server):
    with enabled(server) as raw:
        untagged, _ = raw.command("CAPABILITY", "c")
        assert b"UTF8=ACCEPT" in untagged[0].split()
        assert raw.command('CREATE "Répertoire/Über"'.encode(), "c")[1] == b"c OK CREATE completed"
        # raw UTF-8 (as a literal: 8-bit octets are never quoted by this server)
        untagged, _ = raw.command('LIST "" "R*"', "l")
        assert [parse_data(line)[-1] for line in untagged] == [
            "Répertoire".encode(),
            "Répertoire/Über".encode(),
        ]
        assert [parse_data(line)[2] for line in untagged] == [
            [b"\\HasChildren"],
            [b"\\HasNoChildren"],
        ]
        untagged, tagged = raw.command('STATUS "Répertoire/Über" (MESSAGES)'.encode(), "s")
        assert parse_data(untagged[0])[2:] == ["Répertoire/Über".encode(), [b"MESSAGES", 0]]
        _, tagged = raw.command('SELECT "Répertoire"'.encode(), "s")
        assert tagged == b"s OK [READ-WRITE] SELECT completed"
    with Raw(server) as raw:  # without ENABLE: modified UTF-7 (RFC 3501 5.1.3)
        raw.login()
        untagged, _ = raw.command('LIST "" "R*"', "l")
        assert untagged == [
            b'* LIST (\\HasChildren) "/" "R&AOk-pertoire"',
            b'* LIST (\\HasNoChildren) "/" "R&AOk-pertoire/&ANw-ber"',
        ]


def test_utf8_append_and_the_envelope_for_each_kind_of_session(server):
    with enabled(server) as raw:
        raw.send(b"a APPEND INBOX (\\Seen) UTF8 (~{%d+}\r\n%s)\r\n" % (len(MESSAGE), MESSAGE))
        _, tagged = raw.until("a")
        assert re.fullmatch(rb"a OK \[APPENDUID \d+ 1\] APPEND completed", tagged), tagged
        raw.command("SELECT INBOX", "s")
        envelope = envelope_of(raw, 1)
        assert envelope[1] == "Grüße aus Köln".encode()
        assert envelope[2] == [["Jörg Müller".encode(), None, b"jorg", "bücher.example".encode()]]
        untagged, _ = raw.command("UID FETCH 1 BODY.PEEK[]", "b")
        assert untagged[0].endswith(MESSAGE + b")")  # stored as sent
    with Raw(server) as raw:  # an IMAP4rev1 client without UTF8=ACCEPT: encoded words
        raw.login()
        raw.command("SELECT INBOX", "s")
        envelope = envelope_of(raw, 1)
        for value in (envelope[1], envelope[2][0][0], envelope[2][0][3]):
            assert value.isascii()
        assert str(make_header(decode_header(envelope[1].decode()))) == "Grüße aus Köln"
        assert str(make_header(decode_header(envelope[2][0][0].decode()))) == "Jörg Müller"
        assert envelope[2][0][2:] == [b"jorg", b"xn--bcher-kva.example"]
        assert envelope[9] == b"<utf8@example.de>"


def test_search_with_charset_utf8_in_both_kinds_of_session(server):
    with enabled(server) as raw:
        raw.send(b"a APPEND INBOX UTF8 (~{%d+}\r\n%s)\r\n" % (len(MESSAGE), MESSAGE))
        assert raw.until("a")[1].startswith(b"a OK")
        raw.command("SELECT INBOX", "s")
        for command in (
            'SEARCH CHARSET UTF-8 SUBJECT "Grüße"',
            'SEARCH SUBJECT "Köln"',
            'SEARCH CHARSET UTF-8 BODY "Köln"',
            'SEARCH CHARSET UTF-8 FROM "Müller"',
        ):
            untagged, tagged = raw.command(command.encode(), "q")
            assert tagged == b"q OK SEARCH completed", (command, tagged)
            assert untagged == [b"* SEARCH 1"], command
    with Raw(server) as raw:
        raw.login()
        raw.command("SELECT INBOX", "s")
        untagged, _ = raw.command('SEARCH CHARSET UTF-8 SUBJECT "Grüße"'.encode(), "q")
        assert untagged == [b"* SEARCH 1"]
        # a literal, as IMAP4rev1 clients send 8-bit search strings
        subject = "aus Köln".encode()
        raw.send(b"q2 SEARCH CHARSET UTF-8 SUBJECT {%d+}\r\n%s\r\n" % (len(subject), subject))
        assert raw.until("q2") == ([b"* SEARCH 1"], b"q2 OK SEARCH completed")
