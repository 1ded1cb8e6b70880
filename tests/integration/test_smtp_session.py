"""SMTP sessions over real sockets with smtplib: the dialogue, content, limits, bad input."""

from __future__ import annotations

import shutil
import smtplib
import socket
import tempfile
from pathlib import Path

import pytest

from tests.support.clients import LineClient
from tests.support.servers import METRICS_OF_ONE_WORKER
from tests.support.smtp import (
    PASSWORD,
    connect,
    mailbox_messages,
    metric,
    smtp_config,
    without_trace,
)

MESSAGE = (
    b"From: Alice <alice@remote.test>\r\n"
    b"To: Bob <bob@example.test>\r\n"
    b"Subject: round trip\r\n"
    b"Message-ID: <1@remote.test>\r\n"
    b"\r\n"
    b".a line that starts with a dot\r\n"
    b"..and one with two\r\n"
    b".\r\n"  # a line of one dot: the client stuffs it, so it does not end the data
    b"caf\xc3\xa9 8bit\r\n"
)


@pytest.fixture
def short_dir():
    path = Path(tempfile.mkdtemp(prefix="smtp", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def start(start_server, server_cert, short_dir, extra="", smtp=""):
    server = start_server(smtp_config(server_cert, short_dir / "lmtp.sock", extra, smtp))
    server.add_account("bob@example.test", PASSWORD)
    return server


@pytest.fixture
def server(start_server, server_cert, short_dir):
    return start(start_server, server_cert, short_dir)


def test_greeting_ehlo_and_the_simple_commands(server):
    with connect(server) as client:
        assert client.ehlo("client.test") == (
            250,
            b"mail.example.test Hello client.test\nPIPELINING\nSIZE 26214400\n8BITMIME\n"
            b"SMTPUTF8\nENHANCEDSTATUSCODES\nCHUNKING\nDSN\nSTARTTLS",
        )  # no AUTH before TLS
        assert client.noop() == (250, b"2.0.0 OK")
        assert client.rset() == (250, b"2.0.0 Reset state")
        assert client.verify("bob") == (
            252,
            b"2.5.0 Cannot VRFY user, but will accept message and attempt delivery",
        )
        assert client.docmd("EXPN", "staff") == (502, b"5.5.1 Command not implemented")
        assert client.docmd("HELP")[0] == 214
        assert client.helo("old.test") == (250, b"mail.example.test")
    with LineClient(server.address("smtp")) as raw:
        assert raw.readline() == b"220 mail.example.test ESMTP stalwart-py\r\n"


def test_round_trip_is_byte_identical_apart_from_the_trace_headers(server):
    with connect(server) as client:
        client.ehlo("client.test")
        client.sendmail("alice@remote.test", ["bob@example.test"], MESSAGE)
    [stored] = mailbox_messages(server, "bob@example.test")
    assert without_trace(stored) == MESSAGE
    assert b"with ESMTP id " in stored and b"for <bob@example.test>" in stored


def test_pipelined_transactions_get_their_replies_in_one_write(server):
    with LineClient(server.address("smtp")) as client:
        client.readline()
        client.send(b"EHLO c.test\r\n")
        while client.readline().startswith(b"250-"):
            pass
        # two whole transactions in one write (RFC 2920): every reply comes back in order
        client.send(
            b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@example.test>\r\n"
            b"RCPT TO:<nobody@example.test>\r\nDATA\r\n"
        )
        assert [client.readline() for _ in range(4)] == [
            b"250 2.1.0 Sender OK\r\n",
            b"250 2.1.5 Recipient OK\r\n",
            b"550 5.1.1 No such user here\r\n",
            b"354 End data with <CR><LF>.<CR><LF>\r\n",
        ]
        client.send(
            b"Subject: one\r\n\r\n1\r\n.\r\nMAIL FROM:<a@remote.test>\r\n"
            b"RCPT TO:<bob@example.test>\r\nDATA\r\n"
        )
        assert client.readline().startswith(b"250 2.0.0 Message accepted")
        assert client.readline() == b"250 2.1.0 Sender OK\r\n"
        assert client.readline() == b"250 2.1.5 Recipient OK\r\n"
        assert client.readline().startswith(b"354 ")
        client.send(b"Subject: two\r\n\r\n2\r\n.\r\nQUIT\r\n")
        assert client.readline().startswith(b"250 2.0.0 Message accepted")
        assert client.readline() == b"221 2.0.0 Bye\r\n"
    stored = mailbox_messages(server, "bob@example.test")
    assert [without_trace(m) for m in stored] == [
        b"Subject: one\r\n\r\n1\r\n",
        b"Subject: two\r\n\r\n2\r\n",
    ]


def test_data_after_only_failed_recipients_is_refused(server):
    with LineClient(server.address("smtp")) as client:
        client.readline()
        client.send(b"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<nobody@example.test>\r\nDATA\r\n")
        replies = [client.readline() for _ in range(4)]
        assert replies[2:] == [
            b"550 5.1.1 No such user here\r\n",
            b"554 5.5.1 No valid recipients\r\n",
        ]


def test_bdat_chunks(server):
    first, second = b"Subject: chunked\r\n\r\n", b"binary-ish \x00 and .dots\r\n.\r\n"
    with connect(server) as client:
        client.ehlo("c.test")
        assert client.mail("alice@remote.test")[0] == 250
        assert client.rcpt("bob@example.test")[0] == 250
        client.send(f"BDAT {len(first)}\r\n".encode() + first)
        assert client.getreply() == (250, f"2.0.0 {len(first)} octets received".encode())
        client.send(f"BDAT {len(second)} LAST\r\n".encode() + second)
        code, text = client.getreply()
        assert code == 250 and text.startswith(b"2.0.0 Message accepted")
        # DATA cannot follow BDAT in one transaction; BDAT outside one is read and refused
        client.send(b"BDAT 3\r\nabc")
        assert client.getreply() == (503, b"5.5.1 Need MAIL command first")
        assert client.noop()[0] == 250  # the 3 octets were not read as a command
    [stored] = mailbox_messages(server, "bob@example.test")
    assert without_trace(stored) == first + second  # no unstuffing in BDAT


def test_smtputf8(server):
    server.run(server.context.directory.add_alias, "josé@example.test", ["bob@example.test"])
    message = "From: josé@remote.test\r\nSubject: ¡hola!\r\n\r\nçà\r\n".encode()
    with connect(server) as client:
        client.ehlo("c.test")
        assert client.has_extn("smtputf8")
        client.command_encoding = "utf-8"  # smtplib would refuse to send it without SMTPUTF8
        assert client.mail("josé@remote.test") == (
            553,
            b"5.6.7 Non-ASCII address requires SMTPUTF8",
        )
        client.rset()
        client.sendmail("josé@remote.test", ["josé@example.test"], message, ["SMTPUTF8"])
    [stored] = mailbox_messages(server, "bob@example.test")
    assert without_trace(stored) == message
    assert b"with UTF8SMTP id" in stored


def test_size_limits_on_data_and_bdat(start_server, server_cert, short_dir):
    server = start(start_server, server_cert, short_dir, smtp="max-message-size = 1000")
    with connect(server) as client:
        client.ehlo("c.test")
        assert client.esmtp_features["size"] == "1000"
        assert client.mail("a@remote.test", ["SIZE=1001"]) == (
            552,
            b"5.3.4 Message size exceeds fixed maximum message size",
        )
        client.rset()
        client.mail("a@remote.test")  # no SIZE: found while reading, not buffered past it
        client.rcpt("bob@example.test")
        assert client.data(b"x" * 900 + b"\r\n" + b"y" * 200) == (
            552,
            b"5.3.4 Message size exceeds fixed maximum message size",
        )
        client.mail("a@remote.test")
        client.rcpt("bob@example.test")
        client.send(b"BDAT 600\r\n" + b"z" * 600)
        assert client.getreply()[0] == 250
        client.send(b"BDAT 600\r\n" + b"z" * 600)
        assert client.getreply() == (552, b"5.3.4 Message size exceeds fixed maximum message size")
        client.send(b"BDAT 10 LAST\r\n" + b"z" * 10)
        assert client.getreply()[0] == 552
        assert client.noop()[0] == 250
    assert mailbox_messages(server, "bob@example.test") == []


def test_a_peer_scope_changes_the_limits(server):
    # ::1 has max-recipients-per-message = 1 and max-message-size = 2000
    with smtplib.SMTP(*server.address("smtp", socket.AF_INET6), timeout=20) as client:
        client.ehlo("c.test")
        assert client.esmtp_features["size"] == "2000"
        client.mail("a@remote.test")
        assert client.rcpt("bob@example.test")[0] == 250
        assert client.rcpt("bob@example.test") == (452, b"4.5.3 Too many recipients")
    with connect(server) as client:  # 127.0.0.1: the listener's 3
        client.ehlo("c.test")
        client.mail("a@remote.test")
        assert [client.rcpt("bob@example.test")[0] for _ in range(4)] == [250, 250, 250, 452]


@pytest.mark.single_worker(METRICS_OF_ONE_WORKER)
def test_oversized_and_garbage_lines_then_the_bad_command_limit(server):
    with LineClient(server.address("smtp")) as client:
        client.readline()
        client.send(b"NOOP " + b"x" * 20000 + b"\r\n")
        assert client.readline() == b"500 5.5.2 Line too long\r\n"
        client.send(b"\x00\xff\xfe garbage\r\n")
        assert client.readline() == b"500 5.5.2 Command is not valid UTF-8\r\n"
        client.send(b"NOOP\r\n")
        assert client.readline() == b"250 2.0.0 OK\r\n"  # the session goes on
        for _ in range(7):
            client.send(b"\x01\x02\x03\r\n")
            assert client.readline().startswith(b"500 5.5.2")
        client.send(b"WHAT\r\n")  # the 10th bad command
        assert client.readline() == b"500 5.5.2 Syntax error, command unrecognized\r\n"
        assert client.readline() == b"421 4.7.0 mail.example.test Too many errors\r\n"
        assert client.readline() == b""  # closed
    assert metric(server, "stalwart_smtp_rejected_total", listener="smtp", code="421") == 1


def test_a_stalled_client_gets_421(start_server, server_cert, short_dir):
    server = start(
        start_server,
        server_cert,
        short_dir,
        '[server.listener.slow]\nbind = "127.0.0.1:0"\nprotocol = "smtp"\n'
        'smtp.timeout.command = "1s"\nsmtp.timeout.data = "1s"\n',
    )
    with LineClient(server.address("slow")) as client:
        client.readline()
        # no command for a second
        assert client.readline() == b"421 4.4.2 mail.example.test Timeout, closing\r\n"
        assert client.readline() == b""
    with LineClient(server.address("slow")) as client:
        client.readline()
        client.send(b"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
        assert [client.readline()[:3] for _ in range(4)] == [b"250", b"250", b"250", b"354"]
        client.send(b"Subject: half a message\r\n")  # and then nothing
        assert client.readline().startswith(b"421 4.4.2")
    assert mailbox_messages(server, "bob@example.test") == []


@pytest.mark.single_worker(METRICS_OF_ONE_WORKER)
def test_a_client_gone_in_the_middle_of_data_leaves_nothing(server):
    for _ in range(3):
        with LineClient(server.address("smtp")) as client:
            client.readline()
            client.send(b"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
            while not client.readline().startswith(b"354"):
                pass
            client.send(b"Subject: cut\r\n\r\n" + b"x" * 5000)
    server.wait_until(lambda: server.registry.open_connections == 0)
    assert mailbox_messages(server, "bob@example.test") == []
    assert metric(server, "stalwart_connections_open", listener="smtp") == 0
    assert metric(server, "stalwart_smtp_messages_received_total", listener="smtp") == 0


@pytest.mark.single_worker(METRICS_OF_ONE_WORKER)
def test_metrics_count_messages_and_rejections(server):
    with connect(server) as client:
        client.sendmail("a@remote.test", ["bob@example.test"], b"Subject: m\r\n\r\nm\r\n")
        client.mail("a@remote.test")
        client.rcpt("nobody@example.test")
    assert metric(server, "stalwart_smtp_messages_received_total", listener="smtp") == 1
    assert metric(server, "stalwart_smtp_messages_delivered_total", listener="smtp") == 1
    assert metric(server, "stalwart_smtp_rejected_total", listener="smtp", code="550") == 1


@pytest.mark.single_worker(METRICS_OF_ONE_WORKER)
def test_a_refused_peer_hears_421(start_server, server_cert, short_dir):
    server = start(
        start_server,
        server_cert,
        short_dir,
        '[server.listener.smtp.peer."127.0.0.2/32"]\nallow = false\n',
    )
    with LineClient(server.address("smtp")) as client:
        assert client.readline().startswith(b"220 ")
    sock = socket.socket()
    sock.bind(("127.0.0.2", 0))
    sock.settimeout(20)
    sock.connect(server.address("smtp"))
    assert sock.recv(200) == b"421 mail.example.test Access denied\r\n"
    sock.close()
    assert metric(server, "stalwart_smtp_rejected_total", listener="smtp", code="421") == 1
