"""Sieve notifications (RFC 5435 "enotify") by e-mail (RFC 5436, the "mailto" method).

The language (RFC 5435):

* ``notify [":from" string] [":importance" "1"/"2"/"3"] [":options" string-list]
  [":message" string] <method: string>`` asks for a notification; it does not cancel the
  implicit keep. A constant method that is not a valid mailto URI, an importance other than
  1, 2 or 3, a constant ``:from`` that is not an address, or an option that is not
  ``name=value`` is refused at upload with its line and column (section 3.1-3.5); one built
  from variables that turns out invalid is a runtime error (the message is kept).
* ``valid_notify_method <uris>`` is true when every URI is a valid URI of a supported
  method (section 5); ``notify_method_capability <uri> <capability> <keys>`` matches the
  method's answer for that capability: "online" is "maybe" for mailto (RFC 5436 2.6), any
  other capability, or an invalid URI, makes the test false (section 5.1).
* The ``:encodeurl`` modifier of ``set`` (precedence 15) percent-encodes every octet of the
  UTF-8 value but the RFC 3986 unreserved characters (section 6).

The mailto method (RFC 5436, the URI of RFC 6068):

* Recipients are the addresses of the URI's path and of its "to" and "cc" header fields
  (at most ``MAX_RECIPIENTS``); "bcc" is ignored, so a notification never carries hidden
  recipients (Pigeonhole does the same).
* Section 2.2: the other header fields of the URI are copied to the notification, except
  the ones the notifier itself sets or that describe the original message, which are
  ignored (``IGNORED_FIELDS``: From, Sender, Auto-Submitted, Received, Message-ID, Date,
  In-Reply-To, References, the Resent-* fields); at most ``MAX_HEADERS`` fields, and a
  value with a line break makes the URI invalid (header injection). "body" is the body.
* Subject: ``:message``, else the URI's "subject", else "Notification: " and the original
  subject (section 2.3, 2.4). From: ``:from`` when it is an address of the account (as for
  vacation; otherwise the account's address), else the account's address.
* The envelope sender is the account's own address, RFC 5436 2.3's "mailbox that receives
  bounces": the user learns that a notification target fails. (Pigeonhole does the same.)
* Section 2.7: the notification carries ``Auto-Submitted: auto-notified`` with the owner's
  address as ``owner-email``; no notification is sent for a message that is itself
  automatic (Auto-Submitted other than "no"), from a mailing list (List-Id and the other
  List-* fields, Precedence list/bulk/junk), or a bounce (the null envelope sender: a
  notification to a broken address bounces to the owner, whose script must not answer that
  bounce with another notification). A notification to one of the user's own addresses
  comes back auto-notified and so notifies no further: no loop.
* The same recipient is notified once per message however many notify actions name it
  (RFC 5435 section 3.8 lets duplicates be dropped; Pigeonhole does).
"""

from __future__ import annotations

import email.policy
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from stalwart_py.mime import date_now, parse_address_list
from stalwart_py.sieve.actions import Notify, SieveRuntimeError
from stalwart_py.sieve.lexer import SieveSyntaxError
from stalwart_py.sieve.validate import Conditional, Node

if TYPE_CHECKING:
    from stalwart_py.sieve.actions import Action, Limits
    from stalwart_py.sieve.interpreter import Environment
    from stalwart_py.sieve.message import MessageView

METHODS = ("mailto",)  # ManageSieve's NOTIFY capability (RFC 5804 section 1.7)
MAX_RECIPIENTS = 8  # as Pigeonhole: a notification is for a few addresses, not a list
MAX_HEADERS = 16
MAX_SUBJECT = 256
IGNORED_FIELDS = frozenset(
    {
        "from", "sender", "auto-submitted", "received", "message-id", "date", "in-reply-to",
        "references", "resent-date", "resent-from", "resent-sender", "resent-to", "resent-cc",
        "resent-bcc", "resent-msg-id", "return-path", "bcc",
    }
)  # fmt: skip
LIST_FIELDS = ("list-id", "list-help", "list-subscribe", "list-unsubscribe", "list-post",
               "list-owner", "list-archive")  # fmt: skip
_FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+\Z")
_OPTION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+-]*=[^\r\n]*\Z", re.DOTALL)
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


@dataclass(frozen=True, slots=True)
class MailtoUri:
    """A parsed mailto URI: who to notify and the header fields and body it asks for."""

    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str | None
    body: str | None
    headers: tuple[tuple[str, str], ...]  # the other fields, IGNORED_FIELDS left out


class InvalidUri(ValueError):
    pass


def parse_mailto(uri: str) -> MailtoUri:
    """RFC 6068 ``mailto:addr,addr?hfield=value&...``, percent-decoded; raises InvalidUri."""
    scheme = _SCHEME.match(uri)
    if scheme is None:
        raise InvalidUri(f'"{uri[:60]}" is not a URI')
    if scheme.group(1).lower() not in METHODS:
        raise InvalidUri(f'unsupported notification method "{scheme.group(1)}" (mailto)')
    path, _, query = uri[scheme.end() :].partition("?")
    to = _addresses(unquote(path)) if path else []
    cc: list[str] = []
    subject = body = None
    headers: list[tuple[str, str]] = []
    for hfield in query.split("&") if query else ():
        raw_name, equals, raw_value = hfield.partition("=")
        name, value = unquote(raw_name).lower(), unquote(raw_value)
        if not equals or not _FIELD_NAME.match(name):
            raise InvalidUri(f'"{hfield[:60]}" is not a header field of a mailto URI')
        if name == "body":
            body = value
            continue
        if "\r" in value or "\n" in value:
            raise InvalidUri(f'the "{name}" field of a mailto URI holds a line break')
        if name == "to":
            to += _addresses(value)
        elif name == "cc":
            cc += _addresses(value)
        elif name == "subject":
            subject = value
        elif name not in IGNORED_FIELDS:
            headers.append((name, value))
    if len(to) + len(cc) > MAX_RECIPIENTS:
        raise InvalidUri(f"a mailto URI may name at most {MAX_RECIPIENTS} recipients")
    if len(headers) > MAX_HEADERS:
        raise InvalidUri(f"a mailto URI may carry at most {MAX_HEADERS} header fields")
    return MailtoUri(tuple(to), tuple(cc), subject, body, tuple(headers))


def _addresses(text: str) -> list[str]:
    out = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        parsed = [a for a in parse_address_list(item) or () if a.mailbox and a.host]
        if len(parsed) != 1:
            raise InvalidUri(f'"{item[:60]}" is not an address')
        out.append(f"{parsed[0].mailbox}@{parsed[0].host}")
    return out


def valid_address(text: str) -> str | None:
    """The addr-spec of a ``:from`` value (``Name <a@b>`` or ``a@b``), or None."""
    parsed = [a for a in parse_address_list(text) or () if a.mailbox and a.host]
    return f"{parsed[0].mailbox}@{parsed[0].host}" if len(parsed) == 1 else None


# -- checks at upload ---------------------------------------------------------------------


def check(commands: tuple[Any, ...], extensions: frozenset[str]) -> None:
    """Constant arguments of ``notify``, checked at upload (an invalid URI given to the
    notify tests is not an error: making them false is their purpose)."""
    variables = "variables" in extensions
    for node in walk(commands):
        if node.name == "notify":
            problem = _notify_problem(node, lambda text: not (variables and "${" in text))
            if problem is not None:
                raise SieveSyntaxError(node.line, node.column, problem)


def _notify_problem(node: Node, constant: Callable[[str], bool]) -> str | None:
    method = node.args[0]
    if constant(method):
        try:
            parse_mailto(method)
        except InvalidUri as exc:
            return f"notify: {exc}"
    importance = node.tags.get("importance")
    if importance is not None and constant(importance) and importance not in ("1", "2", "3"):
        return f'notify :importance must be "1", "2" or "3", not "{importance}"'
    sender = node.tags.get("from")
    if sender is not None and constant(sender) and valid_address(sender) is None:
        return f'notify :from "{sender}" is not a valid address'
    for option in node.tags.get("options", ()):
        if constant(option) and not _OPTION.match(option):
            return f'notify :options "{option}" is not of the form name=value'
    return None


def walk(commands: tuple[Any, ...]) -> Iterator[Node]:
    """Every command and test of a compiled script, depth first."""
    for command in commands:
        if isinstance(command, Conditional):
            for test, block in command.branches:
                yield from _tests(test)
                yield from walk(block)
            if command.otherwise is not None:
                yield from walk(command.otherwise)
            continue
        yield command
        for test in command.tests:
            yield from _tests(test)
        yield from walk(command.block)


def _tests(node: Node) -> Iterator[Node]:
    yield node
    for test in node.tests:
        yield from _tests(test)


# -- the run ------------------------------------------------------------------------------


class NotifyCommands:
    """The Interpreter's part of RFC 5435 (a mixin)."""

    env: Environment
    limits: Limits
    actions: list[Action]

    if TYPE_CHECKING:

        def expand(self, text: str) -> str: ...
        def expand_all(self, texts: tuple[str, ...]) -> list[str]: ...
        def add(self, node: Node, action: Action, *, cancels_keep: bool) -> None: ...

    def do_notify(self, node: Node) -> None:
        tags = node.tags
        method = self.expand(node.args[0])
        try:
            parse_mailto(method)
        except InvalidUri as exc:
            raise SieveRuntimeError(f"notify: {exc}", node.line, node.column) from None
        importance = self.expand(tags["importance"]) if "importance" in tags else "2"
        if importance not in ("1", "2", "3"):
            raise SieveRuntimeError(f'notify :importance "{importance}"', node.line, node.column)
        sender = self.expand(tags["from"]) if "from" in tags else None
        if sender is not None and valid_address(sender) is None:
            raise SieveRuntimeError(
                f'notify :from "{sender}" is not an address', node.line, node.column
            )
        message = self.expand(tags["message"]) if "message" in tags else None
        options = tuple(self.expand_all(tags.get("options", ())))
        self.add(
            node, Notify(method, sender, int(importance), options, message), cancels_keep=False
        )

    def test_valid_notify_method(self, node: Node) -> bool:
        for uri in self.expand_all(node.args[0]):
            try:
                parse_mailto(uri)
            except InvalidUri:
                return False
        return True

    def values_notify_method_capability(self, node: Node) -> list[str]:
        try:
            parse_mailto(self.expand(node.args[0]))
        except InvalidUri:
            return []
        capability = self.expand(node.args[1]).lower()
        return ["maybe"] if capability == "online" else []


# -- the notification ---------------------------------------------------------------------


def refusal(message: MessageView, envelope_from: str) -> str | None:
    """Why no notification may be sent for this message (RFC 5436 2.7), or None."""
    if not envelope_from:
        return "a bounce (the null sender)"
    auto = message.first("auto-submitted")
    if auto is not None and auto.split(";", 1)[0].strip().lower() != "no":
        return f"Auto-Submitted: {auto}"
    precedence = (message.first("precedence") or "").strip().lower()
    if precedence in ("bulk", "list", "junk"):
        return f"Precedence: {precedence}"
    for field in LIST_FIELDS:
        if message.has(field):
            return f"a mailing list message ({field})"
    return None


def build(
    notify: Notify,
    message: MessageView,
    *,
    owner: str,
    sender: str,
    recipients: tuple[str, ...],
    hostname: str,
) -> bytes:
    """The notification message, from ``sender`` (a header value) to ``recipients``."""
    uri = parse_mailto(notify.method)
    original = " ".join((message.first("subject") or "").split())
    if notify.message is not None:
        subject = notify.message
    elif uri.subject is not None:
        subject = uri.subject
    else:
        subject = f"Notification: {original or '(no subject)'}"
    out = EmailMessage(policy=email.policy.SMTP)
    out["From"] = sender
    wanted = {r.lower() for r in recipients}
    to = [a for a in uri.to if a.lower() in wanted]
    cc = [a for a in uri.cc if a.lower() in wanted and a not in to]
    if to:
        out["To"] = ", ".join(to)
    if cc:
        out["Cc"] = ", ".join(cc)
    out["Subject"] = " ".join(subject.split())[:MAX_SUBJECT]
    out["Date"] = date_now()
    out["Message-ID"] = f"<{secrets.token_hex(12)}@{hostname}>"
    out["Auto-Submitted"] = f'auto-notified; owner-email="{owner}"'
    priority = {1: ("1 (Highest)", "High"), 3: ("5 (Lowest)", "Low")}.get(notify.importance)
    if priority is not None:
        out["X-Priority"], out["Importance"] = priority
    for name, value in uri.headers:
        if name not in ("to", "cc", "subject", "mime-version", "content-type"):
            out[name] = " ".join(value.split())
    if uri.body is not None:
        text = uri.body
    else:
        text = (
            "You have new mail.\r\n\r\n"
            f"From: {message.first('from') or ''}\r\n"
            f"Subject: {original}\r\n"
        )
    out.set_content(text.replace("\r\n", "\n"), charset="utf-8")
    return out.as_bytes()
