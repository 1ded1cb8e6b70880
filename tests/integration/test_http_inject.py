"""POST /api/inject: the JSON form, raw messages, per-recipient results, and refusals.

Delivered messages are read back from the mailbox through the store interface, and, once the
imap protocol is installed, with imaplib (the last test).
"""

from __future__ import annotations

import email
import email.policy
import imaplib

import pytest

from protocols.http import Http
from stalwart_py.plugin import discover_protocols
from tests.support.http import ADMIN, USER, ApiClient, Referee, start_http

REFEREE = Referee(Http().app.document)


@pytest.fixture
def server(start_server):
    return start_http(start_server, **{"http.max-body-size": '"64K"'})


@pytest.fixture
def admin(server):
    with ApiClient(server.address("http"), auth=ADMIN, referee=REFEREE) as client:
        yield client


def inbox(server, address: str) -> list[bytes]:
    """The messages of an account's INBOX, oldest first, as stored."""
    store = server.context.store

    async def read() -> list[bytes]:
        account = await store.get_account(address)
        mailbox = await store.get_mailbox(account.id, "INBOX")
        infos = await store.messages(mailbox.id)
        blobs = await store.read_blobs([info.blob_id for info in infos])
        return [blobs[info.blob_id] for info in infos]

    return server.run(read)


def test_the_json_form_becomes_a_mime_message_in_the_mailbox(server, admin):
    answer = admin.post(
        "/api/inject",
        {
            "from": "Alice Example <alice@remote.test>",
            "to": [f"User <{USER[0]}>"],
            "cc": "nobody@example.test",
            "bcc": ["far@remote.test"],
            "subject": "Grüße from the API",
            "text": "Hello,\nplain text.\n",
            "html": "<p>Hello, <b>HTML</b>.</p>",
            "headers": {"X-Campaign": "spring"},
        },
    )
    assert answer.status == 200
    result = answer.json
    assert result["accepted"] == 2 and result["failed"] == 1
    assert result["results"] == [
        {"recipient": USER[0], "ok": True, "code": 250, "status": "2.0.0", "message": "Delivered"},
        {
            "recipient": "nobody@example.test",
            "ok": False,
            "code": 550,
            "status": "5.1.1",
            "message": "No such user here",
        },
        {
            "recipient": "far@remote.test",
            "ok": True,
            "code": 250,
            "status": "2.0.0",
            "message": "Queued",
        },
    ]
    [stored] = inbox(server, USER[0])
    assert b"\n" not in stored.replace(b"\r\n", b"")  # CRLF line endings throughout
    assert stored.startswith(b"Return-Path: <alice@remote.test>\r\nReceived: from ")
    assert b"with HTTP id " in stored
    message = email.message_from_bytes(stored, policy=email.policy.default)
    assert message["From"] == "Alice Example <alice@remote.test>"
    assert message["Subject"] == "Grüße from the API"
    assert message["Message-ID"] == result["message-id"]
    assert message["X-Campaign"] == "spring"
    assert message["Bcc"] is None  # the blind copy is in the envelope only
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(("plain",)).get_content()
    assert plain.replace("\r\n", "\n") == "Hello,\nplain text.\n"
    assert message.get_body(("html",)).get_content().strip() == "<p>Hello, <b>HTML</b>.</p>"
    assert stored[-result["size"] :].startswith(b"From: Alice Example <alice@remote.test>\r\n")
    [queued] = admin.get("/api/queue").json["messages"]
    assert [r["address"] for r in queued["recipients"]] == ["far@remote.test"]


def test_a_raw_message_as_message_rfc822_with_the_envelope_in_the_query(server, admin):
    raw = b"From: a@remote.test\nSubject: raw bytes\n\nline one\nline two \xe2\x9c\x93\n"
    answer = admin.post(
        f"/api/inject?sender=bounces@remote.test&recipient={USER[0]}",
        raw=raw,
        headers={"Content-Type": "message/rfc822"},
    )
    assert answer.status == 200
    assert answer.json["message-id"] is None
    assert answer.json["size"] == len(raw) + raw.count(b"\n")  # every LF became CRLF
    [stored] = inbox(server, USER[0])
    assert stored.startswith(b"Return-Path: <bounces@remote.test>\r\n")
    assert stored.endswith(b"\r\n\r\nline one\r\nline two \xe2\x9c\x93\r\n")


def test_a_raw_message_in_json_with_a_null_sender(server, admin):
    answer = admin.post(
        "/api/inject",
        {"sender": "", "recipients": USER[0], "raw": "Subject: bounce\r\n\r\nbody\r\n"},
    )
    assert answer.json["accepted"] == 1
    [stored] = inbox(server, USER[0])
    assert stored.startswith(b"Return-Path: <>\r\n")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"to": USER[0], "text": "x"}, "body: one of sender, from is required"),
        (
            {"from": "a@remote.test", "text": "x"},
            "body: one of recipients, to, cc, bcc is required",
        ),
        ({"from": "a@remote.test", "to": "b@example.test"}, "body: one of text, html is required"),
        ({"from": "a@remote.test", "to": [], "text": "x"}, "recipients: at least one is required"),
        ({"raw": "Subject: x\r\n\r\n", "recipients": USER[0]}, "body: sender is required"),
        (
            {"from": "not an address", "to": USER[0], "text": "x"},
            "from: 'not an address' is not an address list",
        ),
        (
            {"sender": "a@x.test", "recipients": ["bad"], "raw": "Subject: x\r\n\r\n"},
            "body.recipients[0]: 'bad' is not an address: expected local@domain",
        ),
        (
            {"sender": "a@x.test", "recipients": USER[0], "raw": "no header here"},
            "body.raw: expected a whole RFC 5322 message, starting with a header field",
        ),
        (
            {"sender": "a@x.test", "recipients": USER[0], "raw": "A: b\r\n\r\n", "text": "x"},
            "body: expected a whole message (raw), or the fields to make one of: not both",
        ),
        (
            {"from": "a@x.test", "to": USER[0], "text": "x", "headers": {"Subject": "again"}},
            "headers: set Subject with its own field",
        ),
        (
            {"from": "a@x.test", "to": USER[0], "text": "x", "headers": {"Bad Name": "v"}},
            "headers: 'Bad Name' is not a header field name",
        ),
    ],
)
def test_requests_no_message_can_be_made_of_get_400(admin, body, error):
    answer = admin.post("/api/inject", body)
    assert (answer.status, answer.json) == (400, {"error": error})


def test_header_injection_is_refused(admin):
    answer = admin.post(
        "/api/inject",
        {"from": "a@x.test", "to": USER[0], "subject": "hi\r\nBcc: victim@x.test", "text": "x"},
    )
    assert (answer.status, answer.json["error"]) == (
        400,
        "Subject: line breaks are not allowed in a header value",
    )


def test_the_raw_form_needs_its_envelope(admin):
    answer = admin.post(
        "/api/inject", raw=b"Subject: x\r\n\r\n", headers={"Content-Type": "message/rfc822"}
    )
    assert (answer.status, answer.json["error"]) == (
        400,
        "sender: required in the query (sender= for a null sender)",
    )


def test_a_message_over_the_limit_is_refused(server, admin):
    # under the body limit as JSON, over it once every line is made CRLF
    text = "\n" * (64 * 1024 - 200)
    answer = admin.post(
        "/api/inject", {"sender": "a@x.test", "recipients": USER[0], "raw": "A: b\n\n" + text}
    )
    assert answer.status == 413
    assert inbox(server, USER[0]) == []
    big = admin.post("/api/inject", {"from": "a@x.test", "to": USER[0], "text": "x" * 70000})
    assert big.status == 413  # the body itself, before it is read


def test_an_injected_message_is_read_over_imap(start_server):
    """Runs once the imap protocol is installed (it is being written on its own branch)."""
    if "imap" not in discover_protocols():
        pytest.skip("the imap protocol is not installed in this tree yet")
    imap = '[server.listener.imap]\nbind = "127.0.0.1:0"\nprotocol = "imap"\n'
    imap += "imap.auth.allow-plaintext = true\n"
    server = start_http(start_server, extra=imap)
    with ApiClient(server.address("http"), auth=ADMIN, referee=REFEREE) as admin:
        answer = admin.post(
            "/api/inject",
            {"from": "a@remote.test", "to": USER[0], "subject": "over IMAP", "text": "Hi!\n"},
        )
        assert answer.json["accepted"] == 1
    [stored] = inbox(server, USER[0])
    host, port = server.address("imap")
    with imaplib.IMAP4(host, port, timeout=20) as client:
        client.login(*USER)
        status, data = client.select("INBOX")
        assert (status, data) == ("OK", [b"1"])
        status, data = client.fetch("1", "(RFC822)")
        assert status == "OK"
        fetched = data[0][1]
        assert fetched == stored
        message = email.message_from_bytes(fetched, policy=email.policy.default)
        assert message["Subject"] == "over IMAP"
        assert message["Message-ID"] == answer.json["message-id"]
        client.logout()
