"""LIST and LSUB (RFC 9051 section 6.3.9, RFC 3501 section 6.3.9) with LIST-EXTENDED
(RFC 5258), LIST-STATUS (RFC 5819), SPECIAL-USE (RFC 6154) and CHILDREN (RFC 3348).

The hierarchy is built from the account's mailbox names and, for the SUBSCRIBED options and
LSUB, its subscribed names, which need not exist: such a name lists as ``\\Subscribed
\\NonExistent`` under LIST (SUBSCRIBED) and never in a plain LIST (RFC 5258 section 3).
A name that only exists as the parent of another (``a`` when there is only ``a/b``) is
listed ``\\NonExistent`` (or
``\\Noselect`` to an IMAP4rev1 client using the basic syntax). Every mailbox carries
``\\HasChildren`` or ``\\HasNoChildren`` and its special-use attribute.

Selection options: ``SUBSCRIBED`` lists subscribed mailboxes only; with
``RECURSIVEMATCH``, a matching mailbox that is not itself selected but has a selected
descendant is listed with ``("CHILDINFO" ("SUBSCRIBED"))``; ``SPECIAL-USE`` lists mailboxes
with a special use only; ``REMOTE`` changes nothing (no remote mailboxes here). Return
options: ``SUBSCRIBED`` adds ``\\Subscribed``, ``CHILDREN`` and ``SPECIAL-USE`` are always
given, ``STATUS (...)`` adds a STATUS response after each selectable mailbox.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from protocols.imap.commands import Command, ListArgs
from protocols.imap.mailbox_commands import status_items
from protocols.imap.mailbox_names import DELIMITER, INBOX, parents, pattern_regex
from protocols.imap.replies import Ok

if TYPE_CHECKING:
    from protocols.imap.session import Session


@dataclass
class Node:
    name: str
    mailbox_id: int | None = None  # None: no mailbox has this name
    listed: bool = False  # a mailbox or the parent of one: a plain LIST shows it
    subscribed: bool = False
    special_use: str | None = None
    has_children: bool = False  # a mailbox below it
    subscribed_child: bool = False  # a subscribed name below it
    children: list[str] = field(default_factory=list)


async def _hierarchy(session: Session, subscriptions: bool) -> dict[str, Node]:
    """The account's mailboxes and their parents, and (when asked) the subscribed names,
    which need not be mailboxes (RFC 9051 section 6.3.7)."""
    nodes: dict[str, Node] = {}
    mailboxes = await session.store.list_mailboxes(session.account_id)
    for mailbox in mailboxes:
        node = nodes.setdefault(mailbox.name, Node(mailbox.name))
        node.mailbox_id = mailbox.id
        node.listed = True
        node.special_use = mailbox.special_use
    for mailbox in mailboxes:
        for parent in parents(mailbox.name):
            node = nodes.setdefault(parent, Node(parent))
            node.listed = node.has_children = True
    if subscriptions:
        for name in await session.store.subscriptions(session.account_id):
            nodes.setdefault(name, Node(name)).subscribed = True
            for parent in parents(name):
                nodes.setdefault(parent, Node(parent)).subscribed_child = True
    return nodes


def _order(name: str) -> tuple[int, str]:
    return (0 if name == INBOX or name.startswith(INBOX + DELIMITER) else 1, name)


async def list_mailboxes(session: Session, command: Command) -> Ok:
    args: ListArgs = command.args
    lsub = command.name == "LSUB"
    if not lsub and len(args.patterns) == 1 and args.patterns[0] == b"" and not args.selection:
        # RFC 9051 6.3.9: the hierarchy delimiter and the root name of the reference
        session.write(b'* LIST (\\Noselect) "/" ""\r\n')
        return Ok()
    reference = session.decode(args.reference) if args.reference else ""
    regexes = [pattern_regex(reference, _decode_pattern(session, p)) for p in args.patterns]
    subscribed_only = lsub or "SUBSCRIBED" in args.selection
    recursive = "RECURSIVEMATCH" in args.selection
    special_only = "SPECIAL-USE" in args.selection
    show_subscribed = subscribed_only or "SUBSCRIBED" in args.returns
    nodes = await _hierarchy(session, show_subscribed)
    keyword = "LSUB" if lsub else "LIST"
    for name in sorted(nodes, key=_order):
        if not any(regex.match(name) for regex in regexes):
            continue
        node = nodes[name]
        if lsub:
            attributes = _lsub_attributes(node, nodes, regexes)
            if attributes is None:
                continue
        else:
            child_info = False
            if subscribed_only and not node.subscribed:
                if not (recursive and node.subscribed_child):
                    continue
                child_info = True
            elif not subscribed_only and not node.listed:
                continue  # a subscribed name without a mailbox: only LIST (SUBSCRIBED)
            if special_only and node.special_use is None:
                continue
            attributes = []
            if node.mailbox_id is None:
                attributes.append("\\NonExistent" if args.extended else "\\Noselect")
            if node.listed:
                attributes.append("\\HasChildren" if node.has_children else "\\HasNoChildren")
            if show_subscribed and node.subscribed:
                attributes.append("\\Subscribed")
            if node.special_use:
                attributes.append(node.special_use)
        line = (
            f"* {keyword} (".encode()
            + " ".join(attributes).encode("ascii")
            + b') "/" '
            + session.encode(name)
        )
        if not lsub and child_info:
            line += b' ("CHILDINFO" ("SUBSCRIBED"))'
        session.write(line + b"\r\n")
        if args.status_items and node.mailbox_id is not None:
            items = await status_items(session, node.mailbox_id, args.status_items)
            session.write(b"* STATUS " + session.encode(name) + b" (" + items + b")\r\n")
        await session.flush_if_full()
    return Ok()


def _lsub_attributes(
    node: Node, nodes: dict[str, Node], regexes: list[re.Pattern[str]]
) -> list[str] | None:
    """LSUB (RFC 3501 section 6.3.9) lists subscribed names, existing or not (with no
    attribute, as Dovecot does). An unsubscribed name is listed, ``\\Noselect``, when a
    subscribed name below it does not match the pattern because a ``%`` stopped at this
    level ("foo/bar" subscribed, "foo" not: ``LSUB "" %`` returns "foo")."""
    if node.subscribed:
        return [node.special_use] if node.special_use else []
    if not node.subscribed_child:
        return None
    prefix = node.name + DELIMITER
    hidden = any(
        other.subscribed
        and name.startswith(prefix)
        and not any(regex.match(name) for regex in regexes)
        for name, other in nodes.items()
    )
    return ["\\Noselect"] if hidden else None


def _decode_pattern(session: Session, raw: bytes) -> str:
    """A pattern is decoded like a name; its wildcards are plain ASCII either way."""
    return session.decode(raw) if raw else ""


async def lsub(session: Session, command: Command) -> Ok:
    return await list_mailboxes(session, command)
