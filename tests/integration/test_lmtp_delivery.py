"""LMTP (RFC 2033) over TCP and a Unix socket with smtplib.LMTP: one reply per recipient."""

from __future__ import annotations

import shutil
import smtplib
import tempfile
from pathlib import Path

import pytest

from tests.support.clients import LineClient
from tests.support.smtp import PASSWORD, mailbox_messages, queue, smtp_config, without_trace


@pytest.fixture
def socket_path():
    directory = Path(tempfile.mkdtemp(prefix="lmtp", dir="/tmp"))
    yield directory / "lmtp.sock"
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def server(start_server, server_cert, socket_path):
    server = start_server(smtp_config(server_cert, socket_path))
    server.add_account("bob@example.test", PASSWORD)
    server.add_account("carol@example.test", PASSWORD)
    return server


def test_lmtp_over_a_unix_socket(server, socket_path):
    message = b"Subject: lmtp\r\n\r\n.dot\r\nbody\r\n"
    with smtplib.LMTP(str(socket_path), timeout=20) as client:
        client.ehlo("c.test")  # smtplib's LMTP sends LHLO for it
        assert client.ehlo_resp.startswith(b"mail.example.test Hello")  # the LHLO reply
        assert client.has_extn("pipelining") and not client.has_extn("auth")
        # smtplib reads one reply after the data, so one recipient per message here; the
        # replies per recipient are checked on a raw socket below.
        assert client.sendmail("a@remote.test", ["bob@example.test"], message) == {}
        assert client.sendmail("a@remote.test", ["carol@example.test"], message) == {}
    [stored] = mailbox_messages(server, "bob@example.test")
    assert without_trace(stored) == message and b"with LMTP id" in stored
    assert len(mailbox_messages(server, "carol@example.test")) == 1


def test_one_reply_per_recipient_after_the_data(server):
    server.run(lambda: server.context.store.update_account("carol@example.test", quota_bytes=1))
    with LineClient(server.address("lmtp")) as client:
        assert client.readline() == b"220 mail.example.test LMTP stalwart-py\r\n"
        client.send(b"EHLO c\r\n")
        assert client.readline() == b"500 5.5.2 Syntax error, command unrecognized\r\n"
        client.send(b"LHLO c\r\n")
        while client.readline().startswith(b"250-"):
            pass
        client.send(
            b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@example.test>\r\n"
            b"RCPT TO:<nobody@example.test>\r\nRCPT TO:<far@elsewhere.test>\r\n"
            b"RCPT TO:<carol@example.test>\r\nDATA\r\n"
        )
        assert [client.readline() for _ in range(6)] == [
            b"250 2.1.0 Sender OK\r\n",
            b"250 2.1.5 Recipient OK\r\n",
            b"550 5.1.1 No such user here\r\n",
            b"550 5.1.2 Domain not handled here, LMTP delivers to local domains only\r\n",
            b"250 2.1.5 Recipient OK\r\n",
            b"354 End data with <CR><LF>.<CR><LF>\r\n",
        ]
        client.send(b"Subject: x\r\n\r\nx\r\n.\r\n")
        assert client.readline() == b"250 2.0.0 <bob@example.test> Delivered\r\n"
        reply = client.readline()
        assert reply.startswith(b"552 5.2.2 <carol@example.test> ")
    assert queue(server) == []  # LMTP never relays and never bounces


def test_a_refused_message_gets_a_reply_per_recipient(start_server, server_cert, socket_path):
    server = start_server(
        # the extra keys land in the lmtp listener's table, the last of the file
        smtp_config(server_cert, socket_path, extra="lmtp.max-message-size = 100\n")
    )
    server.add_account("bob@example.test", PASSWORD)
    server.add_account("carol@example.test", PASSWORD)
    with smtplib.LMTP(str(socket_path), timeout=20) as client:
        client.ehlo("c.test")
        client.mail("a@remote.test")
        client.rcpt("bob@example.test")
        client.rcpt("carol@example.test")
        client.putcmd("DATA")
        assert client.getreply()[0] == 354
        client.send(b"x" * 200 + b"\r\n.\r\n")
        too_big = (552, b"5.3.4 Message size exceeds fixed maximum message size")
        assert [client.getreply(), client.getreply()] == [too_big, too_big]
        assert client.noop()[0] == 250


def test_lmtp_bdat(server, socket_path):
    with smtplib.LMTP(str(socket_path), timeout=20) as client:
        client.ehlo("c.test")
        client.mail("a@remote.test")
        client.rcpt("bob@example.test")
        client.rcpt("carol@example.test")
        body = b"Subject: chunk\r\n\r\nx\r\n"
        client.send(f"BDAT {len(body)} LAST\r\n".encode() + body)
        assert client.getreply()[0] == 250
        assert client.getreply()[0] == 250
    assert len(mailbox_messages(server, "carol@example.test")) == 1


def test_a_message_count_quota_refuses_with_552(server, socket_path):
    server.add_account("dora@example.test", PASSWORD, quota_messages=1)
    message = b"Subject: count\r\n\r\nx\r\n"
    with smtplib.LMTP(str(socket_path), timeout=20) as client:
        client.ehlo("c.test")
        assert client.sendmail("a@remote.test", ["dora@example.test"], message) == {}
        # A second message of a few bytes: the count, not the size, is over the quota.
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail("a@remote.test", ["dora@example.test"], message)
        assert (refused.value.smtp_code, refused.value.smtp_error) == (
            552,
            b"5.2.2 <dora@example.test> mailbox full: message quota exceeded",
        )
        assert client.noop()[0] == 250  # the session goes on
    assert len(mailbox_messages(server, "dora@example.test")) == 1
    assert queue(server) == []  # LMTP never bounces: the client reports the failure
