"""What IMAP SORT and THREAD (RFC 5256) and SORT=DISPLAY (RFC 5957) compare, computed once
per message body when it is stored, so that sorting a mailbox never parses a message.

* ``subject``: the *base subject* of RFC 5256 section 2.1 (encoded words decoded, ``Re:``,
  ``Fwd:``, ``Fw:``, ``[blob]`` prefixes and ``(fwd)`` trailers removed, ``[fwd: ...]``
  unwrapped), and ``reply``: whether that removed a reply or forward marker (THREAD uses it).
* ``sent``: the Date header as POSIX seconds, or None when it is missing or unparseable;
  RFC 5256 then sorts by the INTERNALDATE, which belongs to each copy of a message, not to
  the body, so the fallback is applied when sorting.
* ``from_mailbox``, ``to_mailbox``, ``cc_mailbox``: the addr-mailbox (local part) of the
  first address of the field (RFC 5256 section 3, SORT FROM/TO/CC); ``""`` when none.
* ``from_display``, ``to_display``: the decoded display name of the first address, or its
  ``mailbox@host`` when it has none (RFC 5957 DISPLAYFROM/DISPLAYTO).
* ``message_id``, ``in_reply_to`` and ``references`` (message ids, ``<...>`` included) for
  THREAD=REFERENCES. ``references`` already applies RFC 5256 section 3 step 1.A: without a
  valid id in References, the first valid id of In-Reply-To stands in for it.

Strings are stored as decoded Unicode, not collated: the collation is the protocol's choice
(``protocols/imap/collation.py``).
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass

from stalwart_py.mime.charsets import decode_header_value
from stalwart_py.mime.headers import read_fields, scan_header
from stalwart_py.mime.model import AddressList, Envelope

_WHITESPACE = re.compile(r"[ \t\r\n]+")
# RFC 5256 section 5: subj-trailer = "(fwd)" / WSP, removed from the end, repeatedly.
_TRAILER = re.compile(r"(?:\(fwd\)|[ \t])+\Z", re.IGNORECASE)
_BLOB = r"\[[^\[\]]*\][ \t]*"
# subj-leader = (*subj-blob subj-refwd) / WSP; subj-refwd = ("re" / ("fw" ["d"])) *WSP
# [subj-blob] ":"
_REFWD = re.compile(rf"(?:{_BLOB})*(?:re|fwd?)[ \t]*(?:{_BLOB})?:", re.IGNORECASE)
_LEADING_BLOB = re.compile(_BLOB)
_MSG_ID = re.compile(r"<([^<>\s@]+@[^<>\s@]+)>")
REFERENCES = frozenset(("references",))
MAX_REFERENCES = 500  # of a References field: a hostile one must not make THREAD quadratic


@dataclass(frozen=True, slots=True)
class SortFields:
    subject: str
    reply: bool
    sent: float | None
    from_mailbox: str
    from_display: str
    to_mailbox: str
    to_display: str
    cc_mailbox: str
    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]


def base_subject(raw: str | None) -> tuple[str, bool]:
    """RFC 5256 section 2.1: (the base subject, whether a reply/forward marker was removed).

    The steps, as numbered there: (1) decode encoded words and make every run of whitespace
    one space; (2) remove trailing ``(fwd)`` and whitespace; (3) remove leading ``Re:``,
    ``Fw:``, ``Fwd:`` (each maybe preceded by ``[blob]``s and followed by one before the
    colon) and whitespace; (4) remove a leading ``[blob]`` unless nothing would be left;
    repeat (3) and (4) while they change something; (5) unwrap ``[fwd: ... ]`` and start
    again at (2)."""
    if not raw:
        return "", False
    text = _WHITESPACE.sub(" ", decode_header_value(raw))
    reply = False
    while True:
        trimmed = _TRAILER.sub("", text)
        if "(" in text[len(trimmed) :]:
            reply = True  # a "(fwd)" went, not just spaces
        text = trimmed
        while True:
            before = text
            while True:
                match = _REFWD.match(text)
                if match is not None:
                    reply = True
                    text = text[match.end() :]
                elif text.startswith((" ", "\t")):
                    text = text.lstrip(" \t")
                else:
                    break
            match = _LEADING_BLOB.match(text)
            if match is not None and text[match.end() :].strip(" \t"):
                text = text[match.end() :]
            if text == before:
                break
        if len(text) >= 6 and text[:5].lower() == "[fwd:" and text.endswith("]"):
            text = text[5:-1]
            reply = True
            continue
        return text, reply


def first_address(addresses: AddressList | None) -> tuple[str, str]:
    """(addr-mailbox, display name or ``mailbox@host``) of the first address (not a group
    marker) of a field; empty strings when it has none."""
    for address in addresses or ():
        if address.host is None:  # group start or end
            continue
        mailbox = address.mailbox or ""
        name = decode_header_value(address.name).strip() if address.name else ""
        if not name:
            name = f"{mailbox}@{address.host}" if address.host else mailbox
        return mailbox, name
    return "", ""


def message_ids(value: str | None, limit: int = MAX_REFERENCES) -> tuple[str, ...]:
    """The valid ``<local@domain>`` message ids in a field, in order."""
    if not value:
        return ()
    return tuple(match.group(0) for match in _MSG_ID.finditer(value, 0))[-limit:]


def sent_date(value: str | None) -> float | None:
    """The Date header as POSIX seconds (its zone applied), or None."""
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None or parsed[0] < 1:
            return None
        return float(email.utils.mktime_tz(parsed))
    except (ValueError, OverflowError, TypeError, IndexError):
        return None


def from_envelope(envelope: Envelope, references: str | None) -> SortFields:
    """The sort fields of a message from its ENVELOPE and raw References field."""
    subject, reply = base_subject(envelope.subject)
    from_mailbox, from_display = first_address(envelope.from_)
    to_mailbox, to_display = first_address(envelope.to)
    cc_mailbox, _ = first_address(envelope.cc)
    own = message_ids(envelope.message_id, 1)
    parents = message_ids(envelope.in_reply_to, 1)
    chain = message_ids(references) or parents
    return SortFields(
        subject=subject,
        reply=reply,
        sent=sent_date(envelope.date),
        from_mailbox=from_mailbox,
        from_display=from_display,
        to_mailbox=to_mailbox,
        to_display=to_display,
        cc_mailbox=cc_mailbox,
        message_id=own[0] if own else None,
        in_reply_to=parents[0] if parents else None,
        references=chain,
    )


def compute(data: bytes, envelope: Envelope) -> SortFields:
    """The sort fields of a stored message (``envelope`` is its parsed ENVELOPE; only the
    References field is read again from the header)."""
    _, fields_length = scan_header(data, 0, len(data))
    references = read_fields(data, 0, fields_length, REFERENCES).get("references")
    return from_envelope(envelope, references)
