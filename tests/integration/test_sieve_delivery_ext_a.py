"""Sieve date/index, editheader, environment, ihave, regex and duplicate at delivery, end to
end: each script is activated over ManageSieve (sievelib), messages are delivered over SMTP
or LMTP, and what the script did is read back over IMAP (mailbox, flags, the stored bytes)
or from the outbound queue."""

from __future__ import annotations

import textwrap

import pytest

from stalwart_py.sieve import EXTENSIONS
from tests.support.managesieve import (
    PASSWORD,
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
    b"Subject: [alerts] disk full on web3\r\n"
    b"Date: Wed, 12 Nov 2008 12:34:56 -0800\r\n"
    b"X-Spam: yes\r\n"
    b"X-Spam: really\r\n"
    b"Auto-Submitted: auto-generated\r\n"
    b"Message-ID: <dup-1@remote.test>\r\n"
    b"\r\n"
    b"Hello.\r\n"
)


@pytest.fixture
def server(start_server):
    return sieve_server(start_server)


def script(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n").replace("\n", "\r\n")


def test_the_extensions_are_advertised_over_managesieve():
    for name in ("date", "index", "editheader", "environment", "ihave", "regex", "duplicate"):
        assert name in EXTENSIONS


def test_date_index_environment_and_ihave(server):
    activate(
        server,
        script("""
            require ["date", "index", "environment", "ihave", "imap4flags", "relational",
                     "variables", "fileinto"];
            if date :originalzone "date" "weekday" "3" { addflag "wednesday"; }
            if date :zone "+0100" "date" "hour" "21" { addflag "nine_pm_in_paris"; }
            if date :value "lt" :zone "+0000" "date" "date" "2009-01-01" { addflag "old"; }
            if currentdate :value "ge" "year" "2024" { addflag "now_known"; }
            if header :index 2 "x-spam" "really" { addflag "second_spam"; }
            if environment "location" "MDA" { addflag "mda"; }
            if environment "host" "mail.example.test" { addflag "host"; }
            if environment "remote-ip" "127.0.0.1" { addflag "from_loopback"; }
            if environment :matches "name" "stalwart*" { addflag "named"; }
            if ihave "x-unheard-of" { frobnicate "everything"; }
            elsif ihave "mailbox" { fileinto :create "Checked"; }
        """),
    )
    deliver(server, MESSAGE, "bob@example.test")
    assert where(server) == {
        "Checked": [
            ["from_loopback", "host", "mda", "named", "nine_pm_in_paris", "now_known", "old",
             "second_spam", "wednesday"]
        ]
    }  # fmt: skip


def test_editheader_changes_what_is_stored_and_redirected(server):
    activate(
        server,
        script("""
            require ["editheader", "imap4flags", "copy"];
            deleteheader "x-spam";
            deleteheader "received";
            deleteheader "auto-submitted";
            addheader "X-Filtered" "by Bob's script — ünïcode";
            addheader :last "X-Footer" "last";
            if not exists "x-spam" { addflag "spam_gone"; }
            redirect :copy "archive@remote.test";
        """),
    )
    deliver_lmtp(server, MESSAGE, "bob@example.test")
    [(flags, data)] = mailbox_contents(server, "bob@example.test")["INBOX"]
    assert flags == frozenset({"spam_gone"})
    head = data.partition(b"\r\n\r\n")[0]
    assert head.startswith(b"Return-Path: <ann@remote.test>\r\nX-Filtered: =?UTF-8?B?")
    assert b"\r\nX-Spam: " not in head and b"\r\nX-Footer: last" in head
    assert b"\r\nReceived: from client.remote.test" in head  # protected: kept
    assert b"\r\nAuto-Submitted: auto-generated" in head
    [(_, recipients, _, copy)] = queued(server)
    assert recipients == ["archive@remote.test"]
    assert copy.startswith(b"X-Filtered: ") and b"\r\nX-Spam: " not in copy  # no Return-Path either


def test_an_edit_changes_only_the_copy_of_the_account_that_made_it(server):
    activate(server, 'require "editheader"; deleteheader "subject"; addheader "X-Bob" "1";')
    [reply] = deliver(server, MESSAGE, "bob@example.test", "carol@example.test")
    assert reply.code == 250
    [(_, bobs)] = mailbox_contents(server, "bob@example.test")["INBOX"]
    [(_, carols)] = mailbox_contents(server, "carol@example.test")["INBOX"]
    assert b"\r\nX-Bob: 1\r\n" in bobs and b"\r\nSubject:" not in bobs
    assert b"X-Bob" not in carols and b"\r\nSubject: [alerts] disk full on web3\r\n" in carols


def test_regex_files_by_a_captured_group(server):
    activate(
        server,
        script("""
            require ["regex", "variables", "fileinto", "mailbox"];
            if header :regex "subject" "^\\\\[([a-z]+)\\\\] .* on (web[0-9]+)$" {
              fileinto :create "${1}/${2}";
            }
        """),
    )
    deliver(server, MESSAGE, "bob@example.test")
    assert where(server) == {"alerts/web3": [[]]}


def test_an_evil_regex_keeps_the_message_instead_of_hanging_delivery(server, caplog):
    activate(
        server,
        script("""
            require ["regex", "fileinto"];
            if header :regex "x-evil" "(a|aa)+$" { fileinto "Never"; }
        """),
    )
    evil = MESSAGE.replace(b"X-Spam: yes", b"X-Evil: " + b"a" * 60 + b"!")
    [reply] = deliver(server, evil, "bob@example.test")
    assert reply.code == 250
    assert where(server) == {"INBOX": [[]]}
    assert "took longer" in caplog.text


def test_duplicate_is_tracked_per_account_and_only_after_a_successful_run(server):
    activate(
        server,
        script("""
            require ["duplicate", "fileinto", "mailbox", "ihave"];
            if duplicate { fileinto :create "Duplicates"; }
            if header :contains "subject" "fail" { error "failing on purpose"; }
        """),
    )
    activate(server, 'require "duplicate"; if duplicate { discard; }', "carol@example.test")
    failing = MESSAGE.replace(b"disk full", b"fail").replace(b"dup-1", b"dup-2")
    deliver(server, failing, "bob@example.test")  # the run fails: dup-2 is not recorded
    deliver(server, failing, "bob@example.test")
    deliver(server, MESSAGE, "bob@example.test", "carol@example.test")
    deliver(server, MESSAGE, "bob@example.test")
    deliver(server, MESSAGE.replace(b"dup-1", b"dup-3"), "bob@example.test")
    assert where(server) == {"INBOX": [[], [], [], []], "Duplicates": [[]]}
    deliver(server, MESSAGE, "carol@example.test")  # carol saw dup-1 once: discarded now
    assert where(server, "carol@example.test") == {"INBOX": [[]]}


def test_a_duplicate_is_not_recorded_when_the_delivery_fails(server):
    activate(server, 'require "duplicate"; if duplicate { discard; }', "carol@example.test")
    store = server.context.store
    server.run(lambda: store.update_account("carol@example.test", quota_bytes=100))
    [reply] = deliver(server, MESSAGE, "carol@example.test")
    assert reply.code == 552  # over quota: the sender keeps the message and may try again
    server.run(lambda: store.update_account("carol@example.test", quota_bytes=None))
    [reply] = deliver(server, MESSAGE, "carol@example.test")
    assert reply.code == 250
    assert where(server, "carol@example.test") == {"INBOX": [[]]}  # not taken for a duplicate
    deliver(server, MESSAGE, "carol@example.test")
    assert where(server, "carol@example.test") == {"INBOX": [[]]}  # now it is one


def test_error_and_unknown_requirements_are_refused_at_upload_with_position(server):
    from sievelib.managesieve import Client

    host, port = server.address("managesieve")
    client = Client(host, port)
    assert client.connect("bob@example.test", PASSWORD, authmech="PLAIN")
    assert not client.putscript("bad", 'require "date";\r\nif date "date" "eon" "1" {}\r\n')
    assert "line 2" in client.errmsg.decode() and "eon" in client.errmsg.decode()
    assert not client.putscript("bad", 'if header :regex "a" "b" {}\r\n')
    assert 'require \\"regex\\"' in client.errmsg.decode() or "regex" in client.errmsg.decode()
    client.logout()
