"""Sieve notifications (RFC 5435, mailto RFC 5436) end to end: the script is uploaded over
ManageSieve, mail is delivered over SMTP and LMTP, the notification goes through the outbound
queue to a receiving SMTP server found through DNS (and to a local mailbox, read over IMAP),
and the rules that suppress one (automatic mail, lists, bounces) are seen in the queue."""

from __future__ import annotations

import email
import email.policy
import re
import time

import pytest

from tests.support.managesieve import (
    activate,
    config,
    deliver,
    deliver_lmtp,
    mailbox_contents,
    queued,
    sieve_server,
    where,
)
from tests.support.queue_world import outside_world

pytestmark = pytest.mark.filterwarnings("ignore:Credentials are sent over an unencrypted")

MX_ADDRESS = "127.0.0.22"
MESSAGE = (
    b"From: Ann <ann@remote.test>\r\n"
    b"To: Bob <bob@example.test>\r\n"
    b"Subject: the build is red\r\n"
    b"Message-ID: <n1@remote.test>\r\n"
    b"\r\n"
    b"Please look.\r\n"
)
SCRIPT = (
    'require ["enotify", "variables"];\r\n'
    'if header :matches "subject" "*" { set :encodeurl "s" "New: ${1}"; }\r\n'
    'notify :importance "1" :from "Bob <bob@example.test>"\r\n'
    '  "mailto:pager@remote.test?subject=${s}&cc=carol@example.test&X-Pager=1";\r\n'
)


@pytest.fixture
def outside():
    with outside_world(MX_ADDRESS) as world:
        yield world


def test_a_notification_reaches_a_remote_peer_and_a_local_mailbox(start_server, outside):
    _portal, zone, peer = outside
    text = config(extra="managesieve.auth.require-tls = false\n").replace(
        "hold = true",
        f'port = {peer.port}\ncommand-timeout = "20s"\ndata-timeout = "20s"\n\n'
        f'[queue.dns]\nnameservers = ["127.0.0.1:{zone.port}"]\n#',
    )
    server = start_server(text)
    for name in ("bob", "carol"):
        server.add_account(f"{name}@example.test", "correct horse battery")
    activate(server, SCRIPT)
    [result] = deliver(server, MESSAGE, "bob@example.test")
    assert result.code == 250
    [received] = peer.wait_for(1)
    assert received.mail_from == "bob@example.test"  # bounces of a broken target: to Bob
    assert received.rcpt_tos == ["pager@remote.test"]
    notification = email.message_from_bytes(received.data, policy=email.policy.default)
    assert notification["Subject"] == "New: the build is red"
    assert notification["From"] == "Bob <bob@example.test>"
    assert notification["Auto-Submitted"] == 'auto-notified; owner-email="bob@example.test"'
    assert notification["Importance"] == "High" and notification["X-Pager"] == "1"
    assert notification["To"] == "pager@remote.test" and notification["Cc"] == "carol@example.test"
    assert where(server) == {"INBOX": [[]]}  # notify keeps the message
    # The local copy, through the same queue, read over IMAP (the queue delivers it soon).
    carol = _wait_for_mail(server, "carol@example.test")
    assert b"Auto-Submitted: auto-notified" in carol
    assert re.search(rb"Subject: New: the build is red\r\n", carol)


def _wait_for_mail(server, address: str) -> bytes:
    """The first message in ``address``'s INBOX once the queue has delivered it."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        messages = mailbox_contents(server, address).get("INBOX", [])
        if messages:
            return messages[0][1]
        time.sleep(0.1)  # ok: polling for the queue's own delivery, which has no event
    raise TimeoutError(f"nothing arrived for {address}")


@pytest.fixture
def server(start_server):
    return sieve_server(start_server)


def test_no_notification_for_automatic_mail_lists_and_bounces_and_one_per_recipient(server):
    activate(
        server,
        'require "enotify";\r\n'
        'notify "mailto:pager@remote.test";\r\n'
        'notify :message "again" "mailto:pager@remote.test,other@remote.test";\r\n',
    )
    deliver(server, b"Auto-Submitted: auto-notified\r\n" + MESSAGE, "bob@example.test")
    deliver(server, b"List-Id: <l.remote.test>\r\n" + MESSAGE, "bob@example.test")
    deliver(server, b"Precedence: list\r\n" + MESSAGE, "bob@example.test")
    deliver(server, MESSAGE, "bob@example.test", mail_from="")  # a bounce
    assert queued(server) == []
    [reply] = deliver_lmtp(server, MESSAGE, "bob@example.test")
    assert reply.code == 250
    entries = queued(server)
    assert [(m, r, s) for m, r, s, _ in entries] == [
        ("bob@example.test", ["pager@remote.test"], "sieve"),
        ("bob@example.test", ["other@remote.test"], "sieve"),  # pager: notified once
    ]
    assert len(where(server)["INBOX"]) == 5


def test_from_must_be_the_users_and_a_bad_runtime_method_keeps_the_message(server):
    activate(
        server,
        'require ["enotify", "variables"];\r\n'
        'notify :from "ceo@bank.test" "mailto:pager@remote.test";\r\n'
        'set "m" "sms:+1555";\r\n'
        'if header :contains "subject" "fail" { notify "${m}"; }\r\n',
    )
    deliver(server, MESSAGE, "bob@example.test")
    [(_, _, _, data)] = queued(server)
    assert email.message_from_bytes(data)["From"] == "bob@example.test"
    deliver(server, MESSAGE.replace(b"red", b"fail"), "bob@example.test")
    assert len(queued(server)) == 1  # the run failed: no notification, the message kept
    assert len(where(server)["INBOX"]) == 2
