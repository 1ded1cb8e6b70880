"""Global Sieve scripts (RFC 6609 include :global) through the admin API: create, read, list,
replace and delete as an administrator (every answer checked against the OpenAPI document),
refused to others, checked as an upload is (line and column, include loops); and a user's
script including one, with mail delivered over SMTP and read back over IMAP."""

from __future__ import annotations

import pytest

from protocols.http import Http
from tests.support.http import ADMIN, USER, ApiClient, Referee, start_http
from tests.support.managesieve import activate, deliver, where

pytestmark = pytest.mark.filterwarnings("ignore:Credentials are sent over an unencrypted")

REFEREE = Referee(Http().app.document)
LISTENERS = """
[server.listener.managesieve]
bind = "127.0.0.1:0"
protocol = "managesieve"
managesieve.auth.require-tls = false

[server.listener.smtp]
bind = "127.0.0.1:0"
protocol = "smtp"

[server.listener.imap]
bind = "127.0.0.1:0"
protocol = "imap"
imap.auth.allow-plaintext = true

"""
RULES = (
    'require ["fileinto", "mailbox"];\r\n'
    'if header :contains "subject" "invoice" { fileinto :create "Bills"; }\r\n'
)


@pytest.fixture
def server(start_server):
    server = start_http(start_server, extra=LISTENERS)
    server.add_account("bob@example.test", "correct horse battery")
    return server


def test_global_scripts_over_the_api_and_a_delivery_through_one(server):
    with ApiClient(server.address("http"), auth=ADMIN, referee=REFEREE) as admin:
        assert admin.get("/api/sieve/global").json == {"scripts": []}
        put = admin.request("PUT", "/api/sieve/global/bills", {"script": RULES})
        assert put.status == 204
        answer = admin.get("/api/sieve/global/bills")
        assert answer.status == 200 and answer.body.decode() == RULES
        assert answer.headers["content-type"].startswith("application/sieve")
        raw = admin.request(
            "PUT",
            "/api/sieve/global/other",
            raw=b"keep;\r\n",
            headers={"Content-Type": "application/sieve"},
        )
        assert raw.status == 204
        listing = admin.get("/api/sieve/global").json
        assert listing == {
            "scripts": [{"name": "bills", "size": len(RULES)}, {"name": "other", "size": 7}]
        }
        bad = admin.request("PUT", "/api/sieve/global/bad", {"script": "keep;\nfileinto;"})
        assert bad.status == 400 and bad.json["error"].startswith("line 2, column 1:")
        loop = admin.request(
            "PUT",
            "/api/sieve/global/other",
            {"script": 'require "include";\ninclude :global "other";'},
        )
        assert loop.status == 400 and "makes a loop" in loop.json["error"]
        assert admin.request("DELETE", "/api/sieve/global/other").status == 204
        assert admin.request("DELETE", "/api/sieve/global/other").status == 404
        assert admin.get("/api/sieve/global/other").status == 404
    with ApiClient(server.address("http"), auth=USER, referee=REFEREE) as user:
        assert user.request("PUT", "/api/sieve/global/x", {"script": "discard;"}).status == 403

    activate(server, 'require "include";\r\ninclude :global "bills";\r\n')
    deliver(
        server, b"From: a@remote.test\r\nSubject: your invoice\r\n\r\nPay.\r\n", "bob@example.test"
    )
    assert where(server) == {"Bills": [[]]}
