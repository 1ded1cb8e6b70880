"""Sieve at delivery, end to end: scripts uploaded and activated over ManageSieve (sievelib),
real MIME messages delivered over SMTP (smtplib) or LMTP, and the result read back over IMAP
(which mailbox, which flags); what was queued is read from the (held) queue."""

from __future__ import annotations

import email
import email.policy
import logging

import pytest

from tests.support.managesieve import (
    activate,
    deliver,
    deliver_lmtp,
    mailbox_contents,
    queued,
    sieve_server,
    where,
)

pytestmark = pytest.mark.filterwarnings("ignore:Credentials are sent over an unencrypted")

MESSAGE = (
    b"From: Ann <ann@remote.test>\r\n"
    b"To: Bob <bob@example.test>\r\n"
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe_from_the_news?=\r\n"
    b"Message-ID: <n1@remote.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="x"\r\n'
    b"\r\n"
    b"--x\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"VGhlIHNlY3JldCB3b3JkIGlzIGJhbmFuYS4=\r\n"
    b"--x--\r\n"
)


@pytest.fixture
def server(start_server):
    return sieve_server(start_server)


def test_an_activated_script_changes_where_the_next_delivery_lands(server):
    deliver(server, MESSAGE, "bob@example.test")
    assert where(server) == {"INBOX": [[]]}
    activate(
        server,
        'require ["fileinto", "imap4flags", "mailbox", "body"];\r\n'
        'if header :contains "subject" "Gr\u00fc\u00dfe" {\r\n'
        '  fileinto :create :flags ["\\\\Seen", "$News"] "News/Daily";\r\n'
        "}\r\n"
        'if body :text :contains "banana" { fileinto "Fruit"; }\r\n',  # no such mailbox: INBOX
    )
    [result] = deliver(server, MESSAGE, "bob@example.test")
    assert (result.code, result.enhanced) == (250, "2.0.0")
    assert where(server) == {"INBOX": [[], []], "News/Daily": [["$News", "\\Seen"]]}
    [(_, stored)] = mailbox_contents(server, "bob@example.test")["News/Daily"]
    assert stored.startswith(b"Return-Path: <ann@remote.test>\r\n") and stored.endswith(MESSAGE)


def test_keep_discard_and_implicit_keep_flags(server):
    activate(
        server,
        'require ["imap4flags", "envelope", "subaddress"];\r\n'
        'if envelope :detail "to" "junk" { discard; stop; }\r\n'
        'if envelope :detail "to" "keep" { keep :flags "\\\\Flagged"; stop; }\r\n'
        'addflag "\\\\Answered";\r\n',
    )
    results = [
        deliver(server, MESSAGE, f"bob+{tag}@example.test")[0] for tag in ("junk", "keep", "x")
    ]
    assert [r.code for r in results] == [250, 250, 250]
    assert where(server) == {"INBOX": [["\\Flagged"], ["\\Answered"]]}


def test_redirect_goes_through_the_queue_with_the_original_envelope(server):
    activate(
        server,
        'require "copy";\r\nredirect "friend@remote.test";\r\n'
        'redirect :copy "log@remote.test";\r\n',
    )
    deliver(server, MESSAGE, "bob@example.test", mail_from="ann@remote.test")
    assert where(server) == {}  # redirect cancelled the implicit keep
    [(mail_from, recipients, source, data)] = queued(server)
    assert mail_from == "ann@remote.test"
    assert sorted(recipients) == ["friend@remote.test", "log@remote.test"]
    assert source == "smtp" and data.endswith(MESSAGE) and b"Return-Path" not in data
    entry = server.run(server.context.store.queue_entries)[0]
    assert {r.orcpt for r in entry.recipients} == {"rfc822;bob@example.test"}


REJECT_ANN = (
    'require "reject";\r\nif header :contains "from" "ann" { reject "Not\r\nfrom you"; }\r\n'
)


def test_reject_refuses_only_that_recipient_over_lmtp(server):
    activate(server, REJECT_ANN)
    results = deliver_lmtp(server, MESSAGE, "bob@example.test", "carol@example.test")
    assert [(r.code, r.enhanced, r.text) for r in results] == [
        (550, "5.7.1", "<bob@example.test> Not from you"),
        (250, "2.0.0", "<carol@example.test> Delivered"),
    ]
    assert where(server) == {}
    assert where(server, "carol@example.test") == {"INBOX": [[]]}


def test_reject_over_smtp_with_another_recipient_sends_a_dsn(server):
    activate(server, REJECT_ANN)
    [result] = deliver(server, MESSAGE, "bob@example.test", "carol@example.test")
    assert result.code == 250  # carol has it; bob's refusal goes back as a DSN
    assert where(server) == {}
    assert where(server, "carol@example.test") == {"INBOX": [[]]}
    [(mail_from, recipients, source, data)] = queued(server)
    assert (mail_from, recipients, source) == ("", ["ann@remote.test"], "bounce")
    report = email.message_from_bytes(data, policy=email.policy.default)
    [status] = [p for p in report.walk() if p.get_content_type() == "message/delivery-status"]
    per_recipient = status.get_payload()[1]
    assert per_recipient["Final-Recipient"] == "rfc822; bob@example.test"
    assert per_recipient["Status"] == "5.7.1"
    assert "Not from you" in per_recipient["Diagnostic-Code"]


def test_reject_over_smtp_alone_is_the_smtp_answer(server):
    activate(server, REJECT_ANN)
    [result] = deliver(server, MESSAGE, "bob@example.test")
    assert (result.code, result.enhanced, result.text) == (550, "5.7.1", "Not from you")
    assert queued(server) == []


def test_vacation_replies_once_and_never_to_lists_bulk_or_bounces(server):
    activate(
        server,
        'require ["vacation", "variables"];\r\n'
        'if header :matches "subject" "*" { set "s" "${1}"; }\r\n'
        'vacation :days 7 :subject "Away (re: ${s})" "I am on holiday.";\r\n',
    )
    deliver(server, MESSAGE, "bob@example.test")
    deliver(server, MESSAGE, "bob@example.test")  # the same sender within 7 days: no reply
    deliver(server, MESSAGE.replace(b"Ann <ann", b"Carl <carl"), "bob@example.test",
            mail_from="carl@remote.test")  # fmt: skip
    deliver(server, b"List-Id: <l.remote.test>\r\n" + MESSAGE, "bob@example.test",
            mail_from="dan@remote.test")  # fmt: skip
    deliver(
        server, b"Precedence: bulk\r\n" + MESSAGE, "bob@example.test", mail_from="eve@remote.test"
    )
    deliver(server, b"Auto-Submitted: auto-replied\r\n" + MESSAGE, "bob@example.test",
            mail_from="fay@remote.test")  # fmt: skip
    deliver(server, MESSAGE, "bob@example.test", mail_from="")  # a bounce
    replies = queued(server)
    assert [(mail_from, recipients, source) for mail_from, recipients, source, _ in replies] == [
        ("", ["ann@remote.test"], "sieve"),
        ("", ["carl@remote.test"], "sieve"),
    ]
    reply = email.message_from_bytes(replies[0][3], policy=email.policy.default)
    assert reply["Subject"] == "Away (re: Gr\u00fc\u00dfe from the news)"
    assert reply["From"] == "bob@example.test" and reply["To"] == "ann@remote.test"
    assert reply["Auto-Submitted"] == "auto-replied (vacation)"
    assert reply["In-Reply-To"] == "<n1@remote.test>"
    assert len(where(server)["INBOX"]) == 7  # vacation keeps every message


def test_a_runtime_error_keeps_the_message_and_is_logged(server, caplog):
    activate(
        server,
        'require "fileinto";\r\nfileinto "A";\r\n'
        + "".join(f'redirect "r{i}@remote.test";\r\n' for i in range(5)),
    )
    with caplog.at_level(logging.WARNING, logger="stalwart_py.sieve"):
        [result] = deliver(server, MESSAGE, "bob@example.test")
    assert result.code == 250
    assert where(server) == {"INBOX": [[]]} and queued(server) == []
    assert "more than 4 redirects" in caplog.text and "bob@example.test" in caplog.text
    metrics = server.context.metrics.render().decode()
    assert 'stalwart_sieve_runs_total{result="error"} 1.0' in metrics


def test_include_and_mailboxexists(server):
    activate(
        server,
        'require ["include", "fileinto", "mailbox"];\r\n'
        'include "lists";\r\n'
        'if mailboxexists "Archive" { fileinto "Archive"; }\r\n',
        lists='require "fileinto";\r\n'
        'if address :domain "from" "remote.test" { fileinto "Remote"; }\r\n',
    )
    deliver(server, MESSAGE, "bob@example.test")
    assert where(server) == {"INBOX": [[]], "Archive": [[]]}  # "Remote" does not exist: INBOX


def test_vacation_from_must_be_an_address_of_the_account(server):
    server.run(server.context.directory.add_alias, "robert@example.test", ["bob@example.test"])
    activate(
        server, 'require "vacation";\r\nvacation :from "Robert <robert@example.test>" "Away";\r\n'
    )
    deliver(server, MESSAGE, "bob@example.test")
    activate(
        server, 'require "vacation";\r\nvacation :from "ceo@bank.test" :handle "2" "Away";\r\n'
    )
    deliver(server, MESSAGE, "bob@example.test")
    senders = [
        email.message_from_bytes(data, policy=email.policy.default)["From"]
        for _, _, _, data in queued(server)
    ]
    assert senders == ["Robert <robert@example.test>", "bob@example.test"]
