"""The arguments of NOTIFY (RFC 5465 section 8), parsed and checked. Sans-IO.

::

    notify           = "NOTIFY" SP (notify-set / notify-none)
    notify-none      = "NONE"
    notify-set       = "SET" [status-indicator] SP event-groups
    status-indicator = SP "(" "STATUS" ")"
    event-groups     = event-group *(SP event-group)
    event-group      = "(" filter-mailboxes SP events ")"
    filter-mailboxes = "selected" / "selected-delayed" / "inboxes" / "personal"
                       / "subscribed" / ("subtree" SP one-or-more-mailbox)
                       / ("mailboxes" SP one-or-more-mailbox)
    events           = ("(" event *(SP event) ")") / "NONE"
    event            = ("MessageNew" [SP "(" fetch-att *(SP fetch-att) ")"])
                       / "MessageExpunge" / "FlagChange" / "AnnotationChange"
                       / "MailboxName" / "SubscriptionChange" / "MailboxMetadataChange"
                       / "ServerMetadataChange" / event-ext

Two kinds of refusal. Grammar and the rules of section 5 are ``BAD``: MessageNew and
MessageExpunge go together, FlagChange needs both, a fetch-att list belongs to the selected
filters only, mailbox events do not apply to the selected mailbox, selected and
selected-delayed exclude each other. An event this server does not offer (AnnotationChange,
the METADATA events, an extension) is ``NO [BADEVENT (the events it offers)]`` (section 5).
"""

from __future__ import annotations

from dataclasses import dataclass

from protocols.imap.fetch_items import FetchItem, parse_fetch_items
from protocols.imap.lexer import ParseError, Reader

MESSAGE_NEW = "MessageNew"
MESSAGE_EXPUNGE = "MessageExpunge"
FLAG_CHANGE = "FlagChange"
MAILBOX_NAME = "MailboxName"
SUBSCRIPTION_CHANGE = "SubscriptionChange"
# The events served here, in their RFC spelling (BADEVENT lists them so).
SUPPORTED = (MESSAGE_NEW, MESSAGE_EXPUNGE, FLAG_CHANGE, MAILBOX_NAME, SUBSCRIPTION_CHANGE)
KNOWN = {name.upper(): name for name in SUPPORTED} | {
    "ANNOTATIONCHANGE": "AnnotationChange",
    "MAILBOXMETADATACHANGE": "MailboxMetadataChange",
    "SERVERMETADATACHANGE": "ServerMetadataChange",
}
MESSAGE_EVENTS = frozenset((MESSAGE_NEW, MESSAGE_EXPUNGE, FLAG_CHANGE, "AnnotationChange"))
SELECTED_FILTERS = frozenset(("SELECTED", "SELECTED-DELAYED"))
FILTERS = SELECTED_FILTERS | {"INBOXES", "PERSONAL", "SUBSCRIBED", "SUBTREE", "MAILBOXES"}
MAX_GROUPS = 64
MAX_MAILBOXES = 1000


class BadEvent(Exception):
    """An event the server does not offer: ``NO [BADEVENT (...)]``."""

    def __init__(self, event: str) -> None:
        super().__init__(f"Unsupported event {event}")
        self.event = event


@dataclass(frozen=True, slots=True)
class EventGroup:
    """One ``(filter events)``: which mailboxes, and what to report about them."""

    filter: str  # one of FILTERS, upper case
    mailboxes: tuple[bytes, ...] = ()  # SUBTREE and MAILBOXES: the names, raw
    events: frozenset[str] = frozenset()  # RFC spelling; empty: NONE
    fetch_items: tuple[FetchItem, ...] = ()  # MessageNew's fetch-att (selected filters)

    @property
    def selected(self) -> bool:
        return self.filter in SELECTED_FILTERS


@dataclass(frozen=True, slots=True)
class NotifyArgs:
    groups: tuple[EventGroup, ...] | None  # None: NOTIFY NONE
    status: bool = False  # SET (STATUS): the current status of each mailbox at once
    unsupported: str | None = None  # the first event not offered here (BADEVENT)


def parse_notify(reader: Reader, uid: bool) -> NotifyArgs:
    reader.space()
    word = reader.keyword()
    if word == "NONE":
        return NotifyArgs(None)
    if word != "SET":
        raise ParseError("expected NOTIFY SET or NOTIFY NONE")
    reader.space()
    status = False
    if reader.peek_upper(b"(STATUS"):
        reader.expect(b"(")
        reader.keyword()
        reader.expect(b")", "')'")
        reader.space()
        status = True
    groups: list[EventGroup] = []
    unsupported: list[str] = []
    while True:
        groups.append(_event_group(reader, unsupported))
        if len(groups) > MAX_GROUPS:
            raise ParseError("too many event groups")
        if not reader.skip(b" "):
            break
    _check(groups)
    return NotifyArgs(tuple(groups), status, unsupported[0] if unsupported else None)


def _event_group(reader: Reader, unsupported: list[str]) -> EventGroup:
    reader.expect(b"(", "'('")
    name = reader.keyword()
    if name not in FILTERS:
        raise ParseError(f"unknown NOTIFY filter {name}")
    mailboxes: tuple[bytes, ...] = ()
    if name in ("SUBTREE", "MAILBOXES"):
        reader.space()
        if reader.peek() == b"(":
            mailboxes = tuple(reader.parenthesized(lambda r: r.astring(), allow_empty=False))
        else:
            mailboxes = (reader.astring(),)
        if len(mailboxes) > MAX_MAILBOXES:
            raise ParseError("too many mailboxes")
    reader.space()
    events: set[str] = set()
    fetch_items: tuple[FetchItem, ...] = ()
    if reader.peek_upper(b"NONE"):
        reader.keyword()
    else:

        def event(reader: Reader) -> None:
            nonlocal fetch_items
            word = reader.keyword()
            known = KNOWN.get(word)
            if known is None or known not in SUPPORTED:
                unsupported.append(known or word)
                known = known or word
            if known == MESSAGE_NEW and reader.peek(2) == b" (":
                reader.space()
                fetch_items = parse_fetch_items(reader)
            events.add(known)

        reader.parenthesized(event, allow_empty=False)
    reader.expect(b")", "')'")
    return EventGroup(name, mailboxes, frozenset(events), fetch_items)


def _check(groups: list[EventGroup]) -> None:
    """The rules of RFC 5465 section 5 that make a request malformed (BAD)."""
    if sum(group.selected for group in groups) > 1:
        raise ParseError("selected and selected-delayed may be given only once")
    for group in groups:
        events = group.events
        if (MESSAGE_NEW in events) != (MESSAGE_EXPUNGE in events):
            raise ParseError("MessageNew and MessageExpunge must be given together")
        if events & {FLAG_CHANGE, "AnnotationChange"} and MESSAGE_NEW not in events:
            raise ParseError("FlagChange needs MessageNew and MessageExpunge")
        if group.fetch_items and not group.selected:
            raise ParseError("fetch attributes only apply to the selected mailbox")
        if group.selected and events - MESSAGE_EVENTS:
            raise ParseError("mailbox events do not apply to the selected mailbox")
