"""STARTTLS (RFC 3207), implicit TLS and AUTH (RFC 4954) with smtplib and a trustme CA."""

from __future__ import annotations

import base64
import shutil
import smtplib
import ssl
import tempfile
from pathlib import Path

import pytest

from tests.support.clients import LineClient
from tests.support.servers import METRICS_OF_ONE_WORKER
from tests.support.smtp import PASSWORD, connect, mailbox_messages, metric, smtp_config


@pytest.fixture
def server(start_server, server_cert):
    directory = Path(tempfile.mkdtemp(prefix="smtp", dir="/tmp"))
    server = start_server(smtp_config(server_cert, directory / "lmtp.sock"))
    server.add_account("bob@example.test", PASSWORD)
    yield server
    shutil.rmtree(directory, ignore_errors=True)


def plain(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


@pytest.mark.single_worker(METRICS_OF_ONE_WORKER)
def test_starttls_then_auth_plain_and_send(server, client_tls):
    with connect(server, "submission") as client:
        client.ehlo("c.test")
        assert not client.has_extn("auth")  # never offered in the clear
        assert client.docmd("AUTH", "PLAIN " + plain("bob@example.test", PASSWORD)) == (
            538,
            b"5.7.11 Encryption required for authentication",
        )
        assert client.starttls(context=client_tls)[0] == 220
        client.ehlo("c.test")
        assert client.esmtp_features["auth"] == " PLAIN LOGIN"
        assert not client.has_extn("starttls")
        assert client.docmd("STARTTLS") == (503, b"5.5.1 TLS already active")
        client.ehlo("c.test")
        assert client.login("bob@example.test", PASSWORD) == (
            235,
            b"2.7.0 Authentication successful",
        )
        assert client.docmd("AUTH", "PLAIN") == (503, b"5.5.1 Already authenticated")
        client.sendmail("bob@example.test", ["bob@example.test"], b"Subject: tls\r\n\r\nx\r\n")
    [stored] = mailbox_messages(server, "bob@example.test")
    assert b"with ESMTPSA id" in stored and b"(using TLSv1.3 with cipher" in stored
    assert metric(server, "stalwart_smtp_auth_total", listener="submission", result="success") == 1


def test_auth_login_over_implicit_tls(server, client_tls):
    with server.smtp("submissions", tls=client_tls) as client:  # the kit's smtplib client
        client.ehlo("c.test")
        assert not client.has_extn("starttls")
        client.user, client.password = "bob@example.test", PASSWORD
        assert client.auth("LOGIN", client.auth_login)[0] == 235
        client.sendmail("bob@example.test", ["bob@example.test"], b"Subject: 465\r\n\r\nx\r\n")
    assert len(mailbox_messages(server, "bob@example.test")) == 1


def test_the_certificate_is_the_configured_one(server, client_tls):
    host, port = server.address("submissions")
    with smtplib.SMTP_SSL(host, port, context=client_tls, timeout=20) as client:
        cert = client.sock.getpeercert()
        assert ("DNS", "mail.example.test") in cert["subjectAltName"]
    untrusting = ssl.create_default_context()
    with pytest.raises(ssl.SSLCertVerificationError):
        smtplib.SMTP_SSL(host, port, context=untrusting, timeout=20)


@pytest.mark.single_worker(METRICS_OF_ONE_WORKER)
def test_auth_failures_abort_and_bad_data(server, client_tls):
    with connect(server, "submission") as client:
        client.starttls(context=client_tls)
        client.ehlo("c.test")
        assert client.docmd("AUTH", "PLAIN " + plain("bob@example.test", "wrong")) == (
            535,
            b"5.7.8 Authentication credentials invalid",
        )
        assert client.docmd("AUTH", "CRAM-MD5") == (
            504,
            b"5.5.4 Unrecognized authentication mechanism",
        )
        assert client.docmd("AUTH", "LOGIN") == (334, base64.b64encode(b"Username:"))
        assert client.docmd("*") == (501, b"5.0.0 Authentication aborted")
        assert client.docmd("AUTH", "PLAIN") == (334, b"")
        assert client.docmd("not base64!")[0] == 501
        assert client.docmd("AUTH", "PLAIN " + plain("bob@example.test", PASSWORD))[0] == 235
    assert metric(server, "stalwart_smtp_auth_total", listener="submission", result="failure") == 1
    assert metric(server, "stalwart_smtp_auth_total", listener="submission", result="aborted") == 1


def test_repeated_failures_are_throttled(start_server, server_cert, client_tls):
    directory = Path(tempfile.mkdtemp(prefix="smtp", dir="/tmp"))
    server = start_server(
        smtp_config(server_cert, directory / "lmtp.sock").replace(
            "failure-delay = 0",
            'failure-delay = 0\nmax-failures-per-address = 2\nblock-time = "1m"',
        )
    )
    server.add_account("bob@example.test", PASSWORD)
    with connect(server, "submission") as client:
        client.starttls(context=client_tls)
        client.ehlo("c.test")
        for _ in range(2):
            assert client.docmd("AUTH", "PLAIN " + plain("bob@example.test", "bad"))[0] == 535
        assert client.docmd("AUTH", "PLAIN " + plain("bob@example.test", PASSWORD)) == (
            454,
            b"4.7.0 Too many failed logins, try again later",
        )
    shutil.rmtree(directory, ignore_errors=True)


def test_commands_pipelined_before_starttls_are_discarded(server, client_tls):
    with LineClient(server.address("submission")) as client:
        client.readline()
        client.send(b"EHLO c\r\n")
        while client.readline().startswith(b"250-"):
            pass
        client.send(b"STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\n")
        assert client.readline() == b"220 2.0.0 Ready to start TLS\r\n"
        client.start_tls(client_tls, "mail.example.test")
        client.send(b"MAIL FROM:<bob@example.test>\r\n")  # state was reset: EHLO first
        assert client.readline() == b"503 5.5.1 Send EHLO first\r\n"


def test_plaintext_auth_when_allowed(start_server, server_cert):
    directory = Path(tempfile.mkdtemp(prefix="smtp", dir="/tmp"))
    server = start_server(
        smtp_config(server_cert, directory / "lmtp.sock", smtp="auth.allow-plaintext = true")
    )
    server.add_account("bob@example.test", PASSWORD)
    with connect(server, "submission") as client:
        client.ehlo("c.test")
        assert client.has_extn("auth")
        assert client.login("bob@example.test", PASSWORD)[0] == 235
    shutil.rmtree(directory, ignore_errors=True)
