"""Turn the injection API's input into a message and an envelope (no I/O).

Two forms (``handlers/inject.py``): a whole RFC 5322 message (JSON ``raw``, or a
``message/rfc822`` body), or a few JSON fields (from, to, cc, bcc, reply-to, subject, text,
html, headers) that become a MIME message (``mimebuild.py``): a ``text/plain`` part, a
``text/html`` part, or both as ``multipart/alternative`` (RFC 2046 5.1.4), with ``Date``,
``Message-ID`` and ``MIME-Version`` added (RFC 5322 3.6, RFC 2045 4). Either way lines end in
CRLF, as the store and the outbound queue keep messages in their SMTP wire form.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Iterable
from typing import Any

from protocols.http import mimebuild
from protocols.http.mimebuild import MimeError
from stalwart_py import names
from stalwart_py.mime import date_now

_HEADER_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 2.2: printable ASCII but ":"
# Fields the form sets itself; "headers" may not set them again.
RESERVED_FIELDS = frozenset(
    {"from", "to", "cc", "bcc", "reply-to", "subject", "date", "message-id", "mime-version"}
    | {"content-type", "content-transfer-encoding"}
)
_LINE_END = re.compile(rb"\r\n|\r|\n")


class CompositionError(ValueError):
    """The input cannot make a message; the message says why (answered with 400)."""


def check_envelope_address(address: str, where: str) -> str:
    """An RFC 5321 mailbox (``local@domain``, the domain may be an address literal) in the
    canonical form SMTP would give it (``names.mailbox``: IDNs as A-labels), or
    CompositionError saying why."""
    try:
        return names.mailbox(address, literal=True)
    except names.InvalidName as exc:
        raise CompositionError(f"{where}: {exc}") from None


def normalize_line_endings(data: bytes) -> bytes:
    """Every line ending as CRLF (RFC 5322 2.1), and a final one."""
    data = _LINE_END.sub(b"\r\n", data)
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def check_raw(data: bytes) -> bytes:
    """A whole message: it must start with a header field (RFC 5322 2.2) and is returned with
    CRLF line endings."""
    data = normalize_line_endings(data)
    first = data.split(b"\r\n", 1)[0]
    name, colon, _ = first.partition(b":")
    if not colon or not re.fullmatch(rb"[!-9;-~]+", name):
        raise CompositionError("raw: the message does not start with a header field")
    return data


def _as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def parse_address_fields(values: Iterable[str], where: str) -> list[tuple[str, str]]:
    """The (display name, address) of address header fields (``"Bob <bob@x>, carol@y"``,
    RFC 5322 3.4), every address checked."""
    found = []
    for value in values:
        try:
            mailboxes = mimebuild.parse_address_list(value)
        except MimeError as exc:
            raise CompositionError(f"{where}: {exc}") from None
        for _name, address in mailboxes:
            check_envelope_address(address, where)
        found += mailboxes
    return found


def compose(data: dict[str, Any], hostname: str) -> tuple[bytes, str]:
    """The message for the JSON form, and its Message-ID."""
    if "text" not in data and "html" not in data:
        raise CompositionError("give text, html or both (or raw for a whole message)")
    fields = []
    for key, name in (("from", "From"), ("to", "To"), ("cc", "Cc"), ("reply-to", "Reply-To")):
        values = _as_list(data.get(key))
        if values:
            fields.append(mimebuild.address_field(name, parse_address_fields(values, key)))
    message_id = email.utils.make_msgid(domain=hostname)
    fields.append(f"Date: {date_now()}\r\n")
    fields.append(f"Message-ID: {message_id}\r\n")
    try:
        if "subject" in data:
            fields.append(mimebuild.unstructured_field("Subject", data["subject"]))
        for name, value in data.get("headers", {}).items():
            if not _HEADER_NAME.fullmatch(name):
                raise CompositionError(f"headers: {name!r} is not a header field name")
            if name.lower() in RESERVED_FIELDS:
                raise CompositionError(f"headers: set {name} with its own field")
            fields.append(mimebuild.unstructured_field(name, value))
    except MimeError as exc:
        raise CompositionError(str(exc)) from None
    fields.append("MIME-Version: 1.0\r\n")
    parts = [
        mimebuild.text_part(data[key], subtype)
        for key, subtype in (("text", "plain"), ("html", "html"))
        if key in data
    ]
    head, body = parts[0] if len(parts) == 1 else mimebuild.alternative(parts)
    header = "".join(fields) + head + "\r\n"
    return header.encode("utf-8") + body, message_id


def envelope_of(data: dict[str, Any]) -> tuple[str, list[str]]:
    """(sender, recipients) from the JSON body: given explicitly, or taken from the header
    fields of the form (from; to, cc and bcc)."""
    if "sender" in data:
        sender = data["sender"]
        if sender:
            check_envelope_address(sender, "sender")
    elif "from" in data:
        sender = check_envelope_address(parse_address_fields([data["from"]], "from")[0][1], "from")
    else:
        raise CompositionError('sender: required with raw (use "" for a null sender)')
    if "recipients" in data:
        recipients = [check_envelope_address(r, "recipients") for r in _as_list(data["recipients"])]
    else:
        fields = [v for key in ("to", "cc", "bcc") for v in _as_list(data.get(key))]
        recipients = [
            check_envelope_address(address, "to")
            for _, address in parse_address_fields(fields, "to")
        ]
    if not recipients:
        raise CompositionError("recipients: at least one is required")
    return sender, list(dict.fromkeys(recipients))
