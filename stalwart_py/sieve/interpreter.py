"""Run a compiled script against one message: RFC 5228 semantics and the extensions.

The interpreter is synchronous and does no I/O: what a script may need from outside (the
scripts it includes, the account's mailbox names) is fetched by the caller beforehand and
passed in. It returns an ``Outcome`` (the actions and the implicit keep), or raises
``SieveRuntimeError`` and the caller keeps the message (RFC 5228 section 2.10.6).

Notable rules:

* Tests: ``header`` matches the decoded values of every occurrence of each field;
  ``address`` the addresses of address fields (groups skipped), by address part;
  ``envelope`` the SMTP ``MAIL FROM`` (the null path is "") and the recipient this delivery
  is for; ``exists`` needs every field present; ``size`` compares the message size; ``allof``
  and ``anyof`` short-circuit. The default match type is ``:is``, the default comparator
  ``i;ascii-casemap``.
* ``:matches`` sets the match variables (RFC 5229 section 3.2), except in ``body``, whose
  wildcards leave them as they were (RFC 5173 section 6).
* ``:count`` (RFC 5231) counts header occurrences, addresses, envelope parts, flags, or the
  non-empty strings of ``string`` (RFC 5229 section 5).
* ``reject``/``ereject`` cannot be combined with ``keep``, ``fileinto``, ``redirect`` or
  ``vacation`` (RFC 5429 section 2.3, RFC 5230 section 4.7): such a run is an error.
* ``include`` (RFC 6609) runs a personal or global script (keyed apart: ``include_key``)
  with its own variables (globals shared);
  ``:once`` skips one already included, ``:optional`` one that does not exist; including a
  script that is already running is an error, and ``return`` ends the current script.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from stalwart_py.junk.headers import spamtest_value
from stalwart_py.mime import parse_address_list
from stalwart_py.sieve import ext_run
from stalwart_py.sieve.actions import (
    DAY,
    Action,
    Discard,
    FileInto,
    Keep,
    Limits,
    Outcome,
    Redirect,
    Reject,
    SieveRuntimeError,
    Vacation,
    split_flags,
    store_flags,
)
from stalwart_py.sieve.grammar import ADDRESS_HEADERS
from stalwart_py.sieve.match import MatchError, count_match, match
from stalwart_py.sieve.message import MessageView
from stalwart_py.sieve.mimeparts import MimeCommands
from stalwart_py.sieve.notify import NotifyCommands
from stalwart_py.sieve.regex_match import RegexError, regex_match
from stalwart_py.sieve.validate import Conditional, Node, Script, include_key, redirect_target
from stalwart_py.sieve.variables import Scope, Variables, apply_modifiers


@dataclass(frozen=True, slots=True)
class Environment:
    """What a script may learn about a delivery besides the message."""

    message: MessageView
    envelope_from: str  # "" for the null reverse path
    envelope_to: str  # the recipient this delivery is for
    mailboxes: frozenset[str] = frozenset()  # for mailboxexists
    subaddress_separator: str = "+"
    items: Mapping[str, str] = dataclasses.field(default_factory=dict)  # RFC 5183 environment
    now: float | None = None  # for currentdate; None: the clock
    duplicates: Mapping[str, bool] | None = None  # RFC 7352: keys looked up, seen before?

    def replace_message(self, message: MessageView) -> Environment:
        """The same delivery with an edited message (editheader)."""
        return dataclasses.replace(self, message=message)


class _Stop(Exception):
    pass


class _Return(Exception):
    pass


class Interpreter(MimeCommands, NotifyCommands):
    def __init__(
        self,
        script: Script,
        environment: Environment,
        *,
        limits: Limits | None = None,
        includes: Mapping[str, Script] | None = None,
        own_key: str | None = None,
    ) -> None:
        self.script = script
        self.env = environment
        self.limits = limits or Limits()
        self.includes = includes or {}
        self.actions: list[Action] = []
        self.implicit_keep = True
        self.internal_flags: list[str] = []
        self.steps = 0
        self.redirects = 0
        self.variables = Variables(self.limits, {})
        self.extensions = script.extensions
        self.include_stack: list[str] = []
        self.included: set[str] = set()
        self.include_count = 0
        self.edits = 0  # editheader (ext_run)
        self.edited = False
        self.duplicate_records: dict[str, tuple[float, bool]] = {}  # RFC 7352 (ext_run)
        self.own_key = own_key  # the running script's include key: including it is a loop

    def run(self) -> Outcome:
        with contextlib.suppress(_Stop, _Return):
            self.execute(self.script.commands)
        self._check_conflicts()
        return Outcome(
            tuple(self.actions),
            self.implicit_keep,
            store_flags(self.internal_flags),
            self.env.message.data if self.edited else None,
            tuple((key, *record) for key, record in self.duplicate_records.items()),
        )

    # -- commands ---------------------------------------------------------------------------

    def step(self, node: Node | Conditional, count: int = 1) -> None:
        self.steps += count
        if self.steps > self.limits.max_steps:
            raise SieveRuntimeError(
                f"the script took more than {self.limits.max_steps} steps", node.line, node.column
            )

    def execute(self, commands: tuple[Any, ...]) -> None:
        for command in commands:
            self.step(command)
            if isinstance(command, Conditional):
                for test, block in command.branches:
                    if self.test(test):
                        self.execute(block)
                        break
                else:
                    if command.otherwise is not None:
                        self.execute(command.otherwise)
                continue
            handler: Callable[[Node], None] = getattr(self, "do_" + command.name, None) or (
                functools.partial(ext_run.COMMANDS[command.name], self)
            )
            handler(command)

    def expand(self, text: str) -> str:
        return self.variables.expand(text) if "variables" in self.extensions else text

    def expand_all(self, texts: tuple[str, ...]) -> list[str]:
        return [self.expand(text) for text in texts]

    def add(self, node: Node, action: Action, *, cancels_keep: bool) -> None:
        if len(self.actions) >= self.limits.max_actions:
            raise SieveRuntimeError(
                f"more than {self.limits.max_actions} actions", node.line, node.column
            )
        self.actions.append(action)
        if cancels_keep:
            self.implicit_keep = False

    def flags_argument(self, node: Node) -> frozenset[str]:
        if "flags" in node.tags:
            return store_flags(split_flags(self.expand_all(node.tags["flags"])))
        return store_flags(self.internal_flags)

    def do_stop(self, node: Node) -> None:
        raise _Stop

    def do_keep(self, node: Node) -> None:
        self.add(node, Keep(self.flags_argument(node)), cancels_keep=True)

    def do_discard(self, node: Node) -> None:
        self.add(node, Discard(), cancels_keep=True)

    def do_redirect(self, node: Node) -> None:
        text = self.expand(node.args[0])
        address = redirect_target(text)
        if address is None:
            raise SieveRuntimeError(f'"{text}" is not a valid address', node.line, node.column)
        self.redirects += 1
        if self.redirects > self.limits.max_redirects:
            raise SieveRuntimeError(
                f"more than {self.limits.max_redirects} redirects", node.line, node.column
            )
        copy = "copy" in node.tags
        self.add(node, Redirect(address, copy), cancels_keep=not copy)

    def do_fileinto(self, node: Node) -> None:
        # A TAB (kept by the unfolding of a header a variable was set from, RFC 5322 2.2.3)
        # becomes a space, as Pigeonhole does, rather than failing the run.
        mailbox = self.expand(node.args[0]).replace("\t", " ")
        if not mailbox or any(ord(char) < 0x20 for char in mailbox):
            raise SieveRuntimeError(f'"{mailbox}" is not a mailbox name', node.line, node.column)
        copy = "copy" in node.tags
        action = FileInto(mailbox, self.flags_argument(node), "create" in node.tags, copy)
        self.add(node, action, cancels_keep=not copy)

    def do_reject(self, node: Node) -> None:
        self.add(node, Reject(self.expand(node.args[0]), False), cancels_keep=True)

    def do_ereject(self, node: Node) -> None:
        self.add(node, Reject(self.expand(node.args[0]), True), cancels_keep=True)

    def do_vacation(self, node: Node) -> None:
        if any(isinstance(action, Vacation) for action in self.actions):
            raise SieveRuntimeError("more than one vacation action", node.line, node.column)
        tags = node.tags
        reason = self.expand(node.args[0])
        subject = self.expand(tags["subject"]) if "subject" in tags else None
        sender = self.expand(tags["from"]) if "from" in tags else None
        # RFC 5230 4.1 / RFC 6131 2: the site bounds the period (sieve.vacation.min-period
        # and max-period; Pigeonhole's sieve_vacation_min/max_period).
        asked = float(tags["seconds"]) if "seconds" in tags else float(tags.get("days", 7)) * DAY
        limits = self.limits
        period = min(max(asked, limits.vacation_min_period), limits.vacation_max_period)
        handle = self.expand(tags["handle"]) if "handle" in tags else _default_handle(
            subject, sender, "mime" in tags, reason
        )  # fmt: skip
        addresses = tuple(self.expand_all(tags.get("addresses", ())))
        vacation = Vacation(reason, subject, sender, addresses, "mime" in tags, handle, period)
        self.add(node, vacation, cancels_keep=False)

    def _flag_target(self, node: Node) -> tuple[str | None, list[str]]:
        flags = split_flags(self.expand_all(node.args[-1]))
        if len(node.args) == 2:
            return self.expand(node.args[0]), flags
        return None, flags

    def _current_flags(self, variable: str | None) -> list[str]:
        if variable is None:
            return list(self.internal_flags)
        return split_flags([self.variables.get(variable)])

    def _store_flags(self, variable: str | None, flags: list[str]) -> None:
        if variable is None:
            self.internal_flags = flags
        else:
            self.variables.set(variable, " ".join(flags))

    def do_setflag(self, node: Node) -> None:
        variable, flags = self._flag_target(node)
        self._store_flags(variable, flags)

    def do_addflag(self, node: Node) -> None:
        variable, flags = self._flag_target(node)
        self._store_flags(variable, split_flags(self._current_flags(variable) + flags))

    def do_removeflag(self, node: Node) -> None:
        variable, flags = self._flag_target(node)
        remove = {flag.lower() for flag in flags}
        kept = [flag for flag in self._current_flags(variable) if flag.lower() not in remove]
        self._store_flags(variable, kept)

    def do_set(self, node: Node) -> None:
        name, value = node.args
        self.variables.set(name, apply_modifiers(self.expand(value), node.tags))

    def do_global(self, node: Node) -> None:
        self.variables.declare_global(node.args[0])

    def do_return(self, node: Node) -> None:
        raise _Return

    def do_include(self, node: Node) -> None:
        name = include_key(node.args[0], "global" in node.tags)
        script = self.includes.get(name)
        if script is None:
            if "optional" in node.tags:
                return
            where = "global" if "global" in node.tags else "personal"
            raise SieveRuntimeError(f'no {where} script "{node.args[0]}"', node.line, node.column)
        if "once" in node.tags and name in self.included:
            return
        if name in self.include_stack or name == self.own_key:  # RFC 6609 3.2: no recursion
            raise SieveRuntimeError(f'"{name}" includes itself', node.line, node.column)
        self.include_count += 1
        if (
            len(self.include_stack) >= self.limits.max_include_depth
            or self.include_count > self.limits.max_includes
        ):
            raise SieveRuntimeError("too many included scripts", node.line, node.column)
        self.included.add(name)
        saved = (self.variables.scope, self.extensions)
        self.variables.scope, self.extensions = Scope(), script.extensions
        self.include_stack.append(name)
        try:
            self.execute(script.commands)
        except _Return:
            pass
        finally:
            self.include_stack.pop()
            self.variables.scope, self.extensions = saved

    # -- tests ------------------------------------------------------------------------------

    def test(self, node: Node) -> bool:
        self.step(node)
        name = node.name
        if name == "true":
            return True
        if name == "false":
            return False
        if name == "not":
            return not self.test(node.tests[0])
        if name == "allof":
            return all(self.test(test) for test in node.tests)
        if name == "anyof":
            return any(self.test(test) for test in node.tests)
        if name == "exists":
            if "mime" in node.tags:  # RFC 5703 4.1: the current part's header
                return self.parts_have(node, self.expand_all(node.args[0]))
            return all(self.env.message.has(header) for header in self.expand_all(node.args[0]))
        if name == "size":
            limit = node.args[0]
            size = self.env.message.size
            return size > limit if "over" in node.tags else size < limit
        if name == "valid_notify_method":  # RFC 5435 section 5
            return self.test_valid_notify_method(node)
        if name == "mailboxexists":
            return all(
                _mailbox_exists(self.env.mailboxes, box) for box in self.expand_all(node.args[0])
            )
        special = ext_run.TESTS.get(name)
        if special is not None:
            return special(self, node)
        values = getattr(self, "values_" + name)(node)
        if name == "hasflag":
            return self.compare(node, values, self.keys_hasflag(node))
        keys = node.args[-1]  # a string list, or one string (spamtest's value, RFC 5235)
        return self.compare(
            node, values, self.expand_all((keys,) if isinstance(keys, str) else keys)
        )

    def compare(self, node: Node, values: list[str], keys: list[str]) -> bool:
        tags = node.tags
        comparator = str(tags.get("comparator", "i;ascii-casemap")).lower()
        self.step(node, len(values) * len(keys))
        try:
            if "count" in tags:
                return count_match(len(values), keys, str(tags["count"]), comparator)
            match_type = next(
                (kind for kind in ("is", "contains", "matches", "value") if kind in tags), "is"
            )
            operator = str(tags["value"]) if "value" in tags else None
            if "regex" in tags:
                result, captured = regex_match(values, keys, comparator)
            else:
                result, captured = match(values, keys, match_type, comparator, operator)
        except (MatchError, RegexError) as exc:
            raise SieveRuntimeError(str(exc), node.line, node.column) from None
        # RFC 5173 section 6: a body test's wildcards do not set the match variables.
        if captured is not None and "variables" in self.extensions and node.name != "body":
            self.variables.matched = [text[: self.limits.max_variable_size] for text in captured]
        return result

    def values_header(self, node: Node) -> list[str]:
        message = self.env.message
        if "mime" in node.tags:  # RFC 5703 4.1: the current part's header
            headers = self.expand_all(node.args[0])
            return [
                value
                for header in headers
                for value in ext_run.indexed(node.tags, self.part_header_values(node, header))
            ]
        return [
            value
            for header in self.expand_all(node.args[0])
            for value in ext_run.indexed(node.tags, message.values(header))
        ]

    def values_address(self, node: Node) -> list[str]:
        out: list[str] = []
        for header in self.expand_all(node.args[0]):
            if header.lower() not in ADDRESS_HEADERS:
                continue  # a name built from variables: only address fields count (5.1)
            mime = "mime" in node.tags  # RFC 5703 4.1: the current part's header
            raw_values = (
                self.part_raw_values if mime else lambda _, name: self.env.message.raw_values(name)
            )
            for raw in ext_run.indexed(node.tags, raw_values(node, header)):
                for address in parse_address_list(raw) or ():
                    if address.host is None or address.mailbox is None:
                        continue  # a group marker
                    if "count" in node.tags:
                        # RFC 5231 4.1: :count counts the addresses, whatever the part.
                        out.append(f"{address.mailbox}@{address.host}")
                        continue
                    if not address.host:
                        # Not a valid address ("From: Whomever"): RFC 5228 2.7.4, only
                        # :all sees it; its local part or domain matches nothing.
                        if _address_part_tag(node.tags) == "all":
                            out.append(address.mailbox)
                        continue
                    part = self.address_part(node, f"{address.mailbox}@{address.host}")
                    if part is not None:
                        out.append(part)
        return out

    def values_envelope(self, node: Node) -> list[str]:
        out: list[str] = []
        for name in self.expand_all(node.args[0]):
            lowered = name.lower()
            if lowered == "from":
                address = self.env.envelope_from
            elif lowered == "to":
                address = self.env.envelope_to
            else:
                continue
            if "count" in node.tags:  # RFC 5231 4.1: the addresses, whatever the part
                out.append(address)
                continue
            part = self.address_part(node, address)
            if part is not None:
                out.append(part)
        return out

    def address_part(self, node: Node, address: str) -> str | None:
        """RFC 5228 section 2.7.4 and RFC 5233: the part of ``address`` to match."""
        tags = node.tags
        if _address_part_tag(tags) == "all":
            return address
        local, at, domain = address.rpartition("@")
        if not at:
            local, domain = address, ""
        if "domain" in tags:
            return domain
        if "localpart" in tags:
            return local
        separator = self.env.subaddress_separator
        user, sep, detail = local.partition(separator) if separator else (local, "", "")
        if "user" in tags:
            return user
        return detail if sep else None  # no detail: :detail matches nothing (RFC 5233 4)

    def values_body(self, node: Node) -> list[str]:
        message = self.env.message
        if "raw" in node.tags:
            return [message.raw_body()]
        if "content" in node.tags:
            return message.bodies(tuple(self.expand_all(node.tags["content"])))
        return message.bodies(None)

    def values_string(self, node: Node) -> list[str]:
        values = self.expand_all(node.args[0])
        if "count" in node.tags:
            return [value for value in values if value]
        return values

    def keys_hasflag(self, node: Node) -> list[str]:
        """RFC 5232 section 4: each key is a space-separated list of flags, compared one
        by one (after setflag "A B", hasflag :is "b A" is true); :count keys are numbers."""
        keys = self.expand_all(node.args[-1])
        return keys if "count" in node.tags else [f for k in keys for f in k.split()]

    def values_spamtest(self, node: Node) -> list[str]:
        """RFC 5235: the junk filter's score as our X-Spam-Status field carries it."""
        status = self.env.message.first("x-spam-status")
        return [spamtest_value(status, percent="percent" in node.tags)]

    def values_virustest(self, node: Node) -> list[str]:
        return ["0"]  # RFC 5235 3.4: no virus scanner here, so never tested

    def values_hasflag(self, node: Node) -> list[str]:
        if len(node.args) == 2:
            names = self.expand_all(node.args[0])
            return split_flags([self.variables.get(name) for name in names])
        return list(self.internal_flags)

    # -- the end --------------------------------------------------------------------------

    def _check_conflicts(self) -> None:
        rejects = [action for action in self.actions if isinstance(action, Reject)]
        if not rejects:
            return
        if len(rejects) > 1:
            raise SieveRuntimeError("more than one reject")
        others = {
            type(action).__name__.lower()
            for action in self.actions
            if isinstance(action, Keep | FileInto | Redirect | Vacation)
        }
        if others:
            raise SieveRuntimeError(f"reject cannot be combined with {', '.join(sorted(others))}")


def _address_part_tag(tags: Mapping[str, Any]) -> str:
    """The address part a test asks for (":all" when none is given)."""
    return next((t for t in ("localpart", "domain", "user", "detail") if t in tags), "all")


def _mailbox_exists(mailboxes: frozenset[str], name: str) -> bool:
    return name in mailboxes or (name.upper() == "INBOX" and "INBOX" in mailboxes)


def _default_handle(subject: str | None, sender: str | None, mime: bool, reason: str) -> str:
    """RFC 5230 section 4.2: without :handle, the arguments that shape the reply are it."""
    text = "\x00".join((subject or "", sender or "", "mime" if mime else "", reason))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
