"""Reports received for ``oob`` and ``fbl`` domains: DSNs (RFC 3464) and ARF feedback
reports (RFC 5965), summarized for the store's report list. Pure functions, no I/O.

Both are ``multipart/report`` messages (RFC 6522) whose machine-readable part is a block of
header-style fields: ``message/delivery-status`` (or ``message/global-delivery-status``,
RFC 6533) holds one block for the message and one per recipient, separated by empty lines;
``message/feedback-report`` holds one block. A message for such a domain that carries no
report part is still recorded, as unparsed, with what its header says.
"""

from __future__ import annotations

import base64
import binascii
import json
import quopri
import re
from typing import Any

from stalwart_py import mime

MAX_FIELD = 1000  # characters kept of one field value
MAX_RECIPIENTS = 1000  # recipient blocks kept of one DSN
MAX_FIELD_BLOCK = 256 * 1024  # octets of the report part that are read

_FIELD_LINE = re.compile(r"([!-9;-~]+)[ \t]*:(.*)")

DSN_PER_MESSAGE = {
    "reporting-mta": "reporting_mta",
    "original-envelope-id": "envid",
    "arrival-date": "arrival_date",
    "received-from-mta": "received_from_mta",
}
DSN_PER_RECIPIENT = {
    "original-recipient": "original_recipient",
    "final-recipient": "final_recipient",
    "action": "action",
    "status": "status",
    "remote-mta": "remote_mta",
    "diagnostic-code": "diagnostic",
    "last-attempt-date": "last_attempt_date",
    "will-retry-until": "will_retry_until",
}
ARF_SINGLE = {
    "feedback-type": "feedback_type",
    "user-agent": "user_agent",
    "version": "version",
    "original-mail-from": "original_mail_from",
    "arrival-date": "arrival_date",
    "source-ip": "source_ip",
    "incidents": "incidents",
    "reporting-mta": "reporting_mta",
    "original-envelope-id": "envid",
}
ARF_MULTIPLE = {
    "original-rcpt-to": "original_rcpt_to",
    "reported-domain": "reported_domain",
    "reported-uri": "reported_uri",
    "authentication-results": "authentication_results",
}
REPORT_TYPES = {
    ("message", "delivery-status"): "dsn",
    ("message", "global-delivery-status"): "dsn",
    ("message", "feedback-report"): "arf",
}


def field_blocks(text: str) -> list[list[tuple[str, str]]]:
    """Header-style fields (folded lines unfolded), in blocks split by empty lines."""
    blocks: list[list[tuple[str, str]]] = [[]]
    for line in text.splitlines():
        if not line.strip():
            if blocks[-1]:
                blocks.append([])
        elif line[0] in " \t" and blocks[-1]:
            name, value = blocks[-1][-1]
            blocks[-1][-1] = (name, value + " " + line.strip())
        elif match := _FIELD_LINE.match(line):
            blocks[-1].append((match.group(1).lower(), match.group(2).strip()))
    return [block for block in blocks if block]


def _pick(block: list[tuple[str, str]], names: dict[str, str]) -> dict[str, str]:
    picked: dict[str, str] = {}
    for name, value in block:
        key = names.get(name)
        if key is not None and key not in picked:
            picked[key] = value[:MAX_FIELD]
    return picked


def _find_report_part(part: mime.BodyPart) -> tuple[str, mime.BodyPart] | None:
    kind = REPORT_TYPES.get((part.type, part.subtype))
    if kind is not None:
        return kind, part
    for child in part.parts:
        found = _find_report_part(child)
        if found is not None:
            return found
    return None


def _part_text(data: bytes, part: mime.BodyPart) -> str:
    body = data[part.body_offset : part.body_offset + min(part.body_length, MAX_FIELD_BLOCK)]
    try:
        if part.encoding == "base64":
            body = base64.b64decode(body)
        elif part.encoding == "quoted-printable":
            body = quopri.decodestring(body)
    except (binascii.Error, ValueError):
        pass
    return body.decode("utf-8", "replace")


def summarize_dsn(blocks: list[list[tuple[str, str]]]) -> dict[str, Any]:
    summary: dict[str, Any] = _pick(blocks[0], DSN_PER_MESSAGE) if blocks else {}
    summary["recipients"] = [_pick(block, DSN_PER_RECIPIENT) for block in blocks[1:]][
        :MAX_RECIPIENTS
    ]
    return summary


def summarize_arf(blocks: list[list[tuple[str, str]]]) -> dict[str, Any]:
    fields = [item for block in blocks for item in block]
    summary: dict[str, Any] = _pick(fields, ARF_SINGLE)
    for name, key in ARF_MULTIPLE.items():
        values = [value[:MAX_FIELD] for field, value in fields if field == name]
        if values:
            summary[key] = values[:MAX_RECIPIENTS]
    return summary


def parse_report(data: bytes) -> tuple[str | None, dict[str, Any]]:
    """(kind, summary): kind is "dsn", "arf", or None when the message has no report part."""
    parsed = mime.parse_message(data)
    envelope = parsed.envelope
    summary: dict[str, Any] = {
        "subject": (envelope.subject or "")[:MAX_FIELD],
        "message_id": (envelope.message_id or "")[:MAX_FIELD],
    }
    found = _find_report_part(parsed.body)
    if found is None:
        summary["parsed"] = False
        return None, summary
    kind, part = found
    blocks = field_blocks(_part_text(data, part))
    summary.update(summarize_dsn(blocks) if kind == "dsn" else summarize_arf(blocks))
    summary["parsed"] = True
    return kind, summary


def summary_json(summary: dict[str, Any]) -> str:
    return json.dumps(summary, ensure_ascii=False, sort_keys=True)
