"""Filters end to end: mail over SMTP to our server, through a milter served by
purepythonmilter (an independent milter library), read back over IMAP or from the store."""

from __future__ import annotations

import asyncio
import email
import imaplib
import smtplib

import pytest
from purepythonmilter import (
    AddRecipient,
    AppendHeader,
    BodyChunk,
    ChangeHeader,
    ChangeMailFrom,
    Connect,
    Continue,
    DiscardMessage,
    EndOfMessage,
    InsertHeader,
    MailFrom,
    PurePythonMilter,
    RcptTo,
    RejectWithCode,
    RemoveRecipient,
    ReplaceBodyChunk,
    TempFailWithCode,
    VerdictOrContinue,
)
from purepythonmilter.protocol.responses import AbstractResponse

from stalwart_py.config import ConfigError
from tests.support.milters import PASSWORD, filter_config, milter_table, serve_milter
from tests.support.servers import METRICS_OF_ONE_WORKER, free_port
from tests.support.smtp import connect, mailbox_messages, metric

MESSAGE = (
    "From: alice@remote.test\r\nTo: bob@example.test\r\nSubject: Lunch\r\n"
    "X-Old: 1\r\n\r\nShall we meet at noon?\r\n"
)


def start(start_server, server_cert, filters: str, names: str = '["m"]', **kwargs):
    server = start_server(filter_config(server_cert, filters, names, **kwargs))
    for user in ("bob", "carol", "dave"):
        server.add_account(f"{user}@example.test", PASSWORD)
    return server


def send(server, recipients=("bob@example.test",), message=MESSAGE, sender="alice@remote.test"):
    with connect(server) as client:
        return client.sendmail(sender, list(recipients), message)


def imap_inbox(server, user="bob@example.test") -> list[bytes]:
    host, port = server.address("imap")
    with imaplib.IMAP4(host, port, timeout=20) as imap:
        imap.login(user, PASSWORD)
        _, [count] = imap.select("INBOX", readonly=True)
        if count == b"0":
            return []
        _, data = imap.fetch("1:*", "(BODY.PEEK[])")
        return [item[1] for item in data if isinstance(item, tuple)]


@pytest.mark.single_worker(METRICS_OF_ONE_WORKER)
def test_a_clean_message_gets_the_milters_header_changes(start_server, server_cert):
    seen: dict[str, object] = {}

    async def on_mail_from(command: MailFrom) -> None:  # None: no reply (SMFIP_NR_MAIL)
        seen["sender"] = command.address
        seen["mail_macros"] = dict(command.macros)

    async def on_connect(command: Connect) -> None:
        seen["macros"] = dict(command.macros)
        seen["client"] = str(command.connection_info_args.addr)

    async def on_eom(command: EndOfMessage) -> AbstractResponse:
        return Continue(
            manipulations=[
                AppendHeader(headername="X-Milter", headertext="checked"),
                InsertHeader(headername="X-First", headertext="top", index=0),
                ChangeHeader(headername="Subject", headertext="[tagged] Lunch", nth_occurrence=1),
                ChangeHeader(headername="X-Old", headertext="", nth_occurrence=1),
            ]
        )

    app = PurePythonMilter(
        name="tagger",
        hook_on_connect=on_connect,
        hook_on_mail_from=on_mail_from,
        hook_on_end_of_message=on_eom,
        can_add_headers=True,
        can_change_headers=True,
        restrict_symbols=None,  # every macro we send
    )
    with serve_milter(app) as port:
        server = start(start_server, server_cert, milter_table("m", port))
        send(server)
        (stored,) = imap_inbox(server)
    parsed = email.message_from_bytes(stored)
    assert parsed["X-Milter"] == "checked"
    assert parsed["Subject"] == "[tagged] Lunch"
    assert parsed["X-Old"] is None
    assert parsed["X-First"] == "top"
    # above the From of the message, below our trace fields added at delivery
    assert stored.index(b"X-First: top") < stored.index(b"From: alice@remote.test")
    assert seen["sender"] == "alice@remote.test" and seen["client"] == "127.0.0.1"
    assert seen["macros"]["j"] == "mail.example.test"
    assert seen["macros"]["{client_addr}"] == "127.0.0.1"
    assert "i" in seen["mail_macros"]
    assert metric(server, "stalwart_filter_verdicts_total", filter="m", verdict="accept") == 1


def test_a_reject_with_code_refuses_the_message(start_server, server_cert):
    async def on_eom(command: EndOfMessage) -> AbstractResponse:
        return RejectWithCode(primary_code=(5, 5, 4), enhanced_code=(5, 7, 1), text="Spam here")

    with serve_milter(PurePythonMilter(name="r", hook_on_end_of_message=on_eom)) as port:
        server = start(start_server, server_cert, milter_table("m", port))
        with pytest.raises(smtplib.SMTPDataError) as refused:
            send(server)
    assert refused.value.smtp_code == 554
    assert b"5.7.1 Spam here" in refused.value.smtp_error
    assert mailbox_messages(server, "bob@example.test") == []


def test_a_tempfail_at_rcpt_defers_the_whole_message(start_server, server_cert):
    async def on_rcpt(command: RcptTo) -> VerdictOrContinue:
        if command.address == "carol@example.test":
            return TempFailWithCode(primary_code=(4, 5, 1), text="Greylisted")
        return Continue()

    with serve_milter(PurePythonMilter(name="g", hook_on_rcpt_to=on_rcpt)) as port:
        server = start(start_server, server_cert, milter_table("m", port))
        with pytest.raises(smtplib.SMTPDataError) as deferred:
            send(server, ("bob@example.test", "carol@example.test"))
    assert deferred.value.smtp_code == 451
    assert mailbox_messages(server, "bob@example.test") == []


def test_discard_answers_250_and_delivers_nothing(start_server, server_cert):
    async def on_eom(command: EndOfMessage) -> AbstractResponse:
        return DiscardMessage()

    with serve_milter(PurePythonMilter(name="d", hook_on_end_of_message=on_eom)) as port:
        server = start(start_server, server_cert, milter_table("m", port))
        assert send(server) == {}
    assert mailbox_messages(server, "bob@example.test") == []


def test_body_and_envelope_changes(start_server, server_cert):
    async def on_eom(command: EndOfMessage) -> AbstractResponse:
        return Continue(
            manipulations=[
                ReplaceBodyChunk(chunk=b"Replaced body.\r\n"),
                ChangeMailFrom(mail_from="<bounces@remote.test>"),
                RemoveRecipient(recipient="<bob@example.test>"),
                AddRecipient(recipient="<carol@example.test>"),
                AddRecipient(recipient="<nobody@example.test>"),  # unknown: left out
            ]
        )

    app = PurePythonMilter(
        name="e",
        hook_on_end_of_message=on_eom,
        can_change_body=True,
        can_change_mail_from=True,
        can_add_recipients=True,
        can_remove_recipients=True,
    )
    with serve_milter(app) as port:
        server = start(start_server, server_cert, milter_table("m", port))
        send(server)
    assert mailbox_messages(server, "bob@example.test") == []
    (stored,) = mailbox_messages(server, "carol@example.test")
    assert stored.endswith(b"\r\n\r\nReplaced body.\r\n")
    assert stored.startswith(b"Return-Path: <bounces@remote.test>")


def test_lmtp_answers_each_recipient_with_the_milters_reply(start_server, server_cert):
    async def on_eom(command: EndOfMessage) -> AbstractResponse:
        return RejectWithCode(primary_code=(5, 5, 0), text="No")

    with serve_milter(PurePythonMilter(name="l", hook_on_end_of_message=on_eom)) as port:
        server = start(start_server, server_cert, milter_table("m", port))
        host, lmtp_port = server.address("lmtp")
        with smtplib.LMTP(host, lmtp_port, timeout=20) as client:
            client.ehlo()
            client.mail("alice@remote.test")
            client.rcpt("bob@example.test")
            client.rcpt("carol@example.test")
            client.putcmd("data")
            assert client.getreply()[0] == 354
            client.send(MESSAGE.encode() + b".\r\n")
            assert [client.getreply()[0] for _ in range(2)] == [550, 550]


def test_a_milter_that_is_down_tempfails(start_server, server_cert):
    port = free_port()  # nothing listens there
    tables = milter_table("down", port) + milter_table("skipped", port, **{"on-error": '"accept"'})
    server = start(start_server, server_cert, tables, names='["skipped", "down"]')
    with pytest.raises(smtplib.SMTPDataError) as deferred:
        send(server)
    assert deferred.value.smtp_code == 451
    assert b"4.7.1" in deferred.value.smtp_error
    assert mailbox_messages(server, "bob@example.test") == []


def test_a_milter_that_is_down_is_skipped_with_on_error_accept(start_server, server_cert):
    table = milter_table("skipped", free_port(), **{"on-error": '"accept"'})
    server = start(start_server, server_cert, table, names='["skipped"]')
    send(server)
    assert len(mailbox_messages(server, "bob@example.test")) == 1


def test_a_milter_that_hangs_is_cut_off_by_its_timeout(start_server, server_cert):
    release = asyncio.Event()

    async def on_eom(command: EndOfMessage) -> AbstractResponse:
        await release.wait()  # never set: the milter does not answer

    with serve_milter(PurePythonMilter(name="h", hook_on_end_of_message=on_eom)) as port:
        table = milter_table("m", port, **{"timeout.data": '"0.5s"'})
        server = start(start_server, server_cert, table)
        with pytest.raises(smtplib.SMTPDataError) as deferred:
            send(server)
    assert deferred.value.smtp_code == 451


def test_a_listener_naming_a_missing_filter_does_not_load(start_server, server_cert):
    with pytest.raises(ConfigError, match=r"smtp\.filters.*no \[filter\.nope\]"):
        start(start_server, server_cert, milter_table("m", 1), names='["nope"]')


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[filter.m]\ntype = "milter"\nhostname = "127.0.0.1"\n', "needs a port"),
        ('[filter.m]\ntype = "milter"\nhostname = "h"\nport = 1\nprot = 2\n', "unknown key"),
        ('[filter.m]\ntype = "spamd"\n', "no filter type 'spamd'"),
        ('[filter.m]\nhostname = "h"\nport = 1\non-error = "ignore"\n', "on-error"),
    ],
)
def test_bad_filter_tables_are_config_errors(start_server, server_cert, table, message):
    with pytest.raises(ConfigError, match=message):
        start(start_server, server_cert, table)


def test_a_message_of_megabytes_passes_through_the_milter_whole(start_server, server_cert):
    """The body goes to the milter in chunks of at most 64 KB (SMFIC_BODY), all of it, and
    the stored message keeps every byte."""
    chunks: list[int] = []
    received = bytearray()

    async def on_body(command: BodyChunk) -> VerdictOrContinue:
        chunks.append(len(command.data_raw))
        received.extend(command.data_raw)
        return Continue()

    async def on_eom(command: EndOfMessage) -> AbstractResponse:
        return Continue(manipulations=[AppendHeader(headername="X-Size", headertext="seen")])

    line = "y" * 76 + "\r\n"
    body = line * (4 * 1024 * 1024 // len(line))
    message = "From: alice@remote.test\r\nTo: bob@example.test\r\nSubject: big\r\n\r\n" + body
    app = PurePythonMilter(
        name="sizer",
        hook_on_body_chunk=on_body,
        hook_on_end_of_message=on_eom,
        can_add_headers=True,
    )
    with serve_milter(app) as port:
        server = start(start_server, server_cert, milter_table("m", port))
        send(server, message=message)
        (stored,) = imap_inbox(server)
    assert bytes(received) == body.encode()
    assert max(chunks) <= 65535 and len(chunks) >= len(body) // 65535
    assert stored.endswith(body.encode()) and b"X-Size: seen" in stored
