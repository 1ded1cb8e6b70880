"""The MAIL and RCPT policy, rule by rule, with the exact reply codes of the issue."""

from __future__ import annotations

import json
import shutil
import smtplib
import socket
import sqlite3
import tempfile
from pathlib import Path

import pytest

from stalwart_py.delivery import RecipientResult
from stalwart_py.dsn import RecipientStatus, build_dsn
from tests.support.proxied import ProxiedSMTP
from tests.support.servers import METRICS_OF_ONE_WORKER, PATCHES_THE_WORKER
from tests.support.smtp import PASSWORD, connect, mailbox_messages, metric, queue, smtp_config


@pytest.fixture
def server(start_server, server_cert, client_tls):
    directory = Path(tempfile.mkdtemp(prefix="smtp", dir="/tmp"))
    server = start_server(
        smtp_config(server_cert, directory / "lmtp.sock", smtp="max-messages-per-connection = 2")
    )
    server.add_account("bob@example.test", PASSWORD)
    server.add_account("carol@example.test", PASSWORD)
    server.run(server.context.directory.add_alias, "sales@example.test", ["carol@example.test"])
    yield server
    shutil.rmtree(directory, ignore_errors=True)


def rcpt(client: smtplib.SMTP, address: str) -> tuple[int, bytes]:
    return client.rcpt(address)


@pytest.mark.single_worker(METRICS_OF_ONE_WORKER)
def test_open_relay_attempts_are_denied(server):
    with connect(server) as client:  # 127.0.0.1 is not a relay host in this configuration
        client.ehlo("c.test")
        client.mail("spammer@remote.test")
        assert rcpt(client, "victim@elsewhere.test") == (554, b"5.7.1 Relay access denied")
        assert rcpt(client, "victim@[192.0.2.1]") == (554, b"5.7.1 Relay access denied")
        assert rcpt(client, "x@a.relay.test") == (554, b"5.7.1 Relay access denied")
        assert rcpt(client, "someone@relay.test") == (250, b"2.1.5 Recipient OK")  # relay = true
    assert metric(server, "stalwart_smtp_rejected_total", listener="smtp", code="554") == 3


def test_relay_hosts_may_relay(start_server, server_cert, tmp_path):
    server = start_server(
        smtp_config(server_cert, Path("/tmp/unused-lmtp-test.sock"))
        .replace("relay-hosts = []", 'relay-hosts = ["127.0.0.0/8"]')
        .replace(', "/tmp/unused-lmtp-test.sock"', "")
    )
    with connect(server) as client:
        client.sendmail("a@remote.test", ["far@elsewhere.test"], b"Subject: relayed\r\n\r\nx\r\n")
    [entry] = queue(server)
    assert [r.address for r in entry.recipients] == ["far@elsewhere.test"]
    with smtplib.SMTP(*server.address("smtp", 10), timeout=20) as client:  # ::1 is not
        client.ehlo("c.test")
        client.mail("a@remote.test")
        assert rcpt(client, "far@elsewhere.test")[0] == 554


DEFAULT_RELAY_CONFIG = """
[server]
hostname = "mail.example.test"

[queue]
hold = true

[server.listener.smtp]
bind = ["127.0.0.1:0", "[::1]:0"]
protocol = "smtp"

[server.listener.proxied]
bind = "127.0.0.1:0"
protocol = "smtp"
proxy.trusted-networks = ["127.0.0.1/32"]
"""


def test_relay_hosts_default_to_loopback_only(start_server):
    """A configuration without ``relay-hosts``: 127.0.0.0/8 and ::1 relay, nothing else."""
    server = start_server(DEFAULT_RELAY_CONFIG)
    with connect(server) as client:  # from 127.0.0.1: relayed, so queued
        client.sendmail("a@remote.test", ["far@elsewhere.test"], b"Subject: relayed\r\n\r\nx\r\n")
    [entry] = queue(server)
    assert [r.address for r in entry.recipients] == ["far@elsewhere.test"]
    with smtplib.SMTP(*server.address("smtp", socket.AF_INET6), timeout=20) as client:
        client.ehlo("c.test")
        client.mail("a@remote.test")
        assert rcpt(client, "far@elsewhere.test") == (250, b"2.1.5 Recipient OK")
    host, port = server.address("proxied")
    for peer, expected in [
        ("127.0.0.2", (250, b"2.1.5 Recipient OK")),
        ("127.255.255.254", (250, b"2.1.5 Recipient OK")),
        ("::ffff:127.0.0.1", (250, b"2.1.5 Recipient OK")),  # IPv4 loopback, dual stack
        ("192.0.2.2", (554, b"5.7.1 Relay access denied")),  # this host's LAN address
        ("10.0.0.1", (554, b"5.7.1 Relay access denied")),
        ("fd00::2", (554, b"5.7.1 Relay access denied")),
        ("::2", (554, b"5.7.1 Relay access denied")),
    ]:
        with ProxiedSMTP(peer, host, port) as client:
            client.ehlo("c.test")
            client.mail("a@remote.test")
            assert rcpt(client, "far@elsewhere.test") == expected, peer
    assert len(queue(server)) == 1


def test_local_recipients_must_exist(server):
    with connect(server) as client:
        client.ehlo("c.test")
        client.mail("a@remote.test")
        assert rcpt(client, "nobody@example.test") == (550, b"5.1.1 No such user here")
        assert rcpt(client, "bob+tag@example.test") == (250, b"2.1.5 Recipient OK")
        assert rcpt(client, "sales@example.test") == (250, b"2.1.5 Recipient OK")  # an alias
        assert rcpt(client, "bob@example.test") == (250, b"2.1.5 Recipient OK")
        assert rcpt(client, "BOB@EXAMPLE.TEST") == (452, b"4.5.3 Too many recipients")


def test_postmaster_without_a_domain_is_ours(server):
    # mail.example.test is local already: the administrator's domain
    server.run(
        server.context.directory.add_alias, "postmaster@mail.example.test", ["bob@example.test"]
    )
    with connect(server) as client:
        client.ehlo("c.test")
        client.mail("a@remote.test")
        assert client.docmd("RCPT", "TO:<Postmaster>") == (250, b"2.1.5 Recipient OK")
        assert client.data(b"Subject: hello postmaster\r\n\r\nx\r\n")[0] == 250
    assert len(mailbox_messages(server, "bob@example.test")) == 1


def test_max_messages_per_connection(server):
    with connect(server) as client:
        for _ in range(2):
            client.sendmail("a@remote.test", ["bob@example.test"], b"Subject: m\r\n\r\nm\r\n")
        assert client.mail("a@remote.test") == (
            451,
            b"4.7.0 Too many messages in this session, reconnect and try again",
        )
    with connect(server) as client:  # a new connection starts again
        client.ehlo("c.test")
        assert client.mail("a@remote.test")[0] == 250


def test_submission_requires_auth_and_a_sender_the_user_owns(server, client_tls):
    host, port = server.address("submission")
    with smtplib.SMTP(host, port, timeout=20) as client:
        client.ehlo("c.test")
        assert client.mail("bob@example.test") == (530, b"5.7.0 Authentication required")
        client.starttls(context=client_tls)
        client.ehlo("c.test")
        assert client.mail("bob@example.test") == (530, b"5.7.0 Authentication required")
        client.login("bob@example.test", PASSWORD)
        assert client.mail("carol@example.test") == (
            553,
            b"5.7.1 Sender address not owned by the authenticated user",
        )
        assert client.mail("<>")[0] == 553
        assert client.mail("bob+news@example.test")[0] == 250  # a subaddress is theirs
        client.rset()
        # an authenticated user may relay: the remote recipient goes to the queue
        client.sendmail(
            "bob@example.test",
            ["far@elsewhere.test"],
            b"Subject: out\r\n\r\nx\r\n",
            mail_options=["RET=HDRS", "ENVID=QQ+2B1"],
            rcpt_options=["NOTIFY=SUCCESS,DELAY", "ORCPT=rfc822;far+40elsewhere.test"],
        )
    [entry] = queue(server)
    assert entry.mail_from == "bob@example.test" and entry.source == "smtp"
    assert (entry.ret, entry.envid) == ("HDRS", "QQ+1")  # RFC 3461, carried to the queue
    [recipient] = entry.recipients
    assert recipient.notify == ("SUCCESS", "DELAY")
    assert recipient.orcpt == "rfc822;far@elsewhere.test"


def test_alias_owner_may_send_as_the_alias(server, client_tls):
    host, port = server.address("submission")
    with smtplib.SMTP(host, port, timeout=20) as client:
        client.starttls(context=client_tls)
        client.login("carol@example.test", PASSWORD)
        client.sendmail("sales@example.test", ["bob@example.test"], b"Subject: s\r\n\r\nx\r\n")
    [stored] = mailbox_messages(server, "bob@example.test")
    assert stored.startswith(b"Return-Path: <sales@example.test>")
    assert b"with ESMTPSA id" in stored and b"(authenticated sender: carol@example.test)" in stored


@pytest.mark.single_worker(METRICS_OF_ONE_WORKER)
def test_wildcard_report_domains_record_reports(server):
    dsn = build_dsn(
        reporting_mta="mx.remote.test",
        sender="bounces@bounces.example.test",
        recipients=[RecipientStatus("gone@remote.test", "failed", "5.1.1", "550 5.1.1 gone")],
        original=b"Subject: original\r\n\r\nx\r\n",
    )
    arf = (
        b"From: fbl@isp.test\r\nSubject: FW: complaint\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=feedback-report; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n"
        b"--b\r\nContent-Type: message/feedback-report\r\n\r\n"
        b"Feedback-Type: abuse\r\nUser-Agent: isp-fbl/1.0\r\nVersion: 1\r\n"
        b"Original-Mail-From: <news@example.test>\r\nSource-IP: 192.0.2.9\r\n"
        b"Original-Rcpt-To: <u1@isp.test>\r\nOriginal-Rcpt-To: <u2@isp.test>\r\n\r\n"
        b"--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: news\r\n\r\nx\r\n--b--\r\n"
    )
    with connect(server) as client:
        client.ehlo("c.test")
        client.sendmail("", ["bounces@bounces.example.test"], dsn)
        client.sendmail("fbl@isp.test", ["reports@mx.fbl.test"], arf)
    with connect(server) as client:
        client.ehlo("c.test")
        client.mail("fbl@isp.test")
        assert rcpt(client, "x@fbl.test")[0] == 554  # the wildcard never matches itself
        assert rcpt(client, "x@quiet.fbl.test")[0] == 554  # carved out of the wildcard
    reports = {r.kind: r for r in server.run(server.context.store.list_reports)}
    assert reports["dsn"].domain == "bounces.example.test" and reports["dsn"].mail_from == ""
    summary = json.loads(reports["dsn"].summary)
    assert summary["parsed"] and summary["reporting_mta"] == "dns; mx.remote.test"
    assert summary["recipients"][0]["status"] == "5.1.1"
    assert summary["recipients"][0]["final_recipient"] == "rfc822; gone@remote.test"
    assert reports["arf"].domain == "mx.fbl.test"
    summary = json.loads(reports["arf"].summary)
    assert summary["feedback_type"] == "abuse" and summary["source_ip"] == "192.0.2.9"
    assert summary["original_rcpt_to"] == ["<u1@isp.test>", "<u2@isp.test>"]
    assert metric(server, "stalwart_smtp_reports_total", listener="smtp", kind="arf") == 1


def test_mixed_results_get_250_and_a_dsn_for_the_failed(server):
    # quota: carol can hold nothing; bob gets the message
    server.run(lambda: server.context.store.update_account("carol@example.test", quota_bytes=1))
    with connect(server) as client:
        client.ehlo("c.test")
        refused = client.sendmail(
            "sender@remote.test",
            ["bob@example.test", "carol@example.test"],
            b"Subject: two\r\n\r\nx\r\n",
        )
        assert refused == {}  # the transaction as a whole was accepted
    assert len(mailbox_messages(server, "bob@example.test")) == 1
    [bounce] = queue(server)
    assert bounce.mail_from == "" and bounce.source == "bounce"
    assert [r.address for r in bounce.recipients] == ["sender@remote.test"]
    blob = server.run(server.context.store.read_blobs, [bounce.blob_id])[bounce.blob_id]
    assert b"Final-Recipient: rfc822; carol@example.test" in blob and b"Status: 5.2.2" in blob


@pytest.mark.single_worker(PATCHES_THE_WORKER)
def test_a_recipient_that_failed_for_now_is_queued_for_a_later_try(server):
    deliver = server.context.delivery.deliver

    async def carol_fails_for_now(envelope, message, origin, **options):
        results = await deliver(envelope, message, origin, **options)
        return [
            RecipientResult(r.address, 451, "4.3.0", "Temporary local failure")
            if r.address == "carol@example.test"
            else r
            for r in results
        ]

    server.context.delivery.deliver = carol_fails_for_now
    with connect(server) as client:
        client.ehlo("c.test")
        assert (
            client.sendmail(
                "sender@remote.test",
                ["bob@example.test", "carol@example.test"],
                b"Subject: two\r\n\r\nx\r\n",
            )
            == {}
        )
    [retry] = queue(server)  # no DSN: carol's copy waits in the queue, for the local delivery
    assert (retry.mail_from, retry.source) == ("sender@remote.test", "smtp")
    assert [r.address for r in retry.recipients] == ["carol@example.test"]


def test_all_failed_gets_the_first_failure_and_no_dsn_for_null_sender(server):
    server.run(lambda: server.context.store.update_account("carol@example.test", quota_bytes=1))
    with connect(server) as client:
        client.ehlo("c.test")
        client.mail("<>")
        client.rcpt("carol@example.test")
        code, text = client.data(b"Subject: one\r\n\r\nx\r\n")
        assert (code, text[:5]) == (552, b"5.2.2")
        client.mail("<>")
        client.rcpt("carol@example.test")
        client.rcpt("bob@example.test")
        assert client.data(b"Subject: mixed\r\n\r\nx\r\n")[0] == 250
    assert queue(server) == []  # never a DSN to the null sender


@pytest.mark.single_worker(PATCHES_THE_WORKER)
def test_a_directory_failure_is_a_temporary_failure(server):
    async def broken(address):
        raise sqlite3.OperationalError("disk I/O error")

    server.context.directory.resolve = broken
    with connect(server) as client:
        client.ehlo("c.test")
        client.mail("a@remote.test")
        assert client.rcpt("bob@example.test") == (
            451,
            b"4.3.0 Temporary local failure, try again later",
        )
        assert client.noop()[0] == 250  # and the session goes on


def test_postmaster_is_always_accepted(server):
    """RFC 5321 4.5.1: <Postmaster> (no domain) and postmaster@ every local domain must be
    accepted, from anyone; they were refused (relay denied, no such user). Without an alias
    they reach the first administrator; an alias says otherwise."""
    admin = server.run(server.context.directory.postmaster)
    assert admin is not None and admin.is_admin
    with connect(server) as client:  # 127.0.0.1 is not a relay host in this configuration
        client.ehlo("c.test")
        client.mail("someone@remote.test")
        assert rcpt(client, "<Postmaster>")[0] == 250
        assert rcpt(client, "POSTMASTER@example.test")[0] == 250
        assert client.data(b"Subject: to the postmaster\r\n\r\nhello\r\n")[0] == 250
    assert len(mailbox_messages(server, admin.address)) == 1  # both name the same account
    server.run(server.context.directory.add_alias, "postmaster@example.test", ["bob@example.test"])
    with connect(server) as client:
        client.sendmail("someone@remote.test", ["postmaster@example.test"], b"Subject: x\r\n\r\n.")
    assert len(mailbox_messages(server, "bob@example.test")) == 1
    assert len(mailbox_messages(server, admin.address)) == 1
