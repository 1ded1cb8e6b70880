"""RFC 3464 DSNs: structure, fields, RET, and when one is due."""

from __future__ import annotations

import email
import email.policy

import pytest

from stalwart_py import mime
from stalwart_py.dsn import LOCAL_DIAGNOSTIC, RecipientStatus, build_dsn, should_notify

ORIGINAL = (
    b"From: alice@example.test\r\nTo: bob@remote.test\r\nSubject: hello\r\n"
    b"Message-ID: <m1@example.test>\r\n\r\nThe body.\r\n"
)


def dsn(**options) -> bytes:
    defaults = dict(
        reporting_mta="mx.example.test",
        sender="alice@example.test",
        recipients=[
            RecipientStatus(
                "bob@remote.test",
                "failed",
                "5.1.1",
                diagnostic="550 5.1.1 No such user",
                original="rfc822;bob@remote.test",
                remote_mta="mx.remote.test",
                last_attempt=1.8e9,
            )
        ],
        original=ORIGINAL,
        arrival=1.8e9 - 60,
        envid="ENV-1",
    )
    return build_dsn(**{**defaults, **options})


def test_a_failure_report_field_by_field():
    message = email.message_from_bytes(dsn(), policy=email.policy.default)
    assert message["From"] == "Mail Delivery System <MAILER-DAEMON@mx.example.test>"
    assert message["To"] == "alice@example.test"  # the policy renders <addr> without brackets
    assert message["Subject"] == "Undelivered mail returned to sender"
    assert message["Auto-Submitted"] == "auto-replied"
    assert message.get_content_type() == "multipart/report"
    assert message.get_param("report-type") == "delivery-status"
    text, status, returned = message.get_payload()
    assert "<bob@remote.test>: host mx.remote.test said: 550 5.1.1 No such user" in (
        text.get_content()
    )
    per_message, per_recipient = status.get_payload()
    assert per_message["Reporting-MTA"] == "dns; mx.example.test"
    assert per_message["Original-Envelope-Id"] == "ENV-1"
    assert per_message["Arrival-Date"]
    assert per_recipient["Original-Recipient"] == "rfc822; bob@remote.test"
    assert per_recipient["Final-Recipient"] == "rfc822; bob@remote.test"
    assert per_recipient["Action"] == "failed"
    assert per_recipient["Status"] == "5.1.1"
    assert per_recipient["Remote-MTA"] == "dns; mx.remote.test"
    assert per_recipient["Diagnostic-Code"] == "smtp; 550 5.1.1 No such user"
    assert per_recipient["Last-Attempt-Date"]
    assert returned.get_content_type() == "message/rfc822"
    assert returned.get_payload()[0]["Message-ID"] == "<m1@example.test>"


def test_ret_hdrs_returns_only_the_header():
    message = email.message_from_bytes(dsn(ret="HDRS"), policy=email.policy.default)
    returned = message.get_payload()[2]
    assert returned.get_content_type() == "text/rfc822-headers"
    assert b"The body." not in returned.as_bytes()
    assert b"Subject: hello" in returned.as_bytes()


def test_a_delay_report():
    data = dsn(
        recipients=[
            RecipientStatus(
                "bob@remote.test",
                "delayed",
                "4.4.1",
                diagnostic="451 try later",
                will_retry_until=1.9e9,
            )
        ]
    )
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert message["Subject"] == "Delivery delayed: message not yet delivered"
    assert message.get_payload()[1].get_payload()[1]["Will-Retry-Until"]


def test_our_own_parser_reads_the_report():
    parsed = mime.parse_message(dsn())
    assert (parsed.body.type, parsed.body.subtype) == ("multipart", "report")
    assert [(p.type, p.subtype) for p in parsed.body.parts] == [
        ("text", "plain"),
        ("message", "delivery-status"),
        ("message", "rfc822"),
    ]


@pytest.mark.parametrize(
    ("mail_from", "notify", "action", "due"),
    [
        ("a@x", (), "failed", True),
        ("a@x", (), "delivered", False),
        ("a@x", ("NEVER",), "failed", False),
        ("a@x", ("SUCCESS",), "failed", False),
        ("a@x", ("SUCCESS", "FAILURE"), "delivered", True),
        ("a@x", ("DELAY",), "delayed", True),
        ("", (), "failed", False),
    ],
)
def test_should_notify(mail_from, notify, action, due):
    assert should_notify(mail_from, notify, action) is due


def test_refuses_an_empty_or_wrong_report():
    with pytest.raises(ValueError):
        dsn(recipients=[])
    with pytest.raises(ValueError):
        dsn(recipients=[RecipientStatus("b@x", "bounced", "5.0.0")])


def test_a_diagnostic_of_this_server_is_x_local_and_not_put_in_the_hosts_mouth():
    """RFC 3464 2.3.6: "smtp" only for an SMTP reply; text of our own gets an X- type."""
    data = dsn(
        recipients=[
            RecipientStatus(
                "bob@remote.test",
                "failed",
                "5.3.4",
                diagnostic="552 5.3.4 message of 9000 bytes is over the 5000 bytes it accepts",
                diagnostic_type=LOCAL_DIAGNOSTIC,
                remote_mta="mx.remote.test",
            )
        ]
    )
    message = email.message_from_bytes(data, policy=email.policy.default)
    text, status, _returned = message.get_payload()
    _per_message, per_recipient = status.get_payload()
    assert per_recipient["Diagnostic-Code"] == (
        "X-Local; 552 5.3.4 message of 9000 bytes is over the 5000 bytes it accepts"
    )
    assert per_recipient["Remote-MTA"] == "dns; mx.remote.test"
    assert "<bob@remote.test>: 552 5.3.4 message of 9000 bytes" in text.get_content()
    assert "said" not in text.get_content()
