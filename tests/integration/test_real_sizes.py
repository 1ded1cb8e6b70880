"""Messages at the sizes mail clients really send: attachments of megabytes.

Found in the field: an IMAP APPEND above about 300 KB never completed (the literal was awaited
whole while the transport had stopped reading at its high-water mark), so no client could save
a draft or a sent message with an attachment. Every path that takes a large block is tried
here with real clients, well past the transport's buffer (``transport.HIGH_WATER``).
"""

from __future__ import annotations

import imaplib
import os
import smtplib
from pathlib import Path

import pytest

from stalwart_py.transport import HIGH_WATER
from tests.integration import imap_support
from tests.support.smtp import PASSWORD as SMTP_PASSWORD
from tests.support.smtp import mailbox_messages, smtp_config, without_trace

SIZES = [400_000, 1_000_000, 5_000_000]


def message(size: int) -> bytes:
    """A message of ``size`` bytes: headers and a body of base64-like lines."""
    head = (
        b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: big\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n"
    )
    line = os.urandom(57).hex().encode()[:76] + b"\r\n"
    body = line * ((size - len(head)) // len(line) + 1)
    return head + body[: size - len(head) - 2] + b"\r\n"


def test_sizes_are_past_the_transport_buffer():
    assert min(SIZES) > HIGH_WATER


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("listener", ["imap", "imaps"])
def test_imap_append_of_megabytes(start_server, server_cert, client_tls, listener, size):
    server = imap_support.start(start_server, server_cert)
    data = message(size)
    host, port = server.address(listener)
    if listener == "imaps":
        client = imaplib.IMAP4_SSL(host, port, ssl_context=client_tls, timeout=30)
    else:
        client = imaplib.IMAP4(host, port, timeout=30)
    with client:
        client.login(imap_support.USER, imap_support.PASSWORD)
        typ, answer = client.append("INBOX", None, None, data)
        assert typ == "OK", answer
        client.select("INBOX")
        typ, fetched = client.fetch("1", "(RFC822.SIZE BODY.PEEK[])")
    assert typ == "OK"
    assert fetched[0][1] == data  # byte-identical
    assert f"RFC822.SIZE {size}".encode() in fetched[0][0]


def test_imap_non_synchronizing_literal_of_megabytes(start_server, server_cert):
    """LITERAL+ (RFC 7888): the octets follow the command line at once, no continuation."""
    server = imap_support.start(start_server, server_cert)
    data = message(3_000_000)
    with imaplib.IMAP4(*server.address("imap"), timeout=30) as client:
        client.login(imap_support.USER, imap_support.PASSWORD)
        client.send(b"a1 APPEND INBOX {%d+}\r\n" % len(data) + data + b"\r\n")
        reply = client.readline()
    assert reply.startswith(b"a1 OK"), reply


@pytest.mark.parametrize("size", [1_000_000, 5_000_000])
def test_smtp_data_and_bdat_of_megabytes(start_server, server_cert, tmp_path: Path, size):
    server = start_server(
        smtp_config(server_cert, tmp_path / "lmtp.sock", smtp='max-message-size = "20M"')
    )
    server.add_account("bob@example.test", SMTP_PASSWORD)
    data = message(size)
    host, port = server.address("smtp")
    with smtplib.SMTP(host, port, timeout=30) as smtp:
        smtp.sendmail("alice@example.test", ["bob@example.test"], data)  # DATA
        smtp.ehlo()
        smtp.mail("alice@example.test")
        smtp.rcpt("bob@example.test")
        half = len(data) // 2
        smtp.send(b"BDAT %d\r\n" % half + data[:half])
        assert smtp.getreply()[0] == 250
        smtp.send(b"BDAT %d LAST\r\n" % (len(data) - half) + data[half:])
        assert smtp.getreply()[0] == 250
    stored = mailbox_messages(server, "bob@example.test")
    assert [without_trace(m) for m in stored] == [data, data]
