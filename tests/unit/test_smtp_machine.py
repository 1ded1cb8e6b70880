"""The sans-IO session machine, the DATA/BDAT readers and the domain rules, with a hypothesis
fuzz that feeds them arbitrary bytes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.smtp import replies
from protocols.smtp.data import ChunkCollector, DataReader
from protocols.smtp.machine import Bdat, Data, Hello, MailFrom, RcptTo, SessionMachine, Simple
from protocols.smtp.replies import Reply
from protocols.smtp.settings import DomainPolicy, resolve_domain
from protocols.smtp.syntax import CommandError


def refused(machine: SessionMachine, line: bytes) -> Reply:
    with pytest.raises(CommandError) as caught:
        machine.receive(line)
    return caught.value.reply


def test_a_transaction_in_order():
    machine = SessionMachine(lmtp=False)
    assert refused(machine, b"MAIL FROM:<a@b.test>\r\n") == replies.NO_HELLO
    hello = machine.receive(b"EHLO client.test\r\n")
    assert hello == Hello("EHLO", "client.test")
    machine.accept_hello(hello)
    assert refused(machine, b"RCPT TO:<c@d.test>\r\n") == replies.NO_MAIL
    assert refused(machine, b"DATA\r\n") == replies.NO_MAIL
    mail = machine.receive(b"MAIL FROM: <a@b.test> BODY=8BITMIME\r\n")
    assert isinstance(mail, MailFrom) and mail.sender.address == "a@b.test"
    machine.accept_mail(mail)
    assert refused(machine, b"MAIL FROM:<a@b.test>\r\n") == replies.NESTED_MAIL
    assert refused(machine, b"DATA\r\n") == replies.NO_VALID_RCPT  # RFC 2920 3.1
    rcpt = machine.receive(b"RCPT TO:<c@d.test> NOTIFY=NEVER\r\n")
    assert isinstance(rcpt, RcptTo)
    machine.accept_rcpt(rcpt)
    assert machine.receive(b"DATA\r\n") == Data()
    machine.end_transaction()
    assert machine.transaction is None and machine.messages == 1
    assert machine.bad_commands == 5


def test_lmtp_wants_lhlo_and_has_no_auth():
    machine = SessionMachine(lmtp=True)
    assert refused(machine, b"EHLO x\r\n") == replies.UNRECOGNIZED
    machine.accept_hello(machine.receive(b"LHLO x\r\n"))
    assert refused(machine, b"AUTH PLAIN\r\n") == replies.UNRECOGNIZED
    assert refused(SessionMachine(lmtp=False), b"LHLO x\r\n") == replies.UNRECOGNIZED


def test_bdat_always_announces_its_size_even_when_refused():
    machine = SessionMachine(lmtp=False)
    assert machine.receive(b"BDAT 10 LAST\r\n") == Bdat(10, True, replies.NO_HELLO)
    machine.accept_hello(machine.receive(b"HELO x\r\n"))
    assert machine.receive(b"BDAT 5\r\n") == Bdat(5, False, replies.NO_MAIL)
    assert refused(machine, b"BDAT\r\n").code == 501
    assert refused(machine, b"BDAT 5 FIRST\r\n").code == 501
    assert refused(machine, "BDAT ² LAST\r\n".encode()).code == 501  # a digit, not ASCII


def test_starttls_forgets_everything():
    machine = SessionMachine(lmtp=False)
    machine.accept_hello(machine.receive(b"EHLO x\r\n"))
    machine.accept_mail(machine.receive(b"MAIL FROM:<>\r\n"))
    assert machine.receive(b"STARTTLS\r\n") == Simple("STARTTLS")
    machine.restart()
    assert machine.hello is None and machine.transaction is None
    assert refused(machine, b"MAIL FROM:<>\r\n") == replies.NO_HELLO


def test_expn_is_not_implemented_and_unknown_verbs_unrecognized():
    machine = SessionMachine(lmtp=False)
    assert refused(machine, b"EXPN list\r\n") == replies.NOT_IMPLEMENTED
    assert refused(machine, b"FROB\r\n") == replies.UNRECOGNIZED


# -- DATA -----------------------------------------------------------------------------------


def read_data(blocks: list[bytes], **options) -> tuple[bytes | Reply, int]:
    reader = DataReader(
        options.pop("max_size", 1000),
        bare_lf=options.pop("bare_lf", "reject"),
        bare_cr=options.pop("bare_cr", "reject"),
        max_line_length=options.pop("max_line_length", 1000),
    )
    consumed = 0
    for block in blocks:
        consumed += reader.feed(block)
        if reader.done:
            break
    return reader.message(), consumed


def test_dot_unstuffing_and_the_end_of_data():
    data = b".leading\r\n..double\r\nmid.dle\r\n.\r\nMAIL FROM:<x@y>\r\n"
    message, consumed = read_data([data])
    assert message == b"leading\r\n.double\r\nmid.dle\r\n"
    assert data[consumed:] == b"MAIL FROM:<x@y>\r\n"  # pipelined input is left alone


def test_the_end_of_data_split_across_blocks():
    data = b"Subject: x\r\n\r\nbody\r\n.\r\n"
    for cut in range(1, len(data)):
        message, consumed = read_data([data[:cut], data[cut:]])
        assert message == b"Subject: x\r\n\r\nbody\r\n" and consumed == len(data)


def test_an_empty_message():
    assert read_data([b".\r\n"]) == (b"", 3)


def test_bare_line_ends_never_end_the_data_and_are_rejected_or_fixed():
    smuggled = b"a\r\n\n.\n\nMAIL FROM:<evil@x>\r\nb\r\n.\r\n"
    message, consumed = read_data([smuggled])
    assert message == replies.BARE_LINE_END and consumed == len(smuggled)
    fixed, _ = read_data([smuggled], bare_lf="fix")
    assert fixed == b"a\r\n\r\n\r\n\r\nMAIL FROM:<evil@x>\r\nb\r\n"
    assert read_data([b"a\rb\r\n.\r\n"])[0] == replies.BARE_LINE_END
    assert read_data([b"a\rb\r\n.\r\n"], bare_cr="fix")[0] == b"a\r\nb\r\n"
    # "\r.\r" is not an end of data either
    assert read_data([b"a\r.\rb\r\n.\r\n"], bare_cr="fix")[0] == b"a\r\n\r\nb\r\n"


def test_size_limit_counts_the_unstuffed_content_and_stops_buffering():
    exact = b"." * 10 + b"\r\n"  # 12 octets stuffed, 11 unstuffed
    assert read_data([exact + b".\r\n"], max_size=11)[0] == b"." * 9 + b"\r\n"
    assert read_data([exact + b".\r\n"], max_size=10)[0] == replies.TOO_BIG
    reader = DataReader(100, bare_lf="reject", bare_cr="reject", max_line_length=0)
    for _ in range(1000):
        reader.feed(b"x" * 70 + b"\r\n")
        assert len(reader._raw) <= 104  # never buffered past the limit
    reader.feed(b".\r\n")
    assert reader.done and reader.message() == replies.TOO_BIG


def test_text_line_limit():
    assert read_data([b"x" * 998 + b"\r\n.\r\n"], max_size=5000)[0] == b"x" * 998 + b"\r\n"
    answer, _ = read_data([b"x" * 999 + b"\r\n.\r\n"], max_size=5000)
    assert isinstance(answer, Reply) and (answer.code, answer.enhanced) == (554, "5.6.0")


def test_bdat_chunks():
    chunks = ChunkCollector(10, bare_lf="fix", bare_cr="reject")
    chunks.add(b".a\nb")
    chunks.add(b"\r\n")
    assert chunks.message() == b".a\r\nb\r\n"  # no unstuffing in BDAT
    chunks.add(b"x" * 20)
    assert chunks.too_big and chunks.message() == replies.TOO_BIG


# -- domains --------------------------------------------------------------------------------


def test_domain_wildcards_explicit_entries_and_carve_outs():
    domains = {
        "*.example.com": DomainPolicy(fbl=True),
        "*.deep.example.com": DomainPolicy(relay=True),
        "quiet.example.com": DomainPolicy(fbl=False),
        "example.org": DomainPolicy(oob=True),
    }
    assert not resolve_domain(domains, "example.com").fbl  # never the bare domain
    assert resolve_domain(domains, "a.example.com").report_kind == "arf"
    assert resolve_domain(domains, "quiet.example.com").report_kind is None
    inner = resolve_domain(domains, "x.deep.example.com")
    assert inner.relay and inner.fbl  # unset options come from the less specific match
    assert resolve_domain(domains, "example.org").report_kind == "dsn"
    assert resolve_domain(domains, "other.test").report_kind is None


# -- fuzz -----------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=30), st.booleans())
def test_the_machine_takes_arbitrary_lines(lines, lmtp):
    machine = SessionMachine(lmtp=lmtp)
    for line in lines:
        try:
            event = machine.receive(line)
        except CommandError as error:
            code = error.reply.code
            assert 500 <= code < 600
            continue
        if isinstance(event, Hello):
            machine.accept_hello(event)
        elif isinstance(event, MailFrom):
            machine.accept_mail(event)
        elif isinstance(event, RcptTo):
            machine.accept_rcpt(event)


COMMAND_WORDS = [b"EHLO x", b"MAIL FROM:<a@b.c>", b"RCPT TO:<d@e.f>", b"DATA", b"BDAT 3", b"RSET"]


# Commands are UTF-8: arguments where a number belongs get any text, "²" and "٣" included.
NUMBERED = st.builds(
    lambda head, text: head + text.encode(),
    st.sampled_from([b"BDAT ", b"MAIL FROM:<a@b.c> SIZE=", b"RCPT TO:<d@e.f> NOTIFY="]),
    st.text(max_size=12),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(COMMAND_WORDS) | st.binary(max_size=40) | NUMBERED, max_size=20))
def test_the_machine_takes_plausible_command_sequences(words):
    test_the_machine_takes_arbitrary_lines.hypothesis.inner_test(
        [word + b"\r\n" for word in words], False
    )


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.integers(min_value=1, max_value=64))
def test_the_data_reader_takes_arbitrary_bytes(data, block):
    reader = DataReader(500, bare_lf="fix", bare_cr="reject", max_line_length=100)
    consumed = 0
    for start in range(0, len(data), block):
        consumed += reader.feed(data[start : start + block])
        if reader.done:
            break
    if reader.done:
        assert data[:consumed].endswith(b"\r\n.\r\n") or data[:consumed] == b".\r\n"
        assert isinstance(reader.message(), bytes | Reply)
    else:
        assert consumed == len(data) and b"\r\n.\r\n" not in data
