"""The sans-IO ManageSieve parser: commands, quoted strings, both literal forms, limits, and
any split of the input into chunks."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from protocols.managesieve import responses
from protocols.managesieve.parser import NEED_DATA, Atom, BadLine, Line, Parser, String


def events(data: bytes, parser: Parser | None = None, chunks: list[int] | None = None) -> list:
    parser = parser or Parser(max_line=100, max_literal=50, max_discard=1000)
    out = []
    pieces = [data]
    if chunks:
        pieces, rest = [], data
        for size in chunks:
            pieces.append(rest[:size])
            rest = rest[size:]
        pieces.append(rest)
    for piece in pieces:
        parser.receive_data(piece)
        while (event := parser.next_event()) is not NEED_DATA:
            out.append(event)
            if isinstance(event, BadLine) and event.fatal:
                return out
    return out


def test_commands_and_arguments():
    assert events(b'PUTSCRIPT "a \\"b\\" \\\\" {3+}\r\nx\ry\r\nNOOP\nHAVESPACE "s" 12\r\n') == [
        Line((Atom("PUTSCRIPT"), String(b'a "b" \\'), String(b"x\ry", literal=True))),
        Line((Atom("NOOP"),)),
        Line((Atom("HAVESPACE"), String(b"s"), Atom("12"))),
    ]


def test_synchronizing_and_empty_literals():
    assert events(b"A {2}\r\nab {0+}\r\n\r\n") == [
        Line((Atom("A"), String(b"ab", literal=True), String(b"", literal=True)))
    ]


def test_malformed_lines_are_skipped():
    assert events(b'A "open\r\nB "\\x"\r\nC {x}\r\nD\r\n') == [
        BadLine("unterminated quoted string"),
        BadLine('only \\" and \\\\ may be escaped in a quoted string'),
        BadLine("unexpected '{x}'"),
        Line((Atom("D"),)),
    ]


def test_an_oversized_literal_is_skipped_and_answered_with_maxsize():
    data = b'PUTSCRIPT "a" {60+}\r\n' + b"x" * 60 + b"\r\nNOOP\r\n"
    assert events(data, chunks=[5, 20, 7]) == [
        BadLine("a string of 60 bytes is over the limit of 50", "QUOTA/MAXSIZE"),
        Line((Atom("NOOP"),)),
    ]
    assert events(b"A {5000+}\r\n") == [BadLine("a literal of 5000 bytes", fatal=True)]


def test_long_lines_are_fatal():
    assert events(b"A" * 150) == [BadLine("command longer than 100 bytes", fatal=True)]
    assert events(b"A " + b"b" * 120 + b"\r\n") == [
        BadLine("command longer than 100 bytes", fatal=True)
    ]


def test_responses_quote_or_use_literals():
    assert responses.string('a "b" \\') == b'"a \\"b\\" \\\\"'
    assert responses.string("two\r\nlines") == b"{10}\r\ntwo\r\nlines"
    assert responses.string("x" * 1025).startswith(b"{1025}\r\n")
    assert responses.no("sorry", "QUOTA/MAXSIZE") == b'NO (QUOTA/MAXSIZE) "sorry"\r\n'


@given(
    st.lists(
        st.tuples(st.sampled_from(["NOOP", "PUTSCRIPT", "X"]), st.binary(max_size=40)), max_size=5
    ),
    st.lists(st.integers(0, 30), max_size=10),
)
def test_any_chunking_gives_the_same_events(commands, chunks):
    data = b"".join(
        name.encode()
        + b" "
        + responses.string(value)
        + b" {%d+}\r\n" % len(value)
        + value
        + b"\r\n"
        for name, value in commands
    )
    whole = events(data)
    assert events(data, chunks=chunks) == whole
    assert all(isinstance(event, Line) for event in whole)


@given(st.binary(max_size=300))
def test_garbage_never_crashes(data):
    for event in events(data):
        assert isinstance(event, Line | BadLine)
