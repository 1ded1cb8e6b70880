"""The SMTP client's sans-IO core: replies, capabilities, commands, DATA, and the schedule."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stalwart_py.queue.outcomes import Outcome, settle
from stalwart_py.queue.protocol import (
    Capabilities,
    ProtocolError,
    Reply,
    ReplyReader,
    data_body,
    mail_command,
    needs_smtputf8,
    rcpt_command,
    xtext,
)
from stalwart_py.queue.schedule import RetrySchedule
from stalwart_py.store import QueueEntry, QueueRecipientState


def read(*lines: bytes) -> Reply:
    reader = ReplyReader()
    for line in lines[:-1]:
        assert reader.feed(line) is None
    reply = reader.feed(lines[-1])
    assert reply is not None
    return reply


def test_multiline_reply_with_enhanced_codes():
    reply = read(b"550-5.1.1 No such\r\n", b"550-5.1.1 user here\r\n", b"550 5.1.1 (bob)\r\n")
    assert (reply.code, reply.enhanced) == (550, "5.1.1")
    assert reply.lines == ("No such", "user here", "(bob)")
    assert str(reply) == "550 5.1.1 No such user here (bob)"
    assert reply.permanent
    assert not reply.transient


def test_reply_forms():
    assert read(b"250\r\n").lines == ("",)
    assert read(b"354 go ahead\n").status() == "3.0.0"
    # An enhanced code of another class than the reply's is just text (RFC 2034 4).
    assert read(b"451 5.1.1 odd\r\n").enhanced is None


@pytest.mark.parametrize("line", [b"hello\r\n", b"25 short\r\n", b"600 no\r\n", b"250x\r\n"])
def test_bad_reply_lines(line):
    with pytest.raises(ProtocolError):
        ReplyReader().feed(line)


def test_code_change_inside_a_reply_is_an_error():
    reader = ReplyReader()
    reader.feed(b"250-first\r\n")
    with pytest.raises(ProtocolError, match="changed from 250 to 550"):
        reader.feed(b"550 second\r\n")


def test_endless_reply_is_refused():
    reader = ReplyReader()
    for _ in range(99):
        reader.feed(b"250-more\r\n")
    with pytest.raises(ProtocolError, match="more than 100 lines"):
        reader.feed(b"250-more\r\n")


@given(st.binary(max_size=200))
def test_reply_reader_never_fails_otherwise(line):
    with contextlib.suppress(ProtocolError):
        ReplyReader().feed(line)


def test_capabilities_from_ehlo():
    reply = read(
        b"250-mx.test greets you\r\n",
        b"250-SIZE 1000\r\n",
        b"250-pipelining\r\n",
        b"250-8BITMIME\r\n",
        b"250-AUTH PLAIN login\r\n",
        b"250-STARTTLS\r\n",
        b"250 DSN\r\n",
    )
    caps = Capabilities.from_ehlo(reply)
    assert caps == Capabilities(
        starttls=True,
        pipelining=True,
        eightbitmime=True,
        dsn=True,
        size=1000,
        auth=("PLAIN", "LOGIN"),
    )


def test_mail_and_rcpt_commands_carry_only_announced_extensions():
    caps = Capabilities(eightbitmime=True, smtputf8=True, dsn=True, size=0)
    command = mail_command(
        "a@x.test", caps, size=42, eightbit=True, smtputf8=True, ret="hdrs", envid="id+1=2"
    )
    assert (
        command
        == b"MAIL FROM:<a@x.test> SIZE=42 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id+2B1+3D2\r\n"
    )
    assert mail_command("", Capabilities(), size=42, eightbit=True, smtputf8=False) == (
        b"MAIL FROM:<>\r\n"
    )
    rcpt = rcpt_command("b@y.test", caps, notify=("success", "FAILURE"), orcpt="rfc822;b+x@y.test")
    assert rcpt == b"RCPT TO:<b@y.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+2Bx@y.test\r\n"
    assert rcpt_command("b@y.test", Capabilities(), notify=("NEVER",)) == b"RCPT TO:<b@y.test>\r\n"


def test_xtext_and_smtputf8_need():
    assert xtext("a b+é") == "a+20b+2B+C3+A9"
    assert needs_smtputf8("a@x.test", ["bøb@y.test"])
    assert not needs_smtputf8("", ["bob@y.test"])


def test_data_body_dot_stuffing_and_line_endings():
    assert data_body(b".a\n..b\r\nc") == b"..a\r\n...b\r\nc\r\n.\r\n"
    assert data_body(b"") == b".\r\n"


def unstuff(body: bytes) -> bytes:
    """What a receiving server does with DATA (RFC 5321 4.5.2)."""
    assert body.endswith(b"\r\n.\r\n") or body == b".\r\n"
    lines = body[:-3].split(b"\r\n")[:-1] if body != b".\r\n" else []
    return b"".join((line[1:] if line.startswith(b".") else line) + b"\r\n" for line in lines)


@given(
    st.lists(
        st.binary(max_size=30).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")), max_size=20
    )
)
def test_data_body_round_trips(lines):
    message = b"".join(line + b"\r\n" for line in lines)
    body = data_body(message)
    assert b"\r\n.\r\n" not in body[:-3]  # the end marker only at the end
    assert unstuff(body) == message


# -- the schedule and what an attempt means ---------------------------------------------------


def test_retry_schedule_repeats_its_last_interval():
    schedule = RetrySchedule((60.0, 600.0), max_age=3600.0)
    assert [schedule.next_attempt(1000.0, n) for n in range(4)] == [1060.0, 1600.0, 1600.0, 1600.0]
    assert not schedule.expired(1000.0, 4599.0)
    assert schedule.expired(1000.0, 4600.0)


def recipient(rid: int, notify: tuple[str, ...] = (), attempts: int = 0) -> QueueRecipientState:
    return QueueRecipientState(
        rid, f"r{rid}@x.test", "x.test", None, notify, "pending", attempts, 0.0, None
    )


def entry(mail_from: str = "a@y.test", created: float = 0.0) -> QueueEntry:
    return QueueEntry(1, mail_from, created, 0.0, 0, None, None, "smtp", 10, 1, False)


def test_settle_sorts_outcomes_into_updates_and_reports():
    schedule = RetrySchedule((300.0,), max_age=1000.0)
    outcomes = [
        Outcome(recipient(1), 250, "2.0.0", "ok", "mx.test", "250 ok"),
        Outcome(recipient(2), 550, "5.1.1", "no", "mx.test", "550 5.1.1 no"),
        Outcome(recipient(3, attempts=2), 451, "4.3.0", "later", "mx.test", "451 4.3.0 later"),
        Outcome(recipient(4, notify=("NEVER",)), 550, "5.1.1", "no", "mx.test", "550 5.1.1 no"),
        Outcome(recipient(5, notify=("SUCCESS",)), 250, "2.0.0", "ok", "mx.test", "250 ok"),
    ]
    result = settle(entry(), outcomes, 100.0, schedule, final_delivery=False)
    assert [(u.id, u.status, u.next_attempt) for u in result.updates] == [
        (1, "delivered", 100.0),
        (2, "failed", 100.0),
        (3, "pending", 400.0),
        (4, "failed", 100.0),
        (5, "delivered", 100.0),
    ]
    assert result.updates[2].last_error == "mx.test: 451 4.3.0 later"
    assert [(r.address, r.action, r.status) for r in result.reports] == [
        ("r2@x.test", "failed", "5.1.1"),
        ("r5@x.test", "relayed", "2.0.0"),
    ]
    assert (result.delivered, result.failed, result.deferred) == (2, 2, 1)


def test_settle_expires_transient_failures_past_max_age():
    schedule = RetrySchedule((300.0,), max_age=1000.0)
    outcome = Outcome(recipient(1), 451, "4.3.0", "later", None, None)
    result = settle(entry(created=0.0), [outcome], 1000.0, schedule, final_delivery=False)
    assert result.updates[0].status == "failed"
    assert [(r.action, r.status) for r in result.reports] == [("failed", "4.4.7")]
    # With the null sender nothing is reported: no bounce of a bounce.
    result = settle(
        entry(mail_from="", created=0.0), [outcome], 1000.0, schedule, final_delivery=False
    )
    assert result.reports == []
