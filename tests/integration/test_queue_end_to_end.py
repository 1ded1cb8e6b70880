"""End to end: a user submits with smtplib (STARTTLS, AUTH) on the submission listener; the
message reaches the receiving server found through DNS (MX), signed with DKIM (verified by
dkimpy against the key published in that DNS), with the envelope the user gave; and the
server puts no copy in the user's Sent mailbox (checked with imaplib): only a client does."""

from __future__ import annotations

import imaplib
import smtplib
import ssl

import dkim
import pytest

from tests.support.dkim_keys import legacy_key_file
from tests.support.mail_peers import dkim_key_lookup, txt_text
from tests.support.queue_world import outside_world
from tests.support.smtp import PASSWORD, queue

MX_ADDRESS = "127.0.0.15"
USER = "alice@example.test"
MESSAGE = (
    b"From: Alice <alice@example.test>\r\n"
    b"To: Bob <bob@remote.test>\r\n"
    b"Subject: end to end\r\n"
    b"Message-ID: <e2e-1@example.test>\r\n"
    b"Date: Mon, 1 Jun 2026 10:00:00 +0000\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hello Bob,\r\n"
    b"this went out through the queue.\r\n"
)


def config_text(cert, zone_port: int, peer_port: int) -> str:
    return f"""
[server]
hostname = "mail.example.test"

[server.tls]
certificate = "{cert[0]}"
private-key = "{cert[1]}"

[directory.throttle]
failure-delay = 0

[server.listener.submission]
bind = "127.0.0.1:0"
protocol = "smtp"
smtp.auth.require = true

[server.listener.imap]
bind = "127.0.0.1:0"
protocol = "imap"

[queue]
port = {peer_port}
command-timeout = "20s"
data-timeout = "20s"

[queue.dns]
nameservers = ["127.0.0.1:{zone_port}"]
"""


@pytest.fixture
def outside(ca):
    """The receiving MX offers STARTTLS with a certificate from the test CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("mx.remote.test").configure_cert(context)
    with outside_world(MX_ADDRESS, tls_context=context) as world:
        yield world


def imap_session(server, client_tls: ssl.SSLContext) -> imaplib.IMAP4:
    host, port = server.address("imap")
    client = imaplib.IMAP4(host, port, timeout=20)
    client.starttls(ssl_context=client_tls)
    client.login(USER, PASSWORD)
    return client


def test_submitted_mail_arrives_signed_with_its_envelope_and_no_sent_copy(
    start_server, server_cert, client_tls, outside, tmp_path
):
    _portal, zone, peer = outside
    # A key file as versions before the store wrote it (`stalwart-py dkim generate`): the
    # server imports it at start, and it keeps signing with its selector.
    key, _ = legacy_key_file(tmp_path / "var", "example.test", "e2e")
    zone.add(key.record_name, "TXT", txt_text(key.public_record))
    server = start_server(config_text(server_cert, zone.port, peer.port))
    server.add_account(USER, PASSWORD)

    host, port = server.address("submission")
    with smtplib.SMTP(host, port, timeout=20) as client:
        client.ehlo("laptop.example.test")
        assert client.starttls(context=client_tls)[0] == 220
        client.ehlo("laptop.example.test")
        assert client.login(USER, PASSWORD)[0] == 235
        assert client.sendmail(USER, ["bob@remote.test"], MESSAGE) == {}

    [received] = peer.wait_for(1)
    assert received.mail_from == USER
    assert received.rcpt_tos == ["bob@remote.test"]
    assert received.tls  # the MX offered STARTTLS, and the queue used it
    data = received.data
    assert data.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;")
    assert b" d=example.test;" in data and b" s=e2e;" in data
    assert dkim.verify(data, dnsfunc=dkim_key_lookup(zone.port))
    assert b"(authenticated sender: alice@example.test)" in data
    assert b"with ESMTPSA id" in data
    assert data.endswith(MESSAGE)  # the message itself as submitted, under the new fields
    server.run(server.context.queue.flush)
    assert queue(server) == []

    client = imap_session(server, client_tls)
    try:
        assert client.select("Sent") == ("OK", [b"0"])  # the server added no copy
        # A client that keeps a copy puts it there itself, and then it is there.
        status, _ = client.append("Sent", r"(\Seen)", None, MESSAGE)
        assert status == "OK"
        assert client.select("Sent") == ("OK", [b"1"])
        assert client.select("INBOX") == ("OK", [b"0"])  # and no bounce came back
    finally:
        client.logout()
