"""The parsed shape of a message: ENVELOPE, the BODYSTRUCTURE tree with byte offsets, and
IMAP part numbering (``find_part``). Plain immutable values, cheap to cache and compare."""

from __future__ import annotations

from dataclasses import dataclass

Params = tuple[tuple[str, str], ...]
AddressList = tuple["EnvelopeAddress", ...]


@dataclass(frozen=True, slots=True)
class EnvelopeAddress:
    """One IMAP ENVELOPE address (RFC 9051 section 7.5.2).

    A group is a start marker (``mailbox`` is the group name, ``host`` None), its members,
    and an end marker (all four None). A missing domain is ``host == ""``, never None, so
    that an ungrouped address is never mistaken for a group marker.
    """

    name: str | None
    route: str | None
    mailbox: str | None
    host: str | None

    @property
    def is_group_start(self) -> bool:
        return self.host is None and self.mailbox is not None

    @property
    def is_group_end(self) -> bool:
        return self.host is None and self.mailbox is None


@dataclass(frozen=True, slots=True)
class Envelope:
    """IMAP ENVELOPE fields, raw as in the header (unfolded; encoded words not decoded)."""

    date: str | None
    subject: str | None
    from_: AddressList | None
    sender: AddressList | None
    reply_to: AddressList | None
    to: AddressList | None
    cc: AddressList | None
    bcc: AddressList | None
    in_reply_to: str | None
    message_id: str | None


@dataclass(frozen=True, slots=True)
class BodyPart:
    """One MIME entity: what BODYSTRUCTURE reports about it, and where its bytes are.

    Invariants (``parse_message`` guarantees them; the IMAP writer may rely on them):

    * ``header_offset + header_length == body_offset`` and ``size == body_length``;
    * ``type == "multipart"`` exactly when ``parts`` is non-empty;
    * ``message`` is set exactly when ``type == "message"`` and ``subtype`` is ``"rfc822"``
      or ``"global"``;
    * ``lines`` is set exactly for ``text/*`` and for parts with ``message`` set.
    """

    type: str
    subtype: str
    params: Params
    id: str | None
    description: str | None
    encoding: str
    size: int
    lines: int | None
    md5: str | None
    disposition: tuple[str, Params] | None
    language: tuple[str, ...] | None
    location: str | None
    header_offset: int
    header_length: int
    body_offset: int
    body_length: int
    parts: tuple[BodyPart, ...] = ()
    message: ParsedMessage | None = None

    def param(self, name: str) -> str | None:
        """The value of a Content-Type parameter (``name`` lowercase), or None."""
        for key, value in self.params:
            if key == name:
                return value
        return None

    @property
    def header_end(self) -> int:
        return self.header_offset + self.header_length

    @property
    def body_end(self) -> int:
        return self.body_offset + self.body_length


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """A whole message (or one enclosed in a message/rfc822 part) and its octet count."""

    envelope: Envelope
    body: BodyPart
    size: int


def find_part(message: ParsedMessage, section: tuple[int, ...]) -> BodyPart | None:
    """The part a section number names (RFC 9051 section 6.4.5), or None if there is none.

    The top level of a message (the whole message, or a message/rfc822 part's enclosed
    message) is numbered like this: when its body is multipart, ``n`` is the n-th child;
    otherwise only ``1`` exists and is that body itself. Below, the children of a multipart
    are numbered from 1 and a message/rfc822 part numbers its enclosed message's top level.
    ``()`` is the top-level body (for ``BODY[HEADER]``, ``BODY[TEXT]``).
    """
    if not section:
        return message.body
    part = _top_level(message.body, section[0])
    for number in section[1:]:
        if part is None:
            return None
        if part.parts:
            part = _nth(part.parts, number)
        elif part.message is not None:
            part = _top_level(part.message.body, number)
        else:
            return None
    return part


def _top_level(body: BodyPart, number: int) -> BodyPart | None:
    if body.parts:
        return _nth(body.parts, number)
    return body if number == 1 else None


def _nth(parts: tuple[BodyPart, ...], number: int) -> BodyPart | None:
    return parts[number - 1] if 1 <= number <= len(parts) else None
