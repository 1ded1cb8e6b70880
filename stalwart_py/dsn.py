"""Delivery status notifications (RFC 3464), as this server sends them.

A DSN is a ``multipart/report; report-type=delivery-status`` message (RFC 6522) with three
parts: a human-readable explanation, a ``message/delivery-status`` part with one block of
fields for the message and one per recipient, and the original message (``message/rfc822``,
or only its header as ``text/rfc822-headers`` when the sender asked RET=HDRS).

Rules of RFC 3461 and RFC 5321 that the callers must keep, and ``should_notify`` helps with:
a DSN goes to the envelope sender and is itself sent with the null sender (``MAIL FROM:<>``),
so a DSN is never sent about a message whose sender was null (no bounce of a bounce); a
recipient is reported only when its NOTIFY asks for that kind of report (no NOTIFY means
FAILURE, and DELAY at the server's discretion; NOTIFY=NEVER means nothing).
"""

from __future__ import annotations

import email.utils
import secrets
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass

from stalwart_py.mime import date_now

ACTIONS = frozenset({"failed", "delayed", "delivered", "relayed", "expanded"})
SMTP_DIAGNOSTIC = "smtp"  # a reply received from an SMTP or LMTP server
LOCAL_DIAGNOSTIC = "X-Local"  # this server's own words


@dataclass(frozen=True, slots=True)
class RecipientStatus:
    """One recipient's block of a DSN."""

    address: str  # the final recipient
    action: str  # failed, delayed, delivered, relayed, expanded
    status: str  # RFC 3463 status code, e.g. "5.1.1"
    diagnostic: str | None = None  # the remote reply, e.g. "550 5.1.1 No such user"
    # RFC 3464 2.3.6: what kind of text ``diagnostic`` is. "smtp" for a reply an SMTP (or
    # LMTP) server sent; anything else this server decided itself (no connection, a local
    # mailbox full, a size it knew the peer refuses) is "X-Local" (an "X-" type, 2.1.2).
    diagnostic_type: str = SMTP_DIAGNOSTIC
    original: str | None = None  # ORCPT as given, e.g. "rfc822;bob@example.com"
    remote_mta: str | None = None  # the host that answered, e.g. "mx.example.com"
    last_attempt: float | None = None
    will_retry_until: float | None = None  # for "delayed"


def should_notify(mail_from: str, notify: Sequence[str], action: str) -> bool:
    """Whether a DSN of ``action`` is due for a recipient with this NOTIFY (RFC 3461 4.1)."""
    if not mail_from:
        return False  # never a DSN about a DSN (or any null-sender message)
    wanted = {value.upper() for value in notify}
    if "NEVER" in wanted:
        return False
    if not wanted:
        wanted = {"FAILURE", "DELAY"}
    kind = {
        "failed": "FAILURE",
        "delayed": "DELAY",
        "delivered": "SUCCESS",
        "relayed": "SUCCESS",
        "expanded": "SUCCESS",
    }[action]
    return kind in wanted


def build_dsn(
    *,
    reporting_mta: str,
    sender: str,
    recipients: Sequence[RecipientStatus],
    original: bytes,
    arrival: float | None = None,
    envid: str | None = None,
    ret: str | None = None,
) -> bytes:
    """The whole DSN message, ready to queue with the null sender to ``sender``."""
    if not recipients:
        raise ValueError("a DSN reports at least one recipient")
    for recipient in recipients:
        if recipient.action not in ACTIONS:
            raise ValueError(f"unknown DSN action {recipient.action!r}")
    boundary = f"=_dsn_{secrets.token_hex(12)}"
    delayed_only = all(r.action == "delayed" for r in recipients)
    failed = any(r.action == "failed" for r in recipients)
    subject = (
        "Delivery delayed: message not yet delivered"
        if delayed_only
        else "Undelivered mail returned to sender"
        if failed
        else "Delivery status notification"
    )
    header = "\r\n".join(
        [
            f"From: Mail Delivery System <MAILER-DAEMON@{reporting_mta}>",
            f"To: <{sender}>",
            f"Subject: {subject}",
            f"Date: {date_now()}",
            f"Message-ID: <{secrets.token_hex(16)}@{reporting_mta}>",
            "Auto-Submitted: auto-replied",
            "MIME-Version: 1.0",
            f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        ]
    )
    parts = [
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + _explanation(reporting_mta, recipients),
        "Content-Type: message/delivery-status\r\n\r\n"
        + _status_fields(reporting_mta, recipients, arrival, envid),
    ]
    body = b"".join(f"--{boundary}\r\n{part}\r\n".encode() for part in parts)
    body += f"--{boundary}\r\n".encode() + _original_part(original, ret)
    body += f"\r\n--{boundary}--\r\n".encode()
    return header.encode() + b"\r\n\r\n" + body


def _explanation(reporting_mta: str, recipients: Sequence[RecipientStatus]) -> str:
    lines = [f"This is the mail system at {reporting_mta}.", ""]
    failed = [r for r in recipients if r.action == "failed"]
    delayed = [r for r in recipients if r.action == "delayed"]
    if failed:
        lines += ["Your message could not be delivered to the following recipients:", ""]
        lines += [_line(r) for r in failed] + [""]
    if delayed:
        lines += [
            "Your message has not been delivered yet to the following recipients;",
            "delivery will be tried again:",
            "",
        ]
        lines += [_line(r) for r in delayed] + [""]
    others = [r for r in recipients if r.action not in ("failed", "delayed")]
    if others:
        lines += ["Your message was delivered to the following recipients:", ""]
        lines += [f"  <{r.address}>" for r in others] + [""]
    return "\r\n".join(lines)


def _line(recipient: RecipientStatus) -> str:
    reason = recipient.diagnostic or recipient.status
    if recipient.remote_mta and recipient.diagnostic_type == SMTP_DIAGNOSTIC:
        reason = f"host {recipient.remote_mta} said: {reason}"  # its reply, word for word
    wrapped = textwrap.wrap(reason, 70) or [reason]
    return f"  <{recipient.address}>: " + "\r\n    ".join(wrapped)


def _status_fields(
    reporting_mta: str,
    recipients: Sequence[RecipientStatus],
    arrival: float | None,
    envid: str | None,
) -> str:
    blocks = [[f"Reporting-MTA: dns; {reporting_mta}"]]
    if envid:
        blocks[0].append(f"Original-Envelope-Id: {envid}")
    blocks[0].append(f"Arrival-Date: {_date(arrival if arrival is not None else time.time())}")
    for recipient in recipients:
        block = []
        if recipient.original:
            kind, _, address = recipient.original.partition(";")
            block.append(f"Original-Recipient: {kind.strip() or 'rfc822'}; {address.strip()}")
        block += [
            f"Final-Recipient: rfc822; {recipient.address}",
            f"Action: {recipient.action}",
            f"Status: {recipient.status}",
        ]
        if recipient.remote_mta:
            block.append(f"Remote-MTA: dns; {recipient.remote_mta}")
        if recipient.diagnostic:
            block.append(f"Diagnostic-Code: {recipient.diagnostic_type}; {recipient.diagnostic}")
        if recipient.last_attempt is not None:
            block.append(f"Last-Attempt-Date: {_date(recipient.last_attempt)}")
        if recipient.will_retry_until is not None:
            block.append(f"Will-Retry-Until: {_date(recipient.will_retry_until)}")
        blocks.append(block)
    return "\r\n\r\n".join("\r\n".join(block) for block in blocks) + "\r\n"


def _original_part(original: bytes, ret: str | None) -> bytes:
    if (ret or "").upper() == "HDRS":
        end = original.find(b"\r\n\r\n")
        headers = original if end < 0 else original[: end + 2]
        return b"Content-Type: text/rfc822-headers\r\n\r\n" + headers
    return b"Content-Type: message/rfc822\r\n\r\n" + original


def _date(timestamp: float) -> str:
    return email.utils.formatdate(timestamp, localtime=True)
