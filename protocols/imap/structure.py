"""ENVELOPE, BODY and BODYSTRUCTURE (RFC 9051 section 7.5.2) from the cached MIME structure.

``envelope``: ``(date subject from sender reply-to to cc bcc in-reply-to message-id)``, each
string an nstring, each address list ``((name adl mailbox host) ...)`` or NIL. A group is a
start marker ``(NIL NIL "group" NIL)``, its members and an end marker ``(NIL NIL NIL NIL)``.
Header values go out raw: encoded words are the client's to decode.

``body_structure``: a leaf is ``(type subtype (params) id description encoding size`` then
``lines`` for text/*, ``envelope body lines`` for message/rfc822 and message/global, then,
in BODYSTRUCTURE only, the extension data ``md5 disposition language location``. A
multipart is ``(child child ... subtype`` then, in BODYSTRUCTURE only, ``(params)
disposition language location``. Types, subtypes and encodings are written upper-case as in
the RFC's examples; parameter values are kept exactly (a boundary is case-sensitive).
"""

from __future__ import annotations

from protocols.imap.response import nstring, string
from stalwart_py.mime import BodyPart, Envelope, EnvelopeAddress, ParsedMessage

NIL = b"NIL"


def _addresses(addresses: tuple[EnvelopeAddress, ...] | None) -> bytes:
    if not addresses:
        return NIL
    return (
        b"(("
        + b")(".join(
            b" ".join(
                (
                    nstring(address.name),
                    nstring(address.route),
                    nstring(address.mailbox),
                    nstring(address.host),
                )
            )
            for address in addresses
        )
        + b"))"
    )


def envelope(value: Envelope) -> bytes:
    from_ = _addresses(value.from_)
    return b" ".join(
        (
            b"(" + nstring(value.date),
            nstring(value.subject),
            from_,
            from_ if value.sender is value.from_ else _addresses(value.sender),
            from_ if value.reply_to is value.from_ else _addresses(value.reply_to),
            _addresses(value.to),
            _addresses(value.cc),
            _addresses(value.bcc),
            nstring(value.in_reply_to),
            nstring(value.message_id) + b")",
        )
    )


def _params(params: tuple[tuple[str, str], ...]) -> bytes:
    if not params:
        return NIL
    return b"(" + b" ".join(string(n.upper()) + b" " + string(v) for n, v in params) + b")"


def _disposition(value: tuple[str, tuple[tuple[str, str], ...]] | None) -> bytes:
    if value is None:
        return NIL
    return b"(" + string(value[0].upper()) + b" " + _params(value[1]) + b")"


def _language(value: tuple[str, ...] | None) -> bytes:
    if not value:
        return NIL
    if len(value) == 1:
        return string(value[0])
    return b"(" + b" ".join(string(tag) for tag in value) + b")"


def body_structure(part: BodyPart, extended: bool = True) -> bytes:
    """BODYSTRUCTURE (``extended``) or BODY of one part and everything below it."""
    if part.parts:
        out = [b"(", b"".join(body_structure(child, extended) for child in part.parts)]
        out += [b" ", string(part.subtype.upper())]
        if extended:
            out += [
                b" ",
                _params(part.params),
                b" ",
                _disposition(part.disposition),
                b" ",
                _language(part.language),
                b" ",
                nstring(part.location),
            ]
        out.append(b")")
        return b"".join(out)
    out = [
        b"(",
        string(part.type.upper()),
        b" ",
        string(part.subtype.upper()),
        b" ",
        _params(_text_params(part)),
        b" ",
        nstring(part.id),
        b" ",
        nstring(part.description),
        b" ",
        string(part.encoding.upper()),
        b" ",
        str(part.size).encode(),
    ]
    if part.message is not None:
        out += [
            b" ",
            envelope(part.message.envelope),
            b" ",
            body_structure(part.message.body, extended),
            b" ",
            str(part.lines or 0).encode(),
        ]
    elif part.type == "text":
        out += [b" ", str(part.lines or 0).encode()]
    if extended:
        out += [
            b" ",
            nstring(part.md5),
            b" ",
            _disposition(part.disposition),
            b" ",
            _language(part.language),
            b" ",
            nstring(part.location),
        ]
    out.append(b")")
    return b"".join(out)


def _text_params(part: BodyPart) -> tuple[tuple[str, str], ...]:
    """A text part without a charset is us-ascii (RFC 2045 5.2, RFC 2046 4.1.2): say so,
    as RFC 9051's examples and Dovecot do, rather than leave the client to know it."""
    if part.type != "text" or any(name == "charset" for name, _ in part.params):
        return part.params
    return (("charset", "us-ascii"), *part.params)


def message_structure(message: ParsedMessage, extended: bool = True) -> bytes:
    return body_structure(message.body, extended)
