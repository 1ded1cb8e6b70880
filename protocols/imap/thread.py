"""THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256 sections 2.2 and 4) as pure
functions from the matching messages to the thread tree, and the ``* THREAD`` syntax.

Every traversal is iterative: a reply chain thousands of messages deep (a mailing list
archive, or a hostile References field) must not hit Python's recursion limit.

Sent dates follow SORT's DATE (the Date header, else the INTERNALDATE); equal dates keep
mailbox order. Subjects are compared as base subjects under i;unicode-casemap.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ThreadMessage:
    """What threading needs of one message; ``uid`` also gives mailbox order."""

    uid: int
    sent: float
    subject: str  # the collated base subject
    reply: bool  # the subject had Re:/Fwd:/(fwd) (RFC 5256 section 2.1)
    message_id: str | None
    references: tuple[str, ...]  # References, or the In-Reply-To id (section 2.2 step 1)


class Node:
    """A container of the threading algorithm: a message, or a dummy (``message`` None)
    standing for one that is referenced but not in the set."""

    __slots__ = ("children", "message", "parent")

    def __init__(self, message: ThreadMessage | None = None) -> None:
        self.message = message
        self.parent: Node | None = None
        self.children: list[Node] = []

    def date_key(self) -> tuple[float, int]:
        """The sent date and mailbox order of the message, or of a dummy's first child
        (children are sorted before their parent is compared)."""
        node = self
        while node.message is None:
            if not node.children:
                return (0.0, 0)
            node = node.children[0]
        return (node.message.sent, node.message.uid)


def _sort_key(node: Node) -> tuple[float, int]:
    return node.date_key()


def ordered_subject(messages: Sequence[ThreadMessage]) -> list[Node]:
    """RFC 5256 section 2.2 ORDEREDSUBJECT: messages sorted by base subject then sent date;
    each run of one subject is a thread whose first message is the parent of the others
    (siblings); threads sorted by the sent date of their first message."""
    ordered = sorted(messages, key=lambda m: (m.subject, m.sent, m.uid))
    roots: list[Node] = []
    current: Node | None = None
    for message in ordered:
        if (
            current is not None
            and current.message is not None
            and (current.message.subject == message.subject)
        ):
            current.children.append(Node(message))
            continue
        current = Node(message)
        roots.append(current)
    roots.sort(key=_sort_key)
    return roots


def _is_ancestor(candidate: Node, node: Node | None) -> bool:
    """Whether ``candidate`` is ``node`` or one of its ancestors."""
    while node is not None:
        if node is candidate:
            return True
        node = node.parent
    return False


def _link(parent: Node, child: Node) -> None:
    child.parent = parent
    parent.children.append(child)


def _unlink(child: Node) -> None:
    parent = child.parent
    if parent is not None:
        parent.children.remove(child)
        child.parent = None


def _prune(children: list[Node], at_root: bool) -> list[Node]:
    """Step 4: drop childless dummies; splice a dummy's children into its place, except at
    the top level where only a dummy with a single child is spliced."""
    out: list[Node] = []
    stack = list(reversed(children))
    while stack:
        node = stack.pop()
        if node.message is None:
            if not node.children:
                continue
            if not at_root or len(node.children) == 1:
                stack.extend(reversed(node.children))
                continue
        out.append(node)
    for node in out:
        node.parent = None
    return out


def _prune_all(roots: list[Node]) -> list[Node]:
    roots = _prune(roots, True)
    pending = list(roots)
    while pending:
        node = pending.pop()
        node.children = _prune(node.children, False)
        for child in node.children:
            child.parent = node
        pending.extend(node.children)
    return roots


def _sort_tree(roots: list[Node]) -> None:
    """Sort every set of siblings by sent date, children before parents (a dummy's date is
    that of its first child), then the top level."""
    order: list[Node] = []
    pending = list(roots)
    while pending:
        node = pending.pop()
        order.append(node)
        pending.extend(node.children)
    for node in reversed(order):  # deepest first
        if len(node.children) > 1:
            node.children.sort(key=_sort_key)
    roots.sort(key=_sort_key)


def _thread_subject(node: Node) -> tuple[str, ThreadMessage | None]:
    first = node if node.message is not None else (node.children[0] if node.children else node)
    return (first.message.subject if first.message else ""), node.message


def references(messages: Sequence[ThreadMessage]) -> list[Node]:
    """RFC 5256 section 2.2 REFERENCES (after Jamie Zawinski's algorithm), steps 1 to 7."""
    by_id: dict[str, Node] = {}

    def container(message_id: str) -> Node:
        node = by_id.get(message_id)
        if node is None:
            node = by_id[message_id] = Node()
        return node

    nodes: list[Node] = []
    for message in messages:
        # Step 1: a message without an id, or with one already taken, gets a unique one.
        node = by_id.get(message.message_id) if message.message_id else None
        if node is None or node.message is not None:
            node = Node(message)
            if message.message_id and message.message_id not in by_id:
                by_id[message.message_id] = node
        else:
            node.message = message
        nodes.append(node)
        # 1.A: link the references in a chain, never changing a link, never making a loop.
        chain = [container(ref) for ref in message.references]
        for parent, child in itertools.pairwise(chain):
            if child.parent is None and not _is_ancestor(child, parent):
                _link(parent, child)
        # 1.B: the last reference is the parent, replacing a parent set by an earlier
        # message's (maybe truncated) References.
        if node.parent is not None:
            _unlink(node)
        if chain and not _is_ancestor(node, chain[-1]):
            _link(chain[-1], node)
    # Step 2: the root set; step 3: the id table goes.
    roots = [node for node in {id(n): n for n in [*by_id.values(), *nodes]}.values()]
    roots = [node for node in roots if node.parent is None]
    roots.sort(key=lambda node: node.date_key())  # a stable start for the steps below
    roots = _prune_all(roots)
    # Step 5: sort the top level by sent date (a dummy by its first child's).
    for node in roots:
        if node.message is None:
            node.children.sort(key=_sort_key)
    roots.sort(key=_sort_key)
    roots = _merge_subjects(roots)
    _sort_tree(roots)
    return roots


def _merge_subjects(roots: list[Node]) -> list[Node]:
    """Step 6: threads whose base subjects are equal are gathered."""
    table: dict[str, Node] = {}
    for node in roots:  # 6.B
        subject, message = _thread_subject(node)
        if not subject:
            continue
        held = table.get(subject)
        # the first thread of a subject, unless a later one is a better parent: a dummy,
        # or an original where the first was a reply
        better = held is not None and held.message is not None
        better = better and (message is None or (held.message.reply and not message.reply))
        if held is None or better:
            table[subject] = node
    removed: set[int] = set()
    replaced: dict[int, Node] = {}
    for node in roots:  # 6.C
        subject, message = _thread_subject(node)
        if not subject:
            continue
        held = table[subject]
        if held is node:
            continue
        removed.add(id(node))
        if held.message is None and message is None:
            for child in node.children:
                _link(held, child)
            node.children = []
        elif held.message is None or (
            message is not None and message.reply and not held.message.reply
        ):
            _link(held, node)  # under a dummy, or a reply under the original
        else:
            dummy = Node()
            replaced[id(held)] = dummy
            _link(dummy, held)
            _link(dummy, node)
            table[subject] = dummy
    return [replaced.get(id(node), node) for node in roots if id(node) not in removed]


def render(roots: list[Node], number: Callable[[int], int]) -> bytes:
    """``* THREAD`` data: ``(a b (c)(d e))``: a chain is a run of numbers, several
    children are each a parenthesized list, a dummy only its children (RFC 5256 4)."""
    out: list[str] = []
    for root in roots:
        out.append("(")
        stack: list[Node | str] = [root]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                out.append(item)
                continue
            kids = item.children
            if item.message is not None:
                out.append(str(number(item.message.uid)))
                if len(kids) == 1:
                    stack += [kids[0], " "]
                    continue
                if kids:
                    for kid in reversed(kids):
                        stack += [")", kid, "("]
                    stack.append(" ")
            elif len(kids) == 1:
                stack.append(kids[0])
            else:
                for kid in reversed(kids):
                    stack += [")", kid, "("]
        out.append(")")
    return "".join(out).encode()
