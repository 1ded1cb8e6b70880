"""The APPEND grammar with MULTIAPPEND (RFC 3502), CATENATE (RFC 4469) and the UTF8 form
(RFC 6855), the framer's bound on all the literals of one APPEND, and the IMAP URLs
(RFC 5092) of CATENATE."""

from __future__ import annotations

import datetime

import pytest

from protocols.imap.append_syntax import Append, AppendMessage, TextPart, UrlPart
from protocols.imap.catenate import BadUrl, parse_url
from protocols.imap.commands import CommandError, parse_command
from protocols.imap.fetch_items import Section
from protocols.imap.framing import CommandComplete, CommandFramer, CommandRejected, LiteralExpected


def parse(data: bytes) -> Append:
    return parse_command(data + b"\r\n").args


def error_of(data: bytes) -> str:
    with pytest.raises(CommandError) as info:
        parse(data)
    return str(info.value)


def test_several_messages_each_with_its_own_options():
    args = parse(
        b'a APPEND Drafts (\\Seen) {3}\r\none "01-Jan-2024 00:00:00 +0000" {3+}\r\ntwo'
        b' ~{5}\r\nth\x00ee (\\Draft $X) " 2-Feb-2024 10:00:00 -0130" {4}\r\nfour'
    )
    assert args.mailbox == b"Drafts"
    one, two, three, four = args.messages
    assert one == AppendMessage(("\\Seen",), None, b"one")
    assert two.internaldate == datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    assert (two.flags, two.data) == ((), b"two")
    assert three.data == b"th\x00ee"
    assert four.flags == ("\\Draft", "$X")
    assert four.internaldate.utcoffset() == -datetime.timedelta(hours=1, minutes=30)


def test_catenate_parts_and_the_utf8_forms():
    args = parse(
        b'a APPEND INBOX (\\Seen) CATENATE (URL "/INBOX;UIDVALIDITY=3/;UID=7/;SECTION=HEADER"'
        b" TEXT {6}\r\n\r\nbody URL ;UID=8 UTF8 (~{3}\r\n\xc3\xa9!)) {2}\r\nhi"
    )
    catenated, plain = args.messages
    assert catenated.flags == ("\\Seen",)
    assert catenated.data is None
    assert catenated.parts == (
        UrlPart("/INBOX;UIDVALIDITY=3/;UID=7/;SECTION=HEADER"),
        TextPart(b"\r\nbody"),
        UrlPart(";UID=8"),
        TextPart(b"\xc3\xa9!", utf8=True),
    )
    assert catenated.utf8
    assert plain.data == b"hi" and not plain.utf8
    (utf8,) = parse(b"a APPEND INBOX UTF8 (~{4}\r\n\xc3\xa9t\xc3)").messages
    assert (utf8.data, utf8.utf8) == (b"\xc3\xa9t\xc3", True)


def test_malformed_appends_are_bad():
    assert "expected a space" in error_of(b"a APPEND INBOX")
    assert "expected a space" in error_of(b"a APPEND INBOX (\\Seen)")
    assert "the message" in error_of(b"a APPEND INBOX (\\Seen) NIL")
    assert "the message" in error_of(b"a APPEND INBOX {1}\r\nx (\\Seen) BODY")
    assert "invalid date-time" in error_of(
        b'a APPEND INBOX {1}\r\nx "30-Feb-2024 0:0:0 +0000" {1}\r\ny'
    )
    assert "literal8" in error_of(b"a APPEND INBOX UTF8 ({1}\r\nx)")
    assert "empty list" in error_of(b"a APPEND INBOX CATENATE ()")
    assert "unknown CATENATE part" in error_of(b"a APPEND INBOX CATENATE (FILE x)")
    assert "literal" in error_of(b'a APPEND INBOX CATENATE (TEXT "quoted")')
    assert "the message" in error_of(b"a APPEND INBOX {1}\r\nx  {1}\r\ny")


def test_the_framer_bounds_all_the_literals_of_one_append():
    framer = CommandFramer(max_command_length=1024, max_literal_size=100, max_append_size=250)
    assert framer.feed_line(b"a APPEND INBOX {100}\r\n") == LiteralExpected(100, True)
    framer.feed_literal(b"x" * 100)
    assert framer.feed_line(b" {100+}\r\n") == LiteralExpected(100, False)
    framer.feed_literal(b"y" * 100)
    # 200 so far: a synchronizing 51 is refused with NO (the client has not sent it)...
    refused = framer.feed_line(b" {51}\r\n")
    assert refused == CommandRejected(
        "a", "the messages of this APPEND are over the limit of 250", close=False
    )
    # ... a non-synchronizing one is on its way: the connection must close
    framer.feed_line(b"a APPEND INBOX {100+}\r\n")
    framer.feed_literal(b"x" * 100)
    framer.feed_line(b" {100+}\r\n")
    framer.feed_literal(b"x" * 100)
    assert framer.feed_line(b" {51+}\r\n").close
    # the APPEND literals do not count towards the command length, the lines do
    framer.feed_line(b"b APPEND INBOX {100}\r\n")
    framer.feed_literal(b"x" * 100)
    assert isinstance(framer.feed_line(b" {50}\r\n"), LiteralExpected)
    framer.feed_literal(b"z" * 50)
    done = framer.feed_line(b"\r\n")
    assert isinstance(done, CommandComplete)
    # another command starts from zero
    assert framer.feed_line(b"c APPEND INBOX {100}\r\n") == LiteralExpected(100, True)


def test_by_default_the_total_is_the_literal_limit():
    framer = CommandFramer(max_command_length=1024, max_literal_size=100)
    framer.feed_line(b"a APPEND INBOX {100}\r\n")
    framer.feed_literal(b"x" * 100)
    assert isinstance(framer.feed_line(b" {1}\r\n"), CommandRejected)


# -- IMAP URLs of CATENATE (RFC 5092) ---------------------------------------------------------


def test_url_forms():
    url = parse_url("/INBOX;UIDVALIDITY=385759045/;UID=20/;SECTION=1.MIME/;PARTIAL=0.1024")
    assert (url.user, url.host, url.mailbox, url.uidvalidity, url.uid) == (
        None,
        None,
        b"INBOX",
        385759045,
        20,
    )
    assert url.section == Section((1,), "MIME")
    assert url.partial == (0, 1024)
    url = parse_url("imap://alice%40example.test;AUTH=*@[::1]:143/Lists/Py%20Dev/;uid=3")
    assert (url.user, url.host, url.mailbox) == ("alice@example.test", "::1", b"Lists/Py Dev")
    assert (url.section, url.partial) == (None, None)
    url = parse_url(";UID=7/;SECTION=HEADER.FIELDS%20(From%20To)/;PARTIAL=5")
    assert url.mailbox is None
    assert url.section == Section((), "HEADER.FIELDS", ("From", "To"))
    assert url.partial == (5, 0xFFFFFFFF)


@pytest.mark.parametrize(
    "text",
    [
        "/INBOX",  # no UID
        "/INBOX/;UID=0",
        "/INBOX/;UID=1/;UID=2",
        "/;UID=1",  # no mailbox
        "/INBOX/;UID=1/;SECTION=",
        "/INBOX/;UID=1/;SECTION=1.BOGUS",
        "/INBOX/;UID=1/;PARTIAL=x",
        "/INBOX/;UID=1/;EXPIRE=2030-01-01T00:00:00Z",
        "imap://host",
        "imap://user;AUTH=GSSAPI@host/INBOX/;UID=1",
        "imap://[::1/INBOX/;UID=1",
        "INBOX/;UID=1",
    ],
)
def test_bad_urls(text):
    with pytest.raises(BadUrl):
        parse_url(text)
