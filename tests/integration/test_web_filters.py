"""The filters pages (``/account/filters`` and the script editor) against a real server: the
form's vacation reply, forwarding and rules become the active Sieve script, and a message
that then arrives over SMTP is answered, forwarded (through the held queue) and filed as the
form said; the editor reports a broken script by line and column and stores nothing."""

from __future__ import annotations

import email
import email.policy
import re

import pytest

from protocols.http.web.account.sieve_rules import SCRIPT_NAME
from tests.support.managesieve import PASSWORD, config, deliver, queued, where
from tests.support.web import WebClient, csrf_of

pytestmark = pytest.mark.filterwarnings("ignore:Credentials are sent over an unencrypted")
BOB = ("bob@example.test", PASSWORD)
HTTP = """
[server.listener.http]
bind = "127.0.0.1:0"
protocol = "http"
"""
MESSAGE = (
    b"From: Ann <ann@remote.test>\r\n"
    b"To: Bob <bob@example.test>\r\n"
    b"Subject: Lunch?\r\n"
    b"Message-ID: <lunch@remote.test>\r\n"
    b"\r\n"
    b"Tomorrow at noon?\r\n"
)


@pytest.fixture
def server(start_server):
    server = start_server(config(extra="managesieve.auth.require-tls = false\n") + HTTP)
    server.add_account(*BOB)
    return server


def active_script(server) -> tuple[str, str] | None:
    account = server.run(lambda: server.context.store.get_account(BOB[0]))
    found = server.run(lambda: server.context.store.active_script(account.id))
    return (found.name, found.body) if found is not None else None


def test_vacation_reply_sent_when_mail_arrives_over_smtp(server):
    with WebClient(server.address("http")) as web:
        web.sign_in(*BOB)
        saved = web.submit(
            "/account/filters",
            {
                "vacation": "on",
                "subject": 'Away "for now"',
                "body": "I am on holiday until Monday.\nBob",
                "start": "2000-01-01",
                "end": "2999-12-31",
            },
        )
        assert saved.status_code == 303, saved.text
        page = web.get("/account/filters").text
        assert "checked" in page and "I am on holiday until Monday." in page
    name, body = active_script(server)
    assert name == SCRIPT_NAME and 'vacation :days 7 :subject "Away \\"for now\\""' in body
    deliver(server, MESSAGE, BOB[0])
    [(mail_from, recipients, source, data)] = queued(server)
    assert (mail_from, recipients, source) == ("", ["ann@remote.test"], "sieve")
    reply = email.message_from_bytes(data, policy=email.policy.default)
    assert reply["Subject"] == 'Away "for now"'
    assert reply["In-Reply-To"] == "<lunch@remote.test>"
    assert "I am on holiday until Monday." in reply.get_content()
    assert where(server, BOB[0]) == {"INBOX": [[]]}


def test_vacation_outside_its_dates_sends_nothing(server):
    with WebClient(server.address("http")) as web:
        web.sign_in(*BOB)
        fields = {"vacation": "on", "body": "Away", "start": "2999-01-01", "end": "2999-01-02"}
        assert web.submit("/account/filters", fields).status_code == 303
    deliver(server, MESSAGE, BOB[0])
    assert queued(server) == []


def test_rules_and_forwarding(server):
    with WebClient(server.address("http")) as web:
        web.sign_in(*BOB)
        saved = web.submit(
            "/account/filters",
            {
                "forward": "bob@elsewhere.test",
                "keep-copy": "on",
                "rule-from": ["ann@remote.test", ""],
                "rule-folder": ["Friends/Ann", ""],
            },
        )
        assert saved.status_code == 303, saved.text
        page = web.get("/account/filters").text
        assert 'value="Friends/Ann"' in page and 'value="bob@elsewhere.test"' in page
    deliver(server, MESSAGE, BOB[0])
    assert where(server, BOB[0]) == {"Friends/Ann": [[]]}
    [(mail_from, recipients, _, _)] = queued(server)
    assert (mail_from, recipients) == ("ann@remote.test", ["bob@elsewhere.test"])


def test_form_errors_are_shown_and_nothing_is_stored(server):
    with WebClient(server.address("http")) as web:
        web.sign_in(*BOB)
        answer = web.submit(
            "/account/filters",
            {
                "vacation": "on",
                "body": "",
                "start": "2026-13-01",
                "forward": "not an address",
                "rule-from": ["x@y.test"],
                "rule-folder": [""],
            },
        )
        assert answer.status_code == 422
        for text in (
            "needs a message",
            "start date is not a date",
            "forwarding address is not an address",
            "Rule 1 needs both a sender and a folder",
        ):
            assert text in answer.text
    assert active_script(server) is None


def test_editor_reports_errors_with_line_and_column(server):
    with WebClient(server.address("http")) as web:
        web.sign_in(*BOB)
        broken = (
            'require "fileinto";\r\nif header :contains "subject" "x" {\r\n  fileinto;\r\n}\r\n'
        )
        answer = web.submit("/account/filters/script", {"script": broken})
        assert answer.status_code == 422
        error = re.search(
            r'<p class="error" role="alert" id="script-error">([^<]+)</p>', answer.text
        )
        assert error is not None and error[1].startswith("Line 3, column 3: ")
        assert "fileinto;" in answer.text  # the text is kept for fixing
        assert active_script(server) is None
        fixed = broken.replace("fileinto;", 'fileinto "Lists";')
        assert web.submit("/account/filters/script", {"script": fixed}).status_code == 303
        assert active_script(server) == (SCRIPT_NAME, fixed)
        page = web.get("/account/filters").text
        assert "edited by hand" in page
        off = web.submit("/account/filters/script", {"script": ""})
        assert off.headers["location"] == "/account/filters/script?done=off"
        assert active_script(server) is None
        assert csrf_of(page)
