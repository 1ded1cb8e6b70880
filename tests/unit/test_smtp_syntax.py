"""The SMTP command, path and parameter parsers (RFC 5321 4.1, RFC 6531, RFC 3461)."""

from __future__ import annotations

import pytest

from protocols.smtp.replies import Reply, reply
from protocols.smtp.syntax import (
    CommandError,
    decode_xtext,
    mail_parameters,
    parse_command,
    parse_path,
    rcpt_parameters,
)


def error_of(func, *args, **kwargs) -> Reply:
    with pytest.raises(CommandError) as caught:
        func(*args, **kwargs)
    return caught.value.reply


def test_command_verb_is_case_insensitive_and_line_ends_are_stripped():
    command = parse_command(b"mail FROM:<a@b.test> SIZE=10\r\n")
    assert (command.verb, command.argument) == ("MAIL", "FROM:<a@b.test> SIZE=10")
    assert parse_command(b"NOOP\n").verb == "NOOP"


@pytest.mark.parametrize(
    "line",
    [
        b"\xff\xfe\r\n",
        b"MA\x00IL\r\n",
        b"NOOP\rNOOP\r\n",
        b"\r\n",
        b"12345\r\n",
        b"X" * 40 + b"\r\n",
    ],
)
def test_garbage_is_a_syntax_error(line):
    assert error_of(parse_command, line).code == 500


def test_command_line_limits_512_and_the_extensions():
    assert parse_command(b"NOOP " + b"x" * 505 + b"\r\n")  # 512 with the CRLF
    assert error_of(parse_command, b"NOOP " + b"x" * 506 + b"\r\n") == reply(
        500, "5.5.2", "Line too long"
    )
    long_rcpt = b"RCPT TO:<a@b.test> ORCPT=rfc822;" + b"x" * 560 + b"\r\n"
    assert parse_command(long_rcpt).verb == "RCPT"  # RFC 3461 adds 500 octets
    assert parse_command(b"AUTH PLAIN " + b"A" * 12000 + b"\r\n").verb == "AUTH"  # RFC 4954


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("<alice@example.test>", "alice@example.test"),
        ("<Alice@EXAMPLE.test>", "Alice@example.test"),  # the domain is lowercased only
        ('<"alice"@example.test>', "alice@example.test"),  # needless quotes go
        ('<"john doe"@example.test>', '"john doe"@example.test'),
        ('<"a\\"b"@example.test>', '"a\\"b"@example.test'),
        ('<"a>b"@example.test>', '"a>b"@example.test'),  # ">" inside quotes
        ("<@relay.test,@other.test:bob@example.test>", "bob@example.test"),  # source route
        ("<user@[192.0.2.1]>", "user@[192.0.2.1]"),
        ("<user@[IPv6:2001:db8::1]>", "user@[IPv6:2001:db8::1]"),
        ("<用户@例子.测试>", "用户@xn--fsqu00a.xn--0zwm56d"),  # SMTPUTF8: IDN as A-labels
    ],
)
def test_paths(text, address):
    mailbox, rest = parse_path(text, sender=False)
    assert mailbox.address == address and rest == ""


def test_utf8_is_flagged_and_null_sender_and_postmaster():
    mailbox, _ = parse_path("<josé@example.test>", sender=True)
    assert mailbox.utf8
    assert not parse_path("<jose@example.test>", sender=True)[0].utf8
    assert parse_path("<> SIZE=5", sender=True) == (None, " SIZE=5")
    assert parse_path("<Postmaster>", sender=False)[0].domain == ""
    assert error_of(parse_path, "<>", sender=False).code == 501


@pytest.mark.parametrize(
    "text",
    [
        "alice@example.test",  # no brackets
        "<alice@example.test",
        "<alice>",
        "<@example.test>",
        "<a..b@example.test>",
        "<alice@-bad-.test>",
        "<alice@exa mple.test>",
        "<alice@[300.1.1.1]>",
        "<" + "x" * 65 + "@example.test>",  # local part over 64
        "<a@" + "x" * 250 + ".test>",  # path over 256
    ],
)
def test_bad_paths(text):
    answer = error_of(parse_path, text, sender=False)
    assert (answer.code, answer.enhanced) == (501, "5.1.3")


def test_mail_parameters():
    params = mail_parameters(" SIZE=1000 BODY=8bitmime SMTPUTF8 RET=hdrs ENVID=QQ+2Bx AUTH=<>")
    assert params.size == 1000 and params.body == "8BITMIME" and params.smtputf8
    assert params.ret == "HDRS" and params.envid == "QQ+x" and params.auth == "<>"
    assert error_of(mail_parameters, " FOO=1").code == 555  # RFC 5321 4.1.1.11
    assert error_of(mail_parameters, " SIZE=big").code == 501
    assert error_of(mail_parameters, " SIZE=²").code == 501  # a digit, but not ASCII
    assert error_of(mail_parameters, " SIZE=1 size=2").code == 501  # duplicate
    assert error_of(mail_parameters, " BODY=BINARYMIME").code == 501


def test_rcpt_parameters():
    params = rcpt_parameters(" NOTIFY=success,FAILURE ORCPT=rfc822;bob+40x@example.test")
    assert params.notify == ("SUCCESS", "FAILURE")
    assert params.orcpt == "rfc822;bob@x@example.test"
    assert rcpt_parameters(" NOTIFY=NEVER").notify == ("NEVER",)
    assert error_of(rcpt_parameters, " NOTIFY=NEVER,SUCCESS").code == 501
    assert error_of(rcpt_parameters, " ORCPT=bob").code == 501
    assert error_of(rcpt_parameters, " SIZE=1").code == 555


def test_xtext():
    assert decode_xtext("a+2Bb+3Dc") == "a+b=c"
    assert decode_xtext("caf+C3+A9") == "café"
    with pytest.raises(CommandError):
        decode_xtext("a+zz")
    with pytest.raises(CommandError):
        decode_xtext("a=b")


def test_reply_formatting():
    assert reply(250, "2.1.0", "Sender OK").to_bytes() == b"250 2.1.0 Sender OK\r\n"
    assert reply(250, None, "host", "PIPELINING", "SIZE 10").to_bytes() == (
        b"250-host\r\n250-PIPELINING\r\n250 SIZE 10\r\n"
    )
    assert reply(550, "5.1.1", "bad\r\nRCPT").to_bytes() == b"550 5.1.1 bad  RCPT\r\n"
    with pytest.raises(ValueError):
        Reply(250, "5.0.0", ("mismatched class",))
