"""CATENATE (RFC 4469) over real sockets: a message built from TEXT literals and IMAP URLs
(RFC 5092) of messages and sections in the same account, in every URL form (absolute path,
relative to the selected mailbox, ``imap://user@host/``) with SECTION and PARTIAL; BADURL
for another account or host, a wrong UIDVALIDITY, a missing mailbox or message; TOOBIG on
the catenated size; all or nothing inside a MULTIAPPEND."""

from __future__ import annotations

import re

import pytest

from tests.integration.imap_support import PASSWORD, USER, Raw, append, start

FIRST = (
    b"From: Bob <bob@example.org>\r\nSubject: Original\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain\r\n\r\nThe first part.\r\n"
    b"--b\r\nContent-Type: text/plain; name=a.txt\r\n\r\nAn attachment.\r\n--b--\r\n"
)
HEADER = FIRST[: FIRST.index(b"\r\n\r\n") + 4]


@pytest.fixture
def server(start_server, server_cert):
    limits = '[server.imap]\nmax-literal-size = "4K"\nmax-append-size = "8K"\n'
    server = start(start_server, server_cert, extra=limits)
    append(server, USER, "INBOX", FIRST)
    return server


@pytest.fixture
def raw(server):
    with Raw(server) as raw:
        raw.login()
        untagged, _ = raw.command("SELECT INBOX", "s")
        raw.uidvalidity = int(
            next(
                re.search(rb"UIDVALIDITY (\d+)", line).group(1)
                for line in untagged
                if b"UIDVALIDITY" in line
            )
        )
        yield raw


def body_of(raw: Raw, uid: int) -> bytes:
    untagged, tagged = raw.command(f"UID FETCH {uid} BODY.PEEK[]", "f")
    assert tagged.startswith(b"f OK"), tagged
    line = untagged[0]
    return line[line.index(b"}\r\n") + 3 : -1]


def catenate(raw: Raw, parts: bytes, tag: str = "t1") -> bytes:
    return raw.command(b"APPEND INBOX CATENATE (" + parts + b")", tag)[1]


def appended_uid(reply: bytes) -> int:
    match = re.fullmatch(rb"t1 OK \[APPENDUID \d+ (\d+)\] APPEND completed", reply)
    assert match is not None, reply
    return int(match.group(1))


def test_header_of_one_message_and_new_text(raw):
    url = f"/INBOX;UIDVALIDITY={raw.uidvalidity}/;UID=1/;SECTION=HEADER"
    text = b"A new body.\r\n"
    reply = catenate(raw, b'URL "%s" TEXT {%d+}\r\n%s' % (url.encode(), len(text), text))
    assert body_of(raw, appended_uid(reply)) == HEADER + text


def test_every_url_form_sections_and_partial(raw, server):
    host, port = server.address("imap")
    user = USER.replace("@", "%40")
    urls = [
        "/INBOX/;UID=1/;SECTION=1",  # absolute path, no UIDVALIDITY
        ";UID=1/;SECTION=2",  # relative to the selected mailbox
        f"imap://{user}@{host}:{port}/INBOX/;UID=1/;SECTION=1.MIME",
        "imap://mail.example.test/inbox/;uid=1/;section=header.fields%20(subject)",
        f"/INBOX;UIDVALIDITY={raw.uidvalidity}/;UID=1/;PARTIAL=6.3",
        "/INBOX/;UID=1/;SECTION=TEXT/;PARTIAL=0.5",
    ]
    parts = b" ".join(b'URL "%s"' % url.encode() for url in urls)
    expected = (
        b"The first part."
        + b"An attachment."
        + b"Content-Type: text/plain\r\n\r\n"
        + b"Subject: Original\r\n\r\n"
        + b"Bob"
        + b"--b\r\n"
    )
    assert body_of(raw, appended_uid(catenate(raw, parts))) == expected


@pytest.mark.parametrize(
    "url",
    [
        "/INBOX;UIDVALIDITY=1/;UID=1",  # not the mailbox's UIDVALIDITY
        "/INBOX/;UID=99",  # no such message
        "/Nowhere/;UID=1",  # no such mailbox
        "imap://bob%40example.test@mail.example.test/INBOX/;UID=1",  # another account
        "imap://elsewhere.example/INBOX/;UID=1",  # another host
        "/INBOX/;UID=1/;URLAUTH=anonymous:internal:0123",  # URLAUTH is not offered
        "/INBOX/;UID=1/;SECTION=BOGUS",
        "not a url]",
    ],
)
def test_bad_urls_store_nothing(raw, url):
    text = b"x\r\n"
    reply = catenate(raw, b'TEXT {%d+}\r\n%s URL "%s"' % (len(text), text, url.encode()))
    echoed = url.replace("]", "%5D").replace(" ", "%20")
    assert reply == f"t1 NO [BADURL {echoed}] Bad URL".encode()
    assert raw.command("UID SEARCH ALL", "u")[0] == [b"* SEARCH 1"]


def test_a_relative_url_needs_a_selected_mailbox(server):
    with Raw(server) as raw:
        raw.login()
        reply = raw.command(b'APPEND INBOX CATENATE (URL ";UID=1")')[1]
        assert reply == b"t1 NO [BADURL ;UID=1] Bad URL"


def test_another_accounts_mailbox_is_not_reachable(server):
    server.add_account("bob@example.test", PASSWORD)
    with Raw(server) as raw:
        _, tagged = raw.command(f'LOGIN "bob@example.test" "{PASSWORD}"', "l")
        assert tagged.startswith(b"l OK")
        # bob's INBOX has no message 1: the URL resolves in bob's account only
        reply = raw.command(b'APPEND INBOX CATENATE (URL "/INBOX/;UID=1")')[1]
        assert reply == b"t1 NO [BADURL /INBOX/;UID=1] Bad URL"


def test_the_catenated_size_is_bounded(raw):
    fit = 4096 // len(FIRST)  # copies within the 4K message limit
    parts = b" ".join([b'URL "/INBOX/;UID=1"'] * (fit + 1))
    assert catenate(raw, parts) == b"t1 NO [TOOBIG] The message is too big"
    parts = b" ".join([b'URL "/INBOX/;UID=1"'] * fit)
    assert body_of(raw, appended_uid(catenate(raw, parts))) == FIRST * fit


def test_catenate_in_a_multiappend_is_all_or_nothing(raw):
    text = b"Subject: plain\r\n\r\nplain\r\n"
    good = b'CATENATE (URL "/INBOX/;UID=1/;SECTION=HEADER" TEXT {4+}\r\nhi\r\n)'
    bad = b'CATENATE (URL "/INBOX/;UID=7")'
    reply = raw.command(b"APPEND INBOX {%d+}\r\n%s %s %s" % (len(text), text, good, bad))[1]
    assert reply == b"t1 NO [BADURL /INBOX/;UID=7] Bad URL"
    assert raw.command("UID SEARCH ALL", "u")[0] == [b"* SEARCH 1"]
    reply = raw.command(b"APPEND INBOX (\\Seen) {%d+}\r\n%s %s" % (len(text), text, good))[1]
    assert re.fullmatch(rb"t1 OK \[APPENDUID \d+ 2:3\] APPEND completed", reply), reply
    assert body_of(raw, 3) == HEADER + b"hi\r\n"
    # each message is under 4K, the three together over max-append-size (8K)
    many = b"CATENATE (" + b" ".join([b'URL "/INBOX/;UID=1"'] * (4096 // len(FIRST))) + b")"
    reply = raw.command(b"APPEND INBOX %s %s %s" % (many, many, many))[1]
    assert reply == b"t1 NO [TOOBIG] The message is too big"
    assert raw.command("UID SEARCH ALL", "u")[0] == [b"* SEARCH 1 2 3"]


def test_capability(raw):
    untagged, _ = raw.command("CAPABILITY", "c")
    assert b"CATENATE" in untagged[0].split()
