"""MIME part tests, iteration and text extraction: Sieve "mime", "foreverypart" and
"extracttext" (RFC 5703 sections 3, 4 and 7).

``foreverypart [":name" string] { ... }`` runs its block once for each MIME part, depth
first in the order the parts appear: at the top level the message itself first (its
header is the message header), then every part below it; a nested ``foreverypart`` walks
the parts below the part its enclosing loop is at (section 3). The body of a
``message/rfc822`` part is a part too (its header is the enclosed message's header), so
forwarded messages are walked like Pigeonhole walks them. ``break`` leaves the innermost
loop, ``break :name "n"`` the enclosing loop named "n" (and every loop inside it).

``header``, ``address`` and ``exists`` with ``:mime`` read the header of the current part
(the message's outside a loop); ``:anychild`` widens that to the current part and every
part below it, and the test is true when any of them matches (section 4.1). For
``header :mime``, ``:type``, ``:subtype`` and ``:contenttype`` take the "type/subtype" token
before the first ";" (for Content-Disposition that is "inline" or "attachment", with an
empty subtype, as Pigeonhole does), and ``:param [names]`` the values of those parameters,
RFC 2231 continuations and charsets decoded (section 4.2).

``extracttext [MODIFIER] [":first" n] "var"`` sets the variable to the text of the
current part: a text/* part with its transfer encoding and charset decoded, HTML turned
into text; any other part gives "" (section 7). Only inside a ``foreverypart``.

Bounds: loops nest at most ``MAX_LOOP_DEPTH`` deep (refused at upload); every part visited
is a step of the run's ``max_steps``; the parser itself stops at ``MAX_PARTS`` parts; text
extraction decodes at most the variable size limit (or ``:first``) characters.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from stalwart_py.mime import BodyPart
from stalwart_py.mime.headers import parse_parameters
from stalwart_py.sieve.actions import SieveRuntimeError
from stalwart_py.sieve.lexer import SieveSyntaxError
from stalwart_py.sieve.message import _decode_part, header_fields, html_to_text
from stalwart_py.sieve.validate import Conditional, Node
from stalwart_py.sieve.variables import apply_modifiers

if TYPE_CHECKING:
    from stalwart_py.sieve.actions import Limits
    from stalwart_py.sieve.interpreter import Environment
    from stalwart_py.sieve.variables import Variables

# Pigeonhole refuses loops nested deeper than 4 too (SIEVE_MAX_LOOP_DEPTH).
MAX_LOOP_DEPTH = 4
MIME_OPTIONS = ("type", "subtype", "contenttype", "param")


class Break(Exception):
    """``break``: leave the loop named ``name`` (None: the innermost)."""

    def __init__(self, name: str | None) -> None:
        super().__init__(name)
        self.name = name


def children(part: BodyPart) -> tuple[BodyPart, ...]:
    """The parts directly below ``part``: a multipart's children, or the top-level body of
    the message a message/rfc822 part encloses."""
    if part.parts:
        return part.parts
    if part.message is not None:
        return (part.message.body,)
    return ()


def descendants(part: BodyPart) -> Iterator[BodyPart]:
    """Every part below ``part``, depth first in message order (no recursion: the MIME
    parser allows deep nesting)."""
    stack = list(reversed(children(part)))
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(children(current)))


# -- checks at upload ---------------------------------------------------------------------


def check(commands: tuple[Any, ...], extensions: frozenset[str]) -> None:
    """The rules the command table cannot say: ``break`` and ``extracttext`` only inside a
    ``foreverypart`` (a named ``break`` inside a loop of that name), loops at most
    ``MAX_LOOP_DEPTH`` deep, ``:anychild`` and the MIME options only with ``:mime``, and
    "extracttext" only with "variables" and "foreverypart" required (section 7)."""
    if "extracttext" in extensions:
        for needed in ("variables", "foreverypart"):
            if needed not in extensions:
                raise SieveSyntaxError(1, 1, f'"extracttext" needs require "{needed}" too')
    _check_block(commands, [])


def _check_block(commands: tuple[Any, ...], loops: list[str | None]) -> None:
    for command in commands:
        if isinstance(command, Conditional):
            for test, block in command.branches:
                _check_test(test)
                _check_block(block, loops)
            if command.otherwise is not None:
                _check_block(command.otherwise, loops)
            continue
        _check_command(command, loops)


def _check_command(node: Node, loops: list[str | None]) -> None:
    def error(message: str) -> None:
        raise SieveSyntaxError(node.line, node.column, message)

    if node.name == "foreverypart":
        if len(loops) >= MAX_LOOP_DEPTH:
            error(f'"foreverypart" loops nest at most {MAX_LOOP_DEPTH} deep')
        _check_block(node.block, [*loops, node.tags.get("name")])
        return
    if node.name == "break":
        if not loops:
            error('"break" must be inside a "foreverypart" loop')
        name = node.tags.get("name")
        if name is not None and name not in loops:
            error(f'"break :name" names no enclosing "foreverypart" called "{name}"')
    elif node.name == "extracttext" and not loops:
        error('"extracttext" must be inside a "foreverypart" loop')
    for test in node.tests:
        _check_test(test)
    if node.block:
        _check_block(node.block, loops)


def _check_test(node: Node) -> None:
    if "mime" not in node.tags:
        for tag in ("anychild", *MIME_OPTIONS):
            if tag in node.tags:
                raise SieveSyntaxError(node.line, node.column, f'":{tag}" needs ":mime"')
    for test in node.tests:
        _check_test(test)


# -- the run ------------------------------------------------------------------------------


class MimeCommands:
    """The Interpreter's part of RFC 5703 (a mixin: it uses the interpreter's ``env``,
    ``variables``, ``limits``, ``step`` and ``execute``)."""

    env: Environment
    variables: Variables
    limits: Limits

    if TYPE_CHECKING:

        def step(self, node: Any, count: int = 1) -> None: ...
        def execute(self, commands: tuple[Any, ...]) -> None: ...

    def _part_stack(self) -> list[tuple[bytes, BodyPart]]:
        """The parts the running loops are at, each with the message bytes its offsets are
        into: editheader (RFC 5293) may replace the message while a loop runs, and a loop
        walks the message as it was when the loop began."""
        stack: list[tuple[bytes, BodyPart]] | None = self.__dict__.get("_mime_part_stack")
        if stack is None:
            stack = self.__dict__["_mime_part_stack"] = []
        return stack

    def do_foreverypart(self, node: Node) -> None:
        stack = self._part_stack()
        if stack:
            data, current = stack[-1]
            parts = descendants(current)
        else:
            data, root = self.env.message.data, self.env.message.parsed.body
            parts = iter((root, *descendants(root)))
        name = node.tags.get("name")
        for part in parts:
            self.step(node)
            stack.append((data, part))
            try:
                self.execute(node.block)
            except Break as leaving:
                if leaving.name is None or leaving.name == name:
                    break
                raise
            finally:
                stack.pop()

    def do_break(self, node: Node) -> None:
        raise Break(node.tags.get("name"))

    def do_extracttext(self, node: Node) -> None:
        stack = self._part_stack()
        if not stack:  # the validator prevents it; an included script cannot reach a loop
            raise SieveRuntimeError("extracttext outside foreverypart", node.line, node.column)
        limit = self.limits.max_variable_size
        if "first" in node.tags:
            limit = min(limit, int(node.tags["first"]))
        data, part = stack[-1]
        text = ""
        if part.type == "text" and limit > 0:
            if part.subtype == "html":  # markup is longer than its text: decode more of it
                decoded = _decode_part(data, part, self.limits.max_body)
                text = html_to_text(decoded).lstrip()
            else:
                text = _decode_part(data, part, limit)
            # RFC 5703 7: the first N characters, as every Sieve string length counts them
            # (RFC 5229 :length); Pigeonhole cuts at N octets of UTF-8.
            text = text[:limit]
        self.variables.set(node.args[0], apply_modifiers(text, node.tags))

    # -- tests with :mime (header, address, exists) -----------------------------------

    def _mime_parts(self, node: Node) -> list[tuple[bytes, BodyPart]]:
        stack = self._part_stack()
        if stack:
            data, current = stack[-1]
        else:
            data, current = self.env.message.data, self.env.message.parsed.body
        if "anychild" not in node.tags:
            return [(data, current)]
        parts = [(data, current), *((data, part) for part in descendants(current))]
        self.step(node, len(parts))
        return parts

    def _part_fields(self, data: bytes, part: BodyPart) -> list[tuple[str, str]]:
        """The fields of a part's header, cached per message version and part."""
        cached = self.__dict__.get("_mime_fields")
        if cached is None or cached[0] is not data:
            cached = self.__dict__["_mime_fields"] = (data, {})
        fields = cached[1].get(part.header_offset)
        if fields is None:
            fields = cached[1][part.header_offset] = header_fields(
                data, part.header_offset, part.header_length
            )
        return fields

    def part_raw_values(self, node: Node, name: str) -> list[str]:
        """The raw values of ``name`` in the parts the test looks at (``address :mime``)."""
        name = name.lower()
        return [
            value
            for data, part in self._mime_parts(node)
            for field, value in self._part_fields(data, part)
            if field == name
        ]

    def part_header_values(self, node: Node, name: str) -> list[str]:
        """``header :mime``: decoded values, or the pieces the MIME options ask for."""
        from stalwart_py.mime import decode_header_value

        raw = self.part_raw_values(node, name)
        tags = node.tags
        if "param" in tags:
            wanted = [param.lower() for param in tags["param"]]
            out: list[str] = []
            for value in raw:
                params = dict(parse_parameters(value, value.find(";")))
                out += [params[param] for param in wanted if param in params]
            return out
        if any(option in tags for option in ("type", "subtype", "contenttype")):
            out = []
            for value in raw:
                token = value.split(";", 1)[0].strip()
                kind, _, subtype = token.partition("/")
                if "type" in tags:
                    out.append(kind.strip())
                elif "subtype" in tags:
                    out.append(subtype.strip())
                else:
                    out.append(token)
            return out
        return [decode_header_value(value) for value in raw]

    def parts_have(self, node: Node, names: list[str]) -> bool:
        """``exists :mime``: every field in the part (with :anychild, in one of them)."""
        wanted = {name.lower() for name in names}
        return any(
            wanted <= {field for field, _ in self._part_fields(data, part)}
            for data, part in self._mime_parts(node)
        )
