"""NOTIFY's arguments (RFC 5465 section 8): the grammar, the rules of section 5 (BAD), and
events the server does not offer (BADEVENT)."""

from __future__ import annotations

import pytest

from protocols.imap.commands import CommandError, parse_command
from protocols.imap.fetch_items import BodySection
from protocols.imap.notify_args import EventGroup, NotifyArgs


def parse(text: str) -> NotifyArgs:
    command = parse_command(f"a NOTIFY {text}\r\n".encode())
    assert command.name == "NOTIFY"
    return command.args


def test_none():
    assert parse("NONE") == NotifyArgs(None)
    assert parse("none") == NotifyArgs(None)


def test_the_examples_of_rfc_5465():
    args = parse(
        "SET (selected (MessageNew (uid body.peek[header.fields (from to subject)]) "
        "MessageExpunge)) (subtree Lists (MessageNew MessageExpunge)) "
        '(mailboxes (Drafts "Sent Items") NONE)'
    )
    assert not args.status and args.unsupported is None
    selected, lists, drafts = args.groups or ()
    assert selected.filter == "SELECTED" and selected.selected
    assert selected.events == {"MessageNew", "MessageExpunge"}
    assert selected.fetch_items[0] == "UID"
    section = selected.fetch_items[1]
    assert isinstance(section, BodySection) and section.peek
    assert lists == EventGroup("SUBTREE", (b"Lists",), frozenset({"MessageNew", "MessageExpunge"}))
    assert drafts == EventGroup("MAILBOXES", (b"Drafts", b"Sent Items"), frozenset())


def test_status_indicator_and_every_filter():
    args = parse(
        "SET (STATUS) (selected-delayed (MessageNew MessageExpunge FlagChange)) "
        "(inboxes (MessageNew MessageExpunge)) (personal (MailboxName SubscriptionChange)) "
        "(subscribed (messagenew messageexpunge flagchange)) (subtree INBOX (MailboxName))"
    )
    assert args.status
    filters = [group.filter for group in args.groups or ()]
    assert filters == ["SELECTED-DELAYED", "INBOXES", "PERSONAL", "SUBSCRIBED", "SUBTREE"]
    assert args.groups[3].events == {"MessageNew", "MessageExpunge", "FlagChange"}  # type: ignore[index]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "SET",
        "SET ()",
        "SET (personal)",
        "SET (personal ())",
        "SET (everything (MessageNew MessageExpunge))",
        "SET (subtree (MessageNew MessageExpunge))",
        "SET (personal (MessageNew))",  # MessageNew without MessageExpunge
        "SET (personal (MessageExpunge))",
        "SET (personal (FlagChange))",  # FlagChange without the two
        "SET (personal (MessageNew (UID) MessageExpunge))",  # fetch-att outside selected
        "SET (selected (MailboxName))",  # a mailbox event for the selected mailbox
        "SET (selected NONE) (selected-delayed NONE)",
        "SET (STATUS)",
        "ALL",
    ],
)
def test_malformed_is_bad(text):
    with pytest.raises(CommandError):
        parse(text)


@pytest.mark.parametrize(
    ("text", "event"),
    [
        ("SET (personal (MessageNew MessageExpunge AnnotationChange))", "AnnotationChange"),
        ("SET (personal (MailboxMetadataChange))", "MailboxMetadataChange"),
        ("SET (inboxes (ServerMetadataChange))", "ServerMetadataChange"),
        ("SET (personal (MailboxName X-Whatever))", "X-WHATEVER"),
    ],
)
def test_events_not_offered_are_badevent(text, event):
    assert parse(text).unsupported == event
