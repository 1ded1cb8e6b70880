"""Upload-time checks of date/index (RFC 5260), editheader (RFC 5293), ihave (RFC 5463),
regex (draft-ietf-sieve-regex), environment (RFC 5183) and duplicate (RFC 7352).

``validate._Validator`` calls ``check`` for every command and test once the generic
argument checks passed; what is constant is checked here, what holds variables when the
script runs. ``guarded_by_missing`` gives ihave its compile-time meaning (RFC 5463 section
4): the block of an ``if``/``elsif`` whose test asks for an extension we do not have is
never run, so it is not checked either and may use commands we do not know. An ``ihave``
of extensions we do have makes them usable in the whole script, as Pigeonhole does (it
loads them when it meets the test).

Stricter than Pigeonhole, by choice: a constant ``:zone`` that is not "+hhmm"/"-hhmm" is
refused at upload (Pigeonhole warns and uses local time, which RFC 5260 does not ask for: the
script's author surely meant a zone), while one built from variables is local time at run
time, as there.
"""

from __future__ import annotations

from typing import Any

from stalwart_py.sieve import grammar
from stalwart_py.sieve.dates import DATE_PARTS, valid_zone
from stalwart_py.sieve.editheader import FIELD_NAME
from stalwart_py.sieve.lexer import TAG
from stalwart_py.sieve.parser import Command, Test
from stalwart_py.sieve.regex_match import RegexError, compile_key


def supported(capability: str) -> bool:
    name = capability.lower()
    return name in grammar.EXTENSIONS or name in grammar.IMPLICIT_CAPABILITIES


def _constant_strings(test: Test) -> tuple[str, ...]:
    out: tuple[str, ...] = ()
    for argument in test.arguments:
        if argument.kind == "string" and isinstance(argument.value, tuple):
            out += argument.value
    return out


def guarded_by_missing(command: Command, extensions: set[str]) -> bool:
    """Is the block of this ``if``/``elsif`` guarded by an ``ihave`` of an extension this
    server does not have (not under a ``not``)?"""
    if "ihave" not in extensions:
        return False
    pending = list(command.tests)
    while pending:
        test = pending.pop()
        if test.name == "not":
            continue
        if test.name == "ihave":
            names = _constant_strings(test)
            if any("${" not in name and not supported(name) for name in names):
                return True
        pending.extend(test.tests)
    return False


def _position(item: Command | Test, tag: str | None = None, positional: int | None = None) -> Any:
    """Where an argument is, for the error: the value after ``:tag``, or a positional one."""
    arguments = item.arguments
    if tag is not None:
        for number, argument in enumerate(arguments):
            if argument.kind == TAG and argument.value == tag:
                return arguments[number + 1] if number + 1 < len(arguments) else argument
        return item
    if positional is not None:
        plain = [argument for argument in arguments if argument.kind != TAG]
        # tag values are not tags either: count from the end, where positionals are
        return arguments[len(arguments) - len(plain) + positional] if plain else item
    return item


def _constant(value: str, validator: Any) -> bool:
    return not ("variables" in validator.extensions and "${" in value)


def check(validator: Any, node: Any, item: Command | Test) -> None:
    """The checks of this module's extensions for one command or test."""
    name = node.name
    tags = node.tags
    if "last" in tags and "index" not in tags and name in ("header", "address", "date",
                                                           "deleteheader"):  # fmt: skip
        validator.error(_position(item, "last"), '":last" needs ":index" (RFC 5260 section 6)')
    if "index" in tags and tags["index"] < 1:
        validator.error(_position(item, "index"), '":index" counts from 1')
    if "regex" in tags:
        _check_regex(validator, node, item)
    if name == "ihave":
        for capability in node.args[0]:
            if "${" not in capability and supported(capability):
                validator.extensions.add(capability.lower())
    elif name in ("date", "currentdate"):
        part = node.args[-2]
        if _constant(part, validator) and part.lower() not in DATE_PARTS:
            validator.error(
                item.arguments[-2],
                f'unknown date part "{part}" ({", ".join(sorted(DATE_PARTS))})',
            )
        zone = tags.get("zone")
        if zone is not None and _constant(zone, validator) and not valid_zone(zone):
            validator.error(_position(item, "zone"), f'"{zone}" is not a time zone (+hhmm)')
        if name == "date":
            header = node.args[0]
            if _constant(header, validator) and not FIELD_NAME.match(header):
                validator.error(item.arguments[-3], f'"{header}" is not a header field name')
    elif name in ("addheader", "deleteheader"):
        field = node.args[0]
        where = item.arguments[-2] if len(node.args) == 2 else item.arguments[-1]
        if _constant(field, validator) and not FIELD_NAME.match(field):
            validator.error(where, f'"{field}" is not a header field name')
        if (
            name == "deleteheader"
            and len(node.args) == 1
            and any(
                kind in tags for kind in ("is", "contains", "matches", "value", "regex", "count")
            )
        ):
            validator.error(item, "a match type in deleteheader needs value patterns")
        if "count" in tags and name == "deleteheader":
            validator.error(_position(item, "count"), 'deleteheader cannot use ":count"')


def _check_regex(validator: Any, node: Any, item: Command | Test) -> None:
    comparator = str(node.tags.get("comparator", "i;ascii-casemap")).lower()
    if comparator not in ("i;octet", "i;ascii-casemap"):
        validator.error(item, f'the comparator {comparator} cannot do ":regex"')
    keys = node.args[-1]
    for key in keys if isinstance(keys, tuple) else (keys,):
        if _constant(key, validator):
            try:
                compile_key(key, comparator == "i;ascii-casemap")
            except RegexError as exc:
                validator.error(item.arguments[-1], str(exc))
