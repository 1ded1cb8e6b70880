"""Check a parsed script against the command table and compile it for the interpreter.

The checks, each an error with the line and column of what is wrong:

* ``require`` comes before every other command, at the top level, and names only supported
  capabilities (RFC 5228 section 3.2); a command, test, tag or comparator of an extension
  needs that extension required (section 2.10.5: an unrequired extension is an error).
* Arguments follow the command's ``Spec``: known tags, each at most once and one per group of
  mutually exclusive tags, followed by the value they take, then the positional arguments
  in number and kind; ``if``/``elsif`` take one test and a block, ``else`` a block only,
  ``elsif`` and ``else`` follow an ``if`` or an ``elsif``.
* Values that are constant are checked now rather than at delivery: comparator names, the
  relational operators, envelope part names, header field names, redirect addresses,
  variable names, include script names (which must be constant, so the scripts can be
  fetched before running), and ``i;ascii-numeric`` only with ``:is``, ``:value``, ``:count``.
* With "encoded-character" (RFC 5228 section 2.4.2.4), ``${hex:...}`` and ``${unicode:...}``
  are decoded in every string here; ``${name}`` variables (RFC 5229) are expanded when the
  script runs.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from stalwart_py.mime import parse_address_list
from stalwart_py.sieve import ext_checks, grammar
from stalwart_py.sieve.grammar import NUMBER, STRING, STRINGS, Spec
from stalwart_py.sieve.lexer import TAG, SieveSyntaxError
from stalwart_py.sieve.parser import Argument, Command, Test, parse_tree

_ENCODED = re.compile(r"\$\{(hex|unicode):([ \t\r\n0-9A-Fa-f]*)\}", re.IGNORECASE)
_HEX_PAIRS = re.compile(r"[ \t\r\n]*[0-9A-Fa-f]{1,2}(?:[ \t\r\n]+[0-9A-Fa-f]{1,2})*[ \t\r\n]*\Z")
_UNICODE = re.compile(r"[ \t\r\n]*[0-9A-Fa-f]+(?:[ \t\r\n]+[0-9A-Fa-f]+)*[ \t\r\n]*\Z")
_FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+\Z")
_VARIABLE_NAME = re.compile(r"(?:global\.)?[A-Za-z_][A-Za-z0-9_]*\Z", re.IGNORECASE)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
ADDRESS = re.compile(r"[^\s@<>()\[\],;:\"\\]+@[^\s@<>()\[\],;:\"\\]+\Z")
SCRIPT_NAME = re.compile(r"[^\x00-\x1f\x7f-\x9f\u2028\u2029/]{1,128}\Z")
# RFC 6609: global scripts are a namespace of their own; "/" is never in a script name, so
# "global/<name>" can name them beside the personal ones (include keys, ManageSieve names).
GLOBAL_PREFIX = "global/"


def include_key(name: str, is_global: bool) -> str:
    """The key of an included script: its name, or ``global/`` and its name."""
    return GLOBAL_PREFIX + name if is_global else name


def redirect_target(text: str) -> str | None:
    """The address a ``redirect`` sends to, or None if ``text`` is not one: an addr-spec,
    bare or in angle brackets, or the ``phrase <addr-spec>`` form (RFC 5228 2.4.2.3)."""
    bare = text.strip().strip("<>").strip()
    if ADDRESS.match(bare):
        return bare
    parsed = [a for a in parse_address_list(text) or () if a.mailbox is not None]
    if len(parsed) == 1 and parsed[0].host:
        address = f"{parsed[0].mailbox}@{parsed[0].host}"
        return address if ADDRESS.match(address) else None
    return None


@dataclass(frozen=True, slots=True)
class Node:
    """A command or a test, checked: tag name -> value (True for a flag tag), positional
    values (str, tuple of str, or int), tests and block."""

    name: str
    line: int
    column: int
    tags: dict[str, Any] = field(default_factory=dict)
    args: tuple[Any, ...] = ()
    tests: tuple[Node, ...] = ()
    block: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class Conditional:
    """``if`` with its ``elsif`` branches and ``else``."""

    branches: tuple[tuple[Node, tuple[Any, ...]], ...]
    otherwise: tuple[Any, ...] | None
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Script:
    commands: tuple[Any, ...]
    extensions: frozenset[str]
    includes: frozenset[str]  # the scripts it may include, by include_key
    uses_mailboxes: bool  # mailboxexists is used: the interpreter needs the mailbox list
    size: int


def parse_script(text: str, *, max_size: int = 1 << 20) -> Script:
    """Parse and check a script; raises SieveSyntaxError with the line and column."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_size:
        raise SieveSyntaxError(1, 1, f"the script is {size} bytes long; the limit is {max_size}")
    tree = parse_tree(text)
    return _Validator(text).script(tree, size)


class _Validator:
    def __init__(self, text: str) -> None:
        self.extensions: set[str] = set()
        self.includes: set[str] = set()
        self.uses_mailboxes = False

    def error(self, where: Argument | Command | Test, message: str) -> None:
        raise SieveSyntaxError(where.line, where.column, message)

    def script(self, tree: tuple[Command, ...], size: int) -> Script:
        index = 0
        while index < len(tree) and tree[index].name == "require":
            self.require(tree[index])
            index += 1
        commands = self.block(tree[index:], top_level=True)
        from stalwart_py.sieve import mimeparts, notify  # they import this module

        mimeparts.check(commands, frozenset(self.extensions))
        notify.check(commands, frozenset(self.extensions))
        return Script(
            commands,
            frozenset(self.extensions),
            frozenset(self.includes),
            self.uses_mailboxes,
            size,
        )

    def require(self, command: Command) -> None:
        node = self.node(command, grammar.COMMANDS["require"], "command")
        for name in node.args[0]:
            capability = name.lower()
            if (
                capability not in grammar.EXTENSIONS
                and capability not in grammar.IMPLICIT_CAPABILITIES
            ):
                argument = command.arguments[0]
                self.error(argument, f'unsupported extension "{name}" in require')
            self.extensions.add(capability)
            if capability == "vacation-seconds":
                self.extensions.add("vacation")  # RFC 6131 section 2: it implies vacation
            elif capability == "spamtestplus":
                self.extensions.add("spamtest")  # RFC 5235 3.3: spamtest with :percent

    def needs(self, extension: str | None, where: Any, what: str) -> None:
        if extension is not None and extension not in self.extensions:
            self.error(where, f'{what} needs require "{extension}" at the start of the script')

    # -- commands ---------------------------------------------------------------------------

    def block(self, commands: tuple[Command, ...], *, top_level: bool = False) -> tuple[Any, ...]:
        out: list[Any] = []
        index = 0
        while index < len(commands):
            command = commands[index]
            name = command.name
            if name == "require":
                self.error(command, '"require" must come before every other command')
            if name in ("elsif", "else"):
                self.error(command, f'"{name}" must follow an "if" or "elsif" block')
            if name == "if":
                branches = [self.branch(command)]
                index += 1
                otherwise = None
                while index < len(commands) and commands[index].name in ("elsif", "else"):
                    follower = commands[index]
                    index += 1
                    if follower.name == "elsif":
                        branches.append(self.branch(follower))
                        continue
                    node = self.node(follower, grammar.COMMANDS["else"], "command")
                    otherwise = node.block
                    break
                out.append(Conditional(tuple(branches), otherwise, command.line, command.column))
                continue
            spec = grammar.COMMANDS.get(name)
            if spec is None:
                if name in grammar.TESTS:
                    self.error(command, f'"{name}" is a test, not a command: use it in an "if"')
                self.error(command, f'unknown command "{name}"')
            out.append(self.command(command, spec))
            index += 1
        return tuple(out)

    def branch(self, command: Command) -> tuple[Node, tuple[Any, ...]]:
        if ext_checks.guarded_by_missing(command, self.extensions):  # RFC 5463 ihave
            command = dataclasses.replace(command, block=())
        node = self.node(command, grammar.COMMANDS[command.name], "command")
        return node.tests[0], node.block

    def command(self, command: Command, spec: Spec) -> Node:
        self.needs(spec.extension, command, f'"{command.name}"')
        node = self.node(command, spec, "command")
        name = node.name
        if name == "redirect" and not _has_variables(node.args[0], self.extensions):
            if redirect_target(node.args[0]) is None:
                self.error(command.arguments[-1], f'"{node.args[0]}" is not a valid address')
        elif name in ("setflag", "addflag", "removeflag") and len(node.args) == 2:
            self.variable_name(node.args[0], command.arguments[0])
        elif name == "set":
            self.variable_name(node.args[0], command.arguments[-2])
        elif name == "global":
            self.needs("variables", command, '"global"')
            for variable in node.args[0]:
                if not _IDENTIFIER.match(variable):
                    self.error(command.arguments[0], f'"{variable}" is not a variable name')
        elif name == "include":
            script_name = node.args[0]
            if "${" in script_name and "variables" in self.extensions:
                self.error(command.arguments[-1], "the script name of include must be constant")
            if not SCRIPT_NAME.match(script_name):
                self.error(command.arguments[-1], f'"{script_name}" is not a valid script name')
            self.includes.add(include_key(script_name, "global" in node.tags))
        elif name == "vacation":
            self.vacation(node, command)
        ext_checks.check(self, node, command)
        return node

    def vacation(self, node: Node, command: Command) -> None:
        sender = node.tags.get("from")
        if sender is not None and not _has_variables(sender, self.extensions):
            addresses = [a for a in parse_address_list(sender) or () if a.host]
            if not addresses:
                self.error(_tag_argument(command, "from"), f'"{sender}" is not a valid address')

    def variable_name(self, name: str, where: Argument) -> None:
        if not _VARIABLE_NAME.match(name) or (
            name.lower().startswith("global.") and "include" not in self.extensions
        ):
            self.error(where, f'"{name}" is not a variable name')

    # -- tests ------------------------------------------------------------------------------

    def test(self, test: Test) -> Node:
        spec = grammar.TESTS.get(test.name)
        if spec is None:
            if test.name in grammar.COMMANDS:
                self.error(test, f'"{test.name}" is a command, not a test')
            self.error(test, f'unknown test "{test.name}"')
        self.needs(spec.extension, test, f'the test "{test.name}"')
        node = self.node(test, spec, "test")
        self.match_arguments(node, test)
        if node.name == "mailboxexists":
            self.uses_mailboxes = True
        elif node.name in ("header", "exists"):
            for header in node.args[0]:
                if not _has_variables(header, self.extensions) and not _FIELD_NAME.match(header):
                    self.error(test.arguments[-2 if node.name == "header" else -1],
                               f'"{header}" is not a header field name')  # fmt: skip
        elif node.name == "address":
            for header in node.args[0]:
                if not _has_variables(header, self.extensions) and (
                    header.lower() not in grammar.ADDRESS_HEADERS
                ):
                    self.error(
                        test.arguments[-2], f'"{header}" is not a header field with addresses'
                    )
        elif node.name == "envelope":
            for part in node.args[0]:
                if not _has_variables(part, self.extensions) and part.lower() not in ("from", "to"):
                    self.error(test.arguments[-2], f'unknown envelope part "{part}" (from, to)')
        ext_checks.check(self, node, test)
        return node

    def match_arguments(self, node: Node, test: Test) -> None:
        comparator = node.tags.get("comparator")
        if comparator is not None:
            if comparator.lower() not in grammar.COMPARATORS:
                self.error(_tag_argument(test, "comparator"), f'unknown comparator "{comparator}"')
            extension = grammar.COMPARATORS[comparator.lower()]
            self.needs(extension, _tag_argument(test, "comparator"), f'comparator "{comparator}"')
            if comparator.lower() == "i;ascii-numeric" and (
                "contains" in node.tags or "matches" in node.tags
            ):
                self.error(test, "the comparator i;ascii-numeric cannot do :contains or :matches")
        for relational in ("value", "count"):
            operator = node.tags.get(relational)
            if operator is not None and operator.lower() not in grammar.RELATIONS:
                self.error(
                    _tag_argument(test, relational),
                    f'unknown relational operator "{operator}" (gt, ge, lt, le, eq, ne)',
                )

    # -- arguments --------------------------------------------------------------------------

    def node(self, item: Command | Test, spec: Spec, kind: str) -> Node:
        name = item.name
        tags: dict[str, Any] = {}
        groups: dict[str, str] = {}
        arguments = list(item.arguments)
        index = 0
        while index < len(arguments) and arguments[index].kind == TAG:
            argument = arguments[index]
            tag = str(argument.value)
            tag_spec = spec.tags.get(tag)
            if tag_spec is None:
                self.error(argument, f'unexpected tag ":{tag}" for the {kind} "{name}"')
            self.needs(tag_spec.extension, argument, f'":{tag}"')
            if tag in tags:
                self.error(argument, f'":{tag}" is given twice')
            if tag_spec.group is not None:
                other = groups.get(tag_spec.group)
                if other is not None:
                    self.error(argument, f'":{tag}" and ":{other}" cannot be used together')
                groups[tag_spec.group] = tag
            index += 1
            if tag_spec.value is None:
                tags[tag] = True
                continue
            if index >= len(arguments):
                self.error(argument, f'expected a {tag_spec.value} after ":{tag}"')
            tags[tag] = self.value(arguments[index], tag_spec.value, f'":{tag}"')
            index += 1
        positional = arguments[index:]
        if positional and not spec.positional and spec.test != "none":
            self.error(
                positional[0], f'expected a test after "{name}", found {positional[0].describe()}'
            )
        for argument in positional:
            if argument.kind == TAG:
                self.error(
                    argument, f'the tag ":{argument.value}" must come before the other arguments'
                )
        wanted = list(spec.positional)
        if spec.optional_last and len(positional) == len(wanted) - 1:
            wanted = wanted[:-1]
        elif spec.optional_first is not None and len(positional) == len(wanted) - 1:
            wanted = wanted[1:]
        elif spec.optional_first is not None and len(positional) == len(wanted):
            self.needs(spec.optional_first, positional[0], f'the {wanted[0][1]} of "{name}"')
        if len(positional) != len(wanted):
            described = ", ".join(f"{what} ({kind_})" for kind_, what in wanted) or "nothing"
            where = positional[len(wanted)] if len(positional) > len(wanted) else item
            self.error(
                where,
                f'"{name}" takes {described}; found {len(positional)} argument'
                + ("" if len(positional) == 1 else "s"),
            )
        if spec.required_group is not None and spec.required_group not in groups:
            options = " or ".join(
                f":{t}" for t, s in spec.tags.items() if s.group == spec.required_group
            )
            self.error(item, f'"{name}" needs {options}')
        values = tuple(
            self.value(argument, kind_, f'the {what} of "{name}"')
            for argument, (kind_, what) in zip(positional, wanted, strict=True)
        )
        tests = self.tests(item, spec, kind)
        block: tuple[Any, ...] = ()
        if isinstance(item, Command):
            if spec.block and item.block is None:
                self.error(item, f'"{name}" needs a block {{ ... }}')
            if not spec.block and item.block is not None:
                self.error(item, f'"{name}" takes no block; end it with ";"')
            if item.block is not None:
                block = self.block(item.block)
        return Node(name, item.line, item.column, tags, values, tests, block)

    def tests(self, item: Command | Test, spec: Spec, kind: str) -> tuple[Node, ...]:
        name = item.name
        if spec.test == "none":
            if item.tests and kind == "test":
                found = item.tests[0]
                self.error(found, f'unexpected "{found.name}" after the test "{name}"')
            if item.tests:
                self.error(item.tests[0], f'the {kind} "{name}" takes no test')
            return ()
        if spec.test == "one" and (len(item.tests) != 1 or item.test_list):
            self.error(item, f'"{name}" takes exactly one test (not a test list)')
        if spec.test == "list" and not item.test_list:
            self.error(item, f'"{name}" takes a test list: {name} (test, test, ...)')
        return tuple(self.test(test) for test in item.tests)

    def value(self, argument: Argument, kind: str, what: str) -> Any:
        if kind == NUMBER:
            if argument.kind != "number":
                self.error(argument, f"expected a number for {what}, found {argument.describe()}")
            return argument.value
        if argument.kind != "string" or (kind == STRING and argument.bracketed):
            wanted = "a string" if kind == STRING else "a string or a string list"
            self.error(argument, f"expected {wanted} for {what}, found {argument.describe()}")
        assert isinstance(argument.value, tuple)
        strings = tuple(self.decode(text, argument) for text in argument.value)
        return strings[0] if kind == STRING else strings

    def decode(self, text: str, argument: Argument) -> str:
        if "encoded-character" not in self.extensions or "${" not in text:
            return text
        return _ENCODED.sub(lambda match: _decode_one(match, argument), text)


def _decode_one(match: re.Match[str], argument: Argument) -> str:
    kind, body = match.group(1).lower(), match.group(2)
    if kind == "hex":
        if not _HEX_PAIRS.match(body):
            return match.group(0)
        octets = bytes(int(pair, 16) for pair in body.split())
        try:
            return octets.decode("utf-8")
        except UnicodeDecodeError:
            raise SieveSyntaxError(
                argument.line, argument.column, f"{match.group(0)} is not valid UTF-8"
            ) from None
    if not _UNICODE.match(body):
        return match.group(0)
    out = []
    for digits in body.split():
        point = int(digits, 16)
        if point > 0x10FFFF or 0xD800 <= point <= 0xDFFF:
            raise SieveSyntaxError(
                argument.line, argument.column, f"{match.group(0)} is not a Unicode character"
            )
        out.append(chr(point))
    return "".join(out)


def _has_variables(value: Any, extensions: set[str] | frozenset[str]) -> bool:
    return "variables" in extensions and "${" in str(value)


def _tag_argument(item: Command | Test, tag: str) -> Argument | Command | Test:
    """The argument that follows ``:tag`` (its value), for error positions."""
    arguments = item.arguments
    for index, argument in enumerate(arguments):
        if argument.kind == TAG and argument.value == tag and index + 1 < len(arguments):
            return arguments[index + 1]
    return item


__all__ = [
    "NUMBER",
    "STRING",
    "STRINGS",
    "Conditional",
    "Node",
    "Script",
    "parse_script",
    "redirect_target",
]
