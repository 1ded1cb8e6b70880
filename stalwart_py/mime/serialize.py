"""``to_json``/``from_json``: the parsed structure as compact JSON for the store.

Positional arrays, not objects (a part is one array of its 18 fields in declaration order),
no whitespace, non-ASCII as is. A Sender or Reply-To equal to From is written as ``1``.
The first element is a format version, so a future change can read old rows. The text holds
no lone surrogates (headers are decoded with "replace"), so it is valid UTF-8 for SQLite.
"""

from __future__ import annotations

import json
from typing import Any

from stalwart_py.mime.model import AddressList, BodyPart, Envelope, EnvelopeAddress, ParsedMessage

FORMAT_VERSION = 1
_SAME_AS_FROM = 1


def to_json(message: ParsedMessage) -> str:
    return json.dumps(
        [FORMAT_VERSION, *_message_out(message)], ensure_ascii=False, separators=(",", ":")
    )


def from_json(text: str) -> ParsedMessage:
    """The message ``to_json`` wrote; ValueError if ``text`` is not such a message."""
    try:
        version, *rest = json.loads(text)
        if version != FORMAT_VERSION:
            raise ValueError(f"unknown parsed-message format version {version!r}")
        return _message_in(rest)
    except (TypeError, IndexError, KeyError, AttributeError) as error:
        raise ValueError(f"not a stored parsed message: {error}") from error


def _message_out(message: ParsedMessage) -> list[Any]:
    envelope = message.envelope
    return [
        [
            envelope.date,
            envelope.subject,
            _addresses_out(envelope.from_),
            _relative_out(envelope.sender, envelope.from_),
            _relative_out(envelope.reply_to, envelope.from_),
            _addresses_out(envelope.to),
            _addresses_out(envelope.cc),
            _addresses_out(envelope.bcc),
            envelope.in_reply_to,
            envelope.message_id,
        ],
        _part_out(message.body),
        message.size,
    ]


def _relative_out(addresses: AddressList | None, from_: AddressList | None) -> Any:
    if addresses is not None and addresses == from_:
        return _SAME_AS_FROM
    return _addresses_out(addresses)


def _addresses_out(addresses: AddressList | None) -> list[list[str | None]] | None:
    if addresses is None:
        return None
    return [[a.name, a.route, a.mailbox, a.host] for a in addresses]


def _part_out(part: BodyPart) -> list[Any]:
    return [
        part.type,
        part.subtype,
        part.params,
        part.id,
        part.description,
        part.encoding,
        part.size,
        part.lines,
        part.md5,
        part.disposition,
        part.language,
        part.location,
        part.header_offset,
        part.header_length,
        part.body_offset,
        part.body_length,
        [_part_out(child) for child in part.parts],
        None if part.message is None else _message_out(part.message),
    ]


def _message_in(value: list[Any]) -> ParsedMessage:
    envelope, body, size = value
    date, subject, from_, sender, reply_to, to, cc, bcc, in_reply_to, message_id = envelope
    from_addresses = _addresses_in(from_)
    return ParsedMessage(
        envelope=Envelope(
            date=date,
            subject=subject,
            from_=from_addresses,
            sender=from_addresses if sender == _SAME_AS_FROM else _addresses_in(sender),
            reply_to=from_addresses if reply_to == _SAME_AS_FROM else _addresses_in(reply_to),
            to=_addresses_in(to),
            cc=_addresses_in(cc),
            bcc=_addresses_in(bcc),
            in_reply_to=in_reply_to,
            message_id=message_id,
        ),
        body=_part_in(body),
        size=size,
    )


def _addresses_in(value: list[list[str | None]] | None) -> AddressList | None:
    if value is None:
        return None
    return tuple(EnvelopeAddress(*address) for address in value)


def _params_in(value: list[list[str]]) -> tuple[tuple[str, str], ...]:
    return tuple((name, text) for name, text in value)


def _part_in(value: list[Any]) -> BodyPart:
    (type_, subtype, params, id_, description, encoding, size, lines, md5, disposition,
     language, location, header_offset, header_length, body_offset, body_length, parts,
     message) = value  # fmt: skip
    return BodyPart(
        type=type_,
        subtype=subtype,
        params=_params_in(params),
        id=id_,
        description=description,
        encoding=encoding,
        size=size,
        lines=lines,
        md5=md5,
        disposition=None if disposition is None else (disposition[0], _params_in(disposition[1])),
        language=None if language is None else tuple(language),
        location=location,
        header_offset=header_offset,
        header_length=header_length,
        body_offset=body_offset,
        body_length=body_length,
        parts=tuple(_part_in(child) for child in parts),
        message=None if message is None else _message_in(message),
    )
