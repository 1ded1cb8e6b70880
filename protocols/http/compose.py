"""Turn the injection API's input into a message and an envelope (no I/O).

Two forms (``handlers/inject.py``): a whole RFC 5322 message (JSON ``raw``, or a
``message/rfc822`` body), or a few JSON fields (from, to, cc, bcc, subject, text, html,
headers) that become a MIME message built by the standard library's ``email`` package: a
``text/plain`` part, a ``text/html`` part, or both as ``multipart/alternative`` (RFC 2046
5.1.4), with ``Date`` and ``Message-ID`` added (RFC 5322 3.6). Either way lines end in CRLF, as
the store and the outbound queue keep messages in their SMTP wire form.
"""

from __future__ import annotations

import email.policy
import email.utils
import re
from collections.abc import Iterable
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any

# RFC 5321 4.1.2 Mailbox, with the dot-string local part most mail uses, a quoted local part,
# and a domain or an address literal. An envelope address has no comments, no display name.
_U = "\u0080-\U0010ffff"  # UTF-8 in addresses (RFC 6531)
_ATEXT = rf"[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~\-{_U}]+"
_LOCAL = rf'(?:{_ATEXT}(?:\.{_ATEXT})*|"(?:[^"\\\r\n]|\\[ -~])*")'
_LABEL = rf"[A-Za-z0-9{_U}](?:[A-Za-z0-9\-{_U}]*[A-Za-z0-9{_U}])?"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})*"
_LITERAL = r"\[[^\[\]\\\s]+\]"
ENVELOPE_ADDRESS = re.compile(rf"{_LOCAL}@(?:{_DOMAIN}|{_LITERAL})")
MAX_LOCAL_PART = 64
MAX_DOMAIN = 255

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
    """An RFC 5321 mailbox (``local@domain``), or CompositionError."""
    local, _, domain = address.rpartition("@")
    if (
        not ENVELOPE_ADDRESS.fullmatch(address)
        or len(local) > MAX_LOCAL_PART
        or len(domain) > MAX_DOMAIN
    ):
        raise CompositionError(f"{where}: {address!r} is not an address (local@domain)")
    return address


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


def parse_address_fields(values: Iterable[str], where: str) -> list[Address]:
    """The mailboxes of address header fields (``"Bob <bob@x>, carol@y"``, RFC 5322 3.4),
    parsed by the email package; anything it finds wrong is an error, not a guess."""
    found = []
    for value in values:
        header = email.policy.default.header_factory("To", value)
        if header.defects:
            raise CompositionError(
                f"{where}: {value!r} is not an address list ({header.defects[0]})"
            )
        for address in header.addresses:
            check_envelope_address(address.addr_spec, where)
            found.append(address)
    return found


def header_addresses(fields: Iterable[str], where: str) -> list[str]:
    """The addresses of address header fields, for an envelope."""
    return [address.addr_spec for address in parse_address_fields(fields, where)]


def compose(data: dict[str, Any], hostname: str) -> tuple[bytes, str]:
    """The message for the JSON form, and its Message-ID."""
    if "text" not in data and "html" not in data:
        raise CompositionError("give text, html or both (or raw for a whole message)")
    message = EmailMessage(policy=email.policy.SMTP)
    try:
        _address_field(message, "From", [data["from"]] if "from" in data else [])
        for key, name in (("to", "To"), ("cc", "Cc"), ("reply-to", "Reply-To")):
            _address_field(message, name, _as_list(data.get(key)))
        if "subject" in data:
            message["Subject"] = data["subject"]
        message["Date"] = email.utils.format_datetime(email.utils.localtime())
        message_id = email.utils.make_msgid(domain=hostname)
        message["Message-ID"] = message_id
        for name, value in data.get("headers", {}).items():
            if not _HEADER_NAME.fullmatch(name):
                raise CompositionError(f"headers: {name!r} is not a header field name")
            if name.lower() in RESERVED_FIELDS:
                raise CompositionError(f"headers: set {name} with its own field")
            message[name] = value
        if "text" in data:
            message.set_content(data["text"], cte=_transfer_encoding(data["text"]))
            if "html" in data:
                message.add_alternative(
                    data["html"], subtype="html", cte=_transfer_encoding(data["html"])
                )
        else:
            message.set_content(data["html"], subtype="html", cte=_transfer_encoding(data["html"]))
        raw = message.as_bytes(policy=email.policy.SMTP)
    except (ValueError, TypeError) as exc:  # a header value with CR/LF, an undecodable address
        if isinstance(exc, CompositionError):
            raise
        raise CompositionError(f"cannot build the message: {exc}") from None
    return normalize_line_endings(raw), message_id


def _address_field(message: EmailMessage, name: str, values: list[str]) -> None:
    if values:
        message[name] = parse_address_fields(values, name.lower())


def _transfer_encoding(text: str) -> str:
    """7bit when the text allows it (ASCII, lines of at most 998 octets: RFC 5322 2.1.1),
    else quoted-printable, which keeps text readable."""
    if text.isascii() and all(len(line) <= 998 for line in text.splitlines()):
        return "7bit"
    return "quoted-printable"


def envelope_of(data: dict[str, Any]) -> tuple[str, list[str]]:
    """(sender, recipients) from the JSON body: given explicitly, or taken from the header
    fields of the form (from; to, cc and bcc)."""
    if "sender" in data:
        sender = data["sender"]
        if sender:
            check_envelope_address(sender, "sender")
    elif "from" in data:
        [sender] = header_addresses([data["from"]], "from")[:1] or [""]
    else:
        raise CompositionError('sender: required with raw (use "" for a null sender)')
    if "recipients" in data:
        recipients = [check_envelope_address(r, "recipients") for r in _as_list(data["recipients"])]
    else:
        fields = [v for key in ("to", "cc", "bcc") for v in _as_list(data.get(key))]
        recipients = header_addresses(fields, "to")
    if not recipients:
        raise CompositionError("recipients: at least one is required")
    return sender, list(dict.fromkeys(recipients))
