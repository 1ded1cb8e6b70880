"""Per-listener SMTP options over a real socket: the hostname, the AUTH mechanisms offered,
the content rules (bare LF, line length)."""

from __future__ import annotations

import base64
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.support.smtp import PASSWORD, connect, mailbox_messages, smtp_config

EXTRA = """
[server.listener.strict]
bind = "127.0.0.1:0"
protocol = "smtp"
smtp.hostname = "mx2.example.test"
smtp.bare-lf = "reject"
smtp.max-line-length = 100

[server.listener.plain-only]
bind = "127.0.0.1:0"
protocol = "smtp"
smtp.auth.require = true
smtp.auth.mechanisms = ["PLAIN"]
"""


@pytest.fixture
def server(start_server, server_cert):
    directory = Path(tempfile.mkdtemp(prefix="smtp", dir="/tmp"))
    server = start_server(smtp_config(server_cert, directory / "lmtp.sock", extra=EXTRA))
    server.add_account("bob@example.test", PASSWORD)
    yield server
    shutil.rmtree(directory, ignore_errors=True)


def test_a_listener_has_its_own_hostname(server):
    with connect(server, "strict") as client:
        code, text = client.ehlo("c.test")
        assert (code, text.split(b"\n")[0]) == (250, b"mx2.example.test Hello c.test")
    with connect(server, "smtp") as client:
        assert client.ehlo("c.test")[1].startswith(b"mail.example.test Hello")
    assert b"\tby mx2.example.test (stalwart-py)" in deliver(server, "strict", b"x\r\n")


def deliver(server, listener: str, body: bytes) -> bytes:
    with connect(server, listener) as client:
        client.sendmail("a@remote.test", ["bob@example.test"], b"Subject: t\r\n\r\n" + body)
    return mailbox_messages(server, "bob@example.test")[-1]


def data_reply(server, listener: str, content: bytes) -> tuple[int, bytes]:
    """The reply to the end of DATA for ``content`` sent to bob; the session must go on."""
    with connect(server, listener) as client:
        client.ehlo("c.test")
        client.mail("a@remote.test")
        client.rcpt("bob@example.test")
        answer = client.data(content)
        assert client.noop()[0] == 250
    return answer


def test_bare_lf_is_refused_where_the_listener_says_so_and_fixed_elsewhere(server):
    assert data_reply(server, "strict", b"Subject: t\r\n\r\none\ntwo\r\n")[0] == 554
    assert mailbox_messages(server, "bob@example.test") == []
    assert deliver(server, "smtp", b"one\ntwo\r\n").endswith(b"\r\n\r\none\r\ntwo\r\n")


def test_a_line_over_the_listeners_limit_is_refused(server):
    assert data_reply(server, "strict", b"Subject: t\r\n\r\n" + b"x" * 99 + b"\r\n") == (
        554,
        b"5.6.0 Message has a line longer than 100 octets",
    )
    assert deliver(server, "strict", b"x" * 98 + b"\r\n").endswith(b"x" * 98 + b"\r\n")


def test_only_the_configured_auth_mechanisms_are_offered_and_accepted(server, client_tls):
    with connect(server, "plain-only") as client:
        client.starttls(context=client_tls)
        client.ehlo("c.test")
        assert client.esmtp_features["auth"] == " PLAIN"
        user = base64.b64encode(b"bob@example.test").decode()
        assert client.docmd("AUTH", "LOGIN " + user)[0] == 504
        secret = base64.b64encode(f"\0bob@example.test\0{PASSWORD}".encode()).decode()
        assert client.docmd("AUTH", "PLAIN " + secret)[0] == 235


def test_a_looping_message_is_refused_at_the_end_of_data(server):
    trace = b"Received: from a.test by b.test; Mon, 1 Jun 2026 10:00:00 +0000\r\n"
    assert data_reply(server, "smtp", trace * 100 + b"Subject: t\r\n\r\nx\r\n") == (
        554,
        b"5.4.6 Too many hops (100): a mail loop",
    )
    assert mailbox_messages(server, "bob@example.test") == []
