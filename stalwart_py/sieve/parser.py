"""The Sieve grammar (RFC 5228 section 8.2) as a recursive-descent parser.

::

    start        = commands
    commands     = *command
    command      = identifier arguments (";" / block)
    block        = "{" commands "}"
    arguments    = *argument [ test / test-list ]
    argument     = string-list / number / tag
    test         = identifier arguments
    test-list    = "(" test *("," test) ")"
    string-list  = "[" string *("," string) "]" / string

The result is a generic tree (``Command``, ``Test``, ``Argument``): what each command means,
which arguments it takes and which extension it needs is checked afterwards by the validator
(``validate.py``), which sees the whole tree and the ``require`` list. Blocks and tests nest
at most ``MAX_NESTING`` deep, so a hostile script cannot exhaust the stack.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stalwart_py.sieve.lexer import (
    END,
    IDENTIFIER,
    NUMBER,
    STRING,
    TAG,
    Lexer,
    SieveSyntaxError,
    Token,
)

MAX_NESTING = 32


@dataclass(frozen=True, slots=True)
class Argument:
    """A tag (``value`` its lowercased name), a number, or a string list (``value`` a tuple
    of strings; ``bracketed`` when written with ``[...]``)."""

    kind: str  # TAG, NUMBER or STRING
    value: str | int | tuple[str, ...]
    line: int
    column: int
    bracketed: bool = False

    def describe(self) -> str:
        if self.kind == TAG:
            return f'the tag ":{self.value}"'
        if self.kind == NUMBER:
            return f"the number {self.value}"
        return "a string list" if self.bracketed else "a string"


@dataclass(frozen=True, slots=True)
class Test:
    name: str
    arguments: tuple[Argument, ...]
    tests: tuple[Test, ...]
    line: int
    column: int
    test_list: bool = False  # the tests were written as "( ... )"


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    arguments: tuple[Argument, ...]
    tests: tuple[Test, ...]
    block: tuple[Command, ...] | None  # None: ended by ";"
    line: int
    column: int
    test_list: bool = False
    end_line: int = 0  # where the ";" or "}" is, for errors about what follows
    end_column: int = 0


@dataclass
class _State:
    lexer: Lexer
    token: Token = field(init=False)

    def __post_init__(self) -> None:
        self.token = self.lexer.next()

    def advance(self) -> Token:
        current = self.token
        self.token = self.lexer.next()
        return current


def parse_tree(text: str) -> tuple[Command, ...]:
    """The commands of a script; raises SieveSyntaxError at the first error."""
    state = _State(Lexer(text))
    commands = _commands(state, 0)
    if state.token.kind != END:
        _expected(state.token, "a command")
    return commands


def _expected(token: Token, what: str) -> None:
    raise SieveSyntaxError(token.line, token.column, f"expected {what}, found {token.describe()}")


def _commands(state: _State, depth: int) -> tuple[Command, ...]:
    commands: list[Command] = []
    while state.token.kind == IDENTIFIER:
        commands.append(_command(state, depth))
    return tuple(commands)


def _command(state: _State, depth: int) -> Command:
    name_token = state.advance()
    name = str(name_token.value)
    arguments, tests, test_list = _arguments(state, depth, f'"{name}"')
    token = state.token
    if token.kind == ";":
        state.advance()
        return Command(
            name, arguments, tests, None, name_token.line, name_token.column, test_list,
            token.line, token.column,
        )  # fmt: skip
    if token.kind == "{":
        if depth + 1 > MAX_NESTING:
            raise SieveSyntaxError(
                token.line, token.column, f"blocks and tests nest more than {MAX_NESTING} deep"
            )
        state.advance()
        block = _commands(state, depth + 1)
        end = state.token
        if end.kind != "}":
            _expected(end, f'a command or "}}" to close the block of "{name}"')
        state.advance()
        return Command(
            name, arguments, tests, block, name_token.line, name_token.column, test_list,
            end.line, end.column,
        )  # fmt: skip
    _expected(token, f'";" or "{{" after "{name}"' + (" and its arguments" if arguments else ""))
    raise AssertionError  # unreachable


def _arguments(
    state: _State, depth: int, owner: str
) -> tuple[tuple[Argument, ...], tuple[Test, ...], bool]:
    arguments: list[Argument] = []
    while True:
        token = state.token
        if token.kind == TAG:
            state.advance()
            arguments.append(Argument(TAG, token.value, token.line, token.column))
        elif token.kind == NUMBER:
            state.advance()
            arguments.append(Argument(NUMBER, token.value, token.line, token.column))
        elif token.kind == STRING:
            state.advance()
            arguments.append(Argument(STRING, (str(token.value),), token.line, token.column))
        elif token.kind == "[":
            arguments.append(_string_list(state))
        else:
            break
    token = state.token
    if token.kind == IDENTIFIER:
        return tuple(arguments), (_test(state, depth + 1),), False
    if token.kind == "(":
        return tuple(arguments), _test_list(state, depth + 1, owner), True
    return tuple(arguments), (), False


def _string_list(state: _State) -> Argument:
    opening = state.advance()
    values: list[str] = []
    while True:
        token = state.token
        if token.kind != STRING:
            _expected(token, "a string in the string list" if not values else "a string after ','")
        state.advance()
        values.append(str(token.value))
        separator = state.token
        if separator.kind == "]":
            state.advance()
            return Argument(STRING, tuple(values), opening.line, opening.column, bracketed=True)
        if separator.kind != ",":
            _expected(separator, '"," or "]" in the string list')
        state.advance()


def _test(state: _State, depth: int) -> Test:
    token = state.advance()
    if depth > MAX_NESTING:
        raise SieveSyntaxError(
            token.line, token.column, f"blocks and tests nest more than {MAX_NESTING} deep"
        )
    name = str(token.value)
    arguments, tests, test_list = _arguments(state, depth, f'"{name}"')
    return Test(name, arguments, tests, token.line, token.column, test_list)


def _test_list(state: _State, depth: int, owner: str) -> tuple[Test, ...]:
    state.advance()  # "("
    tests: list[Test] = []
    while True:
        token = state.token
        if token.kind != IDENTIFIER:
            _expected(token, f"a test in the test list of {owner}")
        tests.append(_test(state, depth))
        separator = state.token
        if separator.kind == ")":
            state.advance()
            return tuple(tests)
        if separator.kind != ",":
            _expected(separator, f'"," or ")" in the test list of {owner}')
        state.advance()
