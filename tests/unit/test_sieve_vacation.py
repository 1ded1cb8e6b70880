"""Vacation (RFC 5230) under RFC 3834: when a reply may be sent, and what it looks like."""

from __future__ import annotations

import email
import email.policy

import pytest

from stalwart_py.sieve.actions import Vacation
from stalwart_py.sieve.filter import safe_reason
from stalwart_py.sieve.message import MessageView
from stalwart_py.sieve.vacation import build_reply, header_address, refusal

OWN = {"bob@example.test", "bob.smith@example.test"}
BASE = (
    "From: Ann <ann@remote.test>\r\nTo: Bob <bob@example.test>\r\n"
    "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <m1@remote.test>\r\n"
    "References: <m0@remote.test>\r\n"
)


def view(extra: str = "", base: str = BASE) -> MessageView:
    return MessageView((base + extra + "\r\nHello\r\n").encode())


def test_a_personal_message_gets_a_reply():
    assert refusal(view(), "ann@remote.test", OWN) is None
    assert refusal(view("Auto-Submitted: no\r\n"), "ann@remote.test", OWN) is None
    cc_only = BASE.replace(
        "To: Bob <bob@example.test>", "To: x@y.test\r\nCc: bob.smith@example.test"
    )
    assert refusal(view(base=cc_only), "ann@remote.test", OWN) is None


@pytest.mark.parametrize(
    ("extra", "sender", "reason"),
    [
        ("", "", "the null sender"),
        ("", "MAILER-DAEMON@remote.test", "a daemon or list address (MAILER-DAEMON@remote.test)"),
        ("", "owner-list@remote.test", "a daemon or list address (owner-list@remote.test)"),
        ("", "list-request@remote.test", "a daemon or list address (list-request@remote.test)"),
        ("", "LISTSERV@remote.test", "a daemon or list address (LISTSERV@remote.test)"),
        ("", "bob@example.test", "the user's own address"),
        ("Auto-Submitted: auto-replied\r\n", "ann@remote.test", "Auto-Submitted: auto-replied"),
        ("Auto-Submitted: auto-generated\r\n", "ann@remote.test", "Auto-Submitted: auto-generated"),
        ("Precedence: bulk\r\n", "ann@remote.test", "Precedence: bulk"),
        ("Precedence: List\r\n", "ann@remote.test", "Precedence: list"),
        ("Precedence: junk\r\n", "ann@remote.test", "Precedence: junk"),
        ("X-Auto-Response-Suppress: OOF, DR\r\n", "ann@remote.test", "X-Auto-Response-Suppress"),
        ("List-Id: <news.remote.test>\r\n", "ann@remote.test", "a mailing list message (list-id)"),
        ("List-Unsubscribe: <mailto:u@remote.test>\r\n", "ann@remote.test",
         "a mailing list message (list-unsubscribe)"),
    ],
)  # fmt: skip
def test_never_reply_rules(extra, sender, reason):
    assert refusal(view(extra), sender, OWN) == reason


def test_no_reply_unless_addressed_to_the_user():
    bcc = BASE.replace("To: Bob <bob@example.test>", "To: list@remote.test")
    assert refusal(view(base=bcc), "ann@remote.test", OWN) == (
        "none of the user's addresses is a recipient"
    )
    resent = bcc + "Resent-To: bob@example.test\r\n"
    assert refusal(view(base=resent), "ann@remote.test", OWN) is None


def test_the_reply():
    action = Vacation("I am away\nuntil Monday.", None, None, (), False, "h", 86400)
    data = build_reply(
        action, view(), sender="bob@example.test", recipient="ann@remote.test", hostname="mx.test"
    )
    reply = email.message_from_bytes(data, policy=email.policy.default)
    assert reply["From"] == "bob@example.test" and reply["To"] == "ann@remote.test"
    assert reply["Subject"] == "Auto: Gr\u00fc\u00dfe"
    assert reply["Auto-Submitted"] == "auto-replied (vacation)"
    assert reply["In-Reply-To"] == "<m1@remote.test>"
    assert reply["References"] == "<m0@remote.test> <m1@remote.test>"
    assert reply["Message-ID"].endswith("@mx.test>")
    assert reply.get_content().replace("\r\n", "\n") == "I am away\nuntil Monday.\n"
    assert b"\r\n\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")


def test_the_reply_with_a_subject_and_mime_reason():
    action = Vacation(
        "Content-Type: text/html; charset=utf-8\r\n\r\n<p>Away</p>\r\n",
        "Out of office",
        None,
        (),
        True,
        "h",
        86400,
    )
    data = build_reply(
        action, view(), sender='"Bob S" <bob@example.test>', recipient="ann@remote.test",
        hostname="mx.test",
    )  # fmt: skip
    reply = email.message_from_bytes(data, policy=email.policy.default)
    assert reply["Subject"] == "Out of office"
    assert reply["MIME-Version"] == "1.0"
    assert reply.get_content_type() == "text/html"
    assert reply.get_content() == "<p>Away</p>\r\n"


def test_header_address_and_safe_reason():
    assert header_address("Bob Smith <bob@example.test>") == "Bob Smith <bob@example.test>"
    assert header_address("bob@example.test") == "bob@example.test"
    assert safe_reason("Go\r\naway \u00e9 now") == "Go away now"
    assert safe_reason("\r\n") == "Message rejected by the recipient's filter"
    assert len(safe_reason("x" * 1000)) == 200
