"""Vacation replies (RFC 5230) under the rules for automatic responses (RFC 3834).

A reply is sent only when every rule of RFC 5230 section 4 and RFC 3834 section 2 allows it:

* the message has a sender to answer: not the null reverse path (bounces, other auto-replies)
  and not an address of a daemon or list manager (``MAILER-DAEMON``, ``LISTSERV``,
  ``majordomo``, ``owner-*``, ``*-request``: section 4.6), nor the user themself;
* it is not itself automatic: no ``Auto-Submitted`` other than ``no`` (RFC 3834 section 5),
  no ``Precedence: bulk``, ``list`` or ``junk``, no ``X-Auto-Response-Suppress`` asking for
  silence (Microsoft's variant of the same idea);
* it is not from a mailing list: no ``List-Id`` nor other ``List-*`` field (RFC 2369, 2919);
* it was sent to the user: one of the user's addresses (the recipient, the account, its
  aliases, and ``:addresses``) is in ``To``, ``Cc``, ``Bcc``, ``Resent-To``, ``Resent-Cc``
  or ``Resent-Bcc`` (section 4.5), so Bcc'd list traffic gets no reply;
* and the same sender has not had a reply with the same handle within the period (``:days``,
  ``:seconds``), which the store records (section 4.2).

The reply goes to the envelope sender, from the null reverse path (so that it can never cause
a bounce loop), with ``Auto-Submitted: auto-replied``, ``In-Reply-To`` and ``References`` of
the original, and the subject ``:subject`` or ``Auto: `` and the original subject (5.2).
"""

from __future__ import annotations

import email.policy
import email.utils
import re
import secrets
from email.headerregistry import Address
from email.message import EmailMessage

from stalwart_py.mime import date_now, parse_address_list
from stalwart_py.sieve.actions import Vacation
from stalwart_py.sieve.message import MessageView

RECIPIENT_FIELDS = ("to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc")
LIST_FIELDS = (
    "list-id",
    "list-help",
    "list-subscribe",
    "list-unsubscribe",
    "list-post",
    "list-owner",
    "list-archive",
)
_DAEMON_LOCALPARTS = re.compile(
    r"(?:mailer-daemon|listserv|majordomo|owner-.*|.*-request|.*-owner)\Z",
    re.IGNORECASE,
)
_SAFE_SUBJECT = re.compile(r"[\r\n]+")


def refusal(message: MessageView, sender: str, own: set[str]) -> str | None:
    """Why no reply may be sent to ``sender`` (the envelope sender), or None.
    ``own`` is the user's addresses, lowercased."""
    if not sender:
        return "the null sender"
    local = sender.rpartition("@")[0]
    if _DAEMON_LOCALPARTS.match(local):
        return f"a daemon or list address ({sender})"
    if sender.lower() in own:
        return "the user's own address"
    auto = message.first("auto-submitted")
    if auto is not None and auto.split(";", 1)[0].strip().lower() != "no":
        return f"Auto-Submitted: {auto}"
    precedence = (message.first("precedence") or "").strip().lower()
    if precedence in ("bulk", "list", "junk"):
        return f"Precedence: {precedence}"
    suppress = (message.first("x-auto-response-suppress") or "").lower()
    if "all" in suppress or "oof" in suppress:
        return "X-Auto-Response-Suppress"
    for field in LIST_FIELDS:
        if message.has(field):
            return f"a mailing list message ({field})"
    if not own & addressed_to(message):
        return "none of the user's addresses is a recipient"
    return None


def addressed_to(message: MessageView) -> set[str]:
    """The lowercased addresses of the recipient fields."""
    out: set[str] = set()
    for field in RECIPIENT_FIELDS:
        for raw in message.raw_values(field):
            for address in parse_address_list(raw) or ():
                if address.mailbox and address.host:
                    out.add(f"{address.mailbox}@{address.host}".lower())
    return out


def build_reply(
    vacation: Vacation, message: MessageView, *, sender: str, recipient: str, hostname: str
) -> bytes:
    """The reply message: from ``sender`` (a header address) to ``recipient``."""
    original_subject = _SAFE_SUBJECT.sub(" ", message.first("subject") or "").strip()
    subject = vacation.subject if vacation.subject is not None else f"Auto: {original_subject}"
    headers = {
        "From": sender,
        "To": recipient,
        "Subject": _SAFE_SUBJECT.sub(" ", subject).strip(),
        "Date": date_now(),
        "Message-ID": f"<{secrets.token_hex(12)}@{hostname}>",
        "Auto-Submitted": "auto-replied (vacation)",
    }
    message_id = (message.raw_values("message-id") or [""])[0].strip()
    if message_id:
        headers["In-Reply-To"] = message_id
        references = " ".join(message.raw_values("references")[:1])
        headers["References"] = f"{references} {message_id}".strip()
    if vacation.mime:
        return _with_mime_reason(headers, vacation.reason)
    reply = EmailMessage(policy=email.policy.SMTP)
    for name, value in headers.items():
        reply[name] = value
    reply.set_content(vacation.reason, charset="utf-8")
    return reply.as_bytes()


def _with_mime_reason(headers: dict[str, str], reason: str) -> bytes:
    """``:mime``: the reason is a MIME entity (its own header fields, a blank line, a body)."""
    holder = EmailMessage(policy=email.policy.SMTP)
    for name, value in headers.items():
        holder[name] = value
    holder["MIME-Version"] = "1.0"
    head = holder.as_bytes().split(b"\r\n\r\n", 1)[0] + b"\r\n"
    entity = re.sub(r"\r?\n", "\r\n", reason.lstrip("\r\n")).encode("utf-8")
    if b"\r\n\r\n" not in entity:
        entity = b"\r\n" + entity  # no header fields: all body
    return head + entity


def header_address(text: str) -> str:
    """``:from`` may carry a display name; ``Name <addr>`` becomes a valid header value."""
    parsed = [a for a in parse_address_list(text) or () if a.mailbox and a.host]
    if not parsed:
        return text
    first = parsed[0]
    try:
        return str(
            Address(display_name=first.name or "", addr_spec=f"{first.mailbox}@{first.host}")
        )
    except (ValueError, IndexError):
        return f"{first.mailbox}@{first.host}"
