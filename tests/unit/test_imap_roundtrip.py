"""The serializer and the parser against each other, and hypothesis fuzzing of both:
strings always survive the trip, mailbox names survive modified UTF-7, search criteria
written out parse back to the same tree, and no input makes the parser or framer fail
other than with a protocol error."""

from __future__ import annotations

import contextlib
import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.imap import response
from protocols.imap.commands import CommandError, parse_command
from protocols.imap.framing import CommandComplete, CommandFramer, CommandRejected, LiteralExpected
from protocols.imap.lexer import Reader
from protocols.imap.mailbox_names import (
    BadMailboxName,
    check_name,
    decode_name,
    decode_utf7,
    encode_utf7,
    pattern_regex,
)
from protocols.imap.search_keys import (
    MONTHS,
    And,
    Constant,
    DateCompare,
    HasFlag,
    HeaderContains,
    InSet,
    Not,
    Or,
    SearchParser,
    SizeCompare,
    TextContains,
)
from protocols.imap.sequence import STAR, SequenceSet, format_set

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- the serializer -------------------------------------------------------------------------


def test_strings_are_quoted_only_when_safe():
    assert response.string("hello world") == b'"hello world"'
    assert response.string('a"b\\c') == b'"a\\"b\\\\c"'
    assert response.string("Grüße") == b"{7}\r\n" + "Grüße".encode()
    assert response.string(b"a\r\nb") == b"{4}\r\na\r\nb"
    assert response.string("x" * 2000).startswith(b"{2000}\r\n")
    assert response.literal(b"a\x00b") == b"{3}\r\na\x80b"  # literal8 only in BINARY
    assert response.binary_literal(b"a\x00b") == b"~{3}\r\na\x00b"
    assert response.binary_literal(b"ab") == b"{2}\r\nab"
    assert response.nstring(None) == b"NIL"
    assert response.astring("INBOX") == b"INBOX"
    assert response.astring("NIL") == b'"NIL"'
    assert response.astring("two words") == b'"two words"'


def test_flags_status_and_text():
    assert response.flags({"$Label", "\\Seen", "\\Answered", "Work"}) == (
        b"(\\Answered \\Seen $Label Work)"
    )
    assert response.status("a1", "NO", "line\r\nbreak é", "TRYCREATE") == (
        b"a1 NO [TRYCREATE] line  break ?\r\n"
    )
    assert response.continuation() == b"+ \r\n"


@FUZZ
@given(st.binary(max_size=3000).filter(lambda b: b"\x00" not in b))
def test_any_string_survives_the_round_trip(value: bytes):
    wire = response.string(value) + b"\r\n"
    reader = Reader(wire)
    assert reader.string() == value
    reader.finish()


@FUZZ
@given(st.binary(max_size=500))
def test_any_octets_survive_as_a_literal(value: bytes):
    """A BINARY literal carries every octet; a plain literal every octet but NUL, which it
    sends as 0x80 (RFC 3516 section 4.2: no literal8 outside BINARY)."""
    reader = Reader(response.binary_literal(value) + b"\r\n")
    assert reader.literal(binary=True) == value
    reader = Reader(response.literal(value) + b"\r\n")
    assert reader.literal() == value.replace(b"\x00", b"\x80")


# -- mailbox names --------------------------------------------------------------------------


def test_modified_utf7_examples_of_rfc_3501():
    assert encode_utf7("~peter/mail/台北/日本語") == b"~peter/mail/&U,BTFw-/&ZeVnLIqe-"
    assert decode_utf7(b"~peter/mail/&U,BTFw-/&ZeVnLIqe-") == "~peter/mail/台北/日本語"
    assert encode_utf7("Tom & Jerry") == b"Tom &- Jerry"
    assert decode_utf7(b"Tom &- Jerry") == "Tom & Jerry"
    assert encode_utf7("Entwürfe") == b"Entw&APw-rfe"
    for bad in (b"&Jjo!", b"&AGE-", b"caf\xc3\xa9\x01", b"&U,BTF"):
        with pytest.raises(BadMailboxName):
            decode_utf7(bad)


def test_names_in_utf8_mode_and_inbox():
    assert decode_name("Entwürfe".encode(), utf8=True) == "Entwürfe"
    assert decode_name(b"Tom &- Jerry", utf8=True) == "Tom &- Jerry"
    assert decode_name("Entwürfe".encode(), utf8=False) == "Entwürfe"  # raw UTF-8 tolerated
    assert decode_name(b"inbox", utf8=False) == "INBOX"
    assert decode_name(b"Inbox/Sub", utf8=False) == "INBOX/Sub"


def test_new_names_are_checked():
    for bad in ("", "a//b", "/a", "a/", "a*", "50%", "a\x01", "x" * 600):
        with pytest.raises(BadMailboxName):
            check_name(bad)
    check_name("Work/2024/Q1 reports")


def test_list_patterns():
    assert pattern_regex("", "*").match("a/b/c")
    assert pattern_regex("", "%").match("a")
    assert not pattern_regex("", "%").match("a/b")
    assert pattern_regex("Work/", "%").match("Work/2024")
    assert not pattern_regex("Work/", "%").match("Work/2024/Q1")
    assert pattern_regex("", "inbox").match("INBOX")
    assert not pattern_regex("", "a.c").match("abc")  # no regex leaks through


@FUZZ
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60))
def test_any_name_survives_modified_utf7(name: str):
    encoded = encode_utf7(name)
    assert encoded.isascii()
    assert decode_utf7(encoded) == name


# -- search criteria written out and parsed back ---------------------------------------------

_word = st.text(
    alphabet=st.characters(min_codepoint=0x20, blacklist_categories=("Cs",)), max_size=12
)
_keyword = st.from_regex(r"\$?[A-Za-z][A-Za-z0-9_]{0,8}", fullmatch=True)
_date = st.dates(min_value=datetime.date(1970, 1, 1), max_value=datetime.date(2100, 1, 1))
_numbers = st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), min_size=1, max_size=4).map(
    lambda ranges: SequenceSet(tuple((a or STAR, b or STAR) for a, b in ranges))
)

_leaf = st.one_of(
    st.just(Constant(True)),
    st.sampled_from(["\\Answered", "\\Deleted", "\\Draft", "\\Flagged", "\\Seen"]).flatmap(
        lambda flag: st.booleans().map(lambda present: HasFlag(flag, present))
    ),
    st.builds(HasFlag, _keyword, st.booleans()),
    st.builds(HeaderContains, st.sampled_from(["bcc", "cc", "from", "to", "subject"]), _word),
    st.builds(HeaderContains, st.from_regex(r"x-[a-z]{1,8}", fullmatch=True), _word),
    st.builds(TextContains, _word, st.booleans()),
    st.builds(DateCompare, st.booleans(), st.sampled_from(["before", "on", "since"]), _date),
    st.builds(SizeCompare, st.booleans(), st.integers(0, 10**9)),
    st.builds(InSet, _numbers, st.booleans()),
)
_keys = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.builds(Not, inner),
        st.builds(Or, inner, inner),
        st.lists(inner, min_size=2, max_size=3).map(lambda keys: And(tuple(keys))),
    ),
    max_leaves=12,
)


def write_key(key) -> bytes:
    """The client side of the grammar, written independently of the parser."""
    match key:
        case Constant(value=True):
            return b"ALL"
        case HasFlag(flag=flag, present=present) if flag.startswith("\\"):
            return (b"" if present else b"UN") + flag[1:].upper().encode()
        case HasFlag(flag=flag, present=present):
            return (b"KEYWORD " if present else b"UNKEYWORD ") + flag.encode()
        case HeaderContains(field=field, value=value) if field.startswith("x-"):
            return b"HEADER " + field.encode() + b" " + response.string(value)
        case HeaderContains(field=field, value=value):
            return field.upper().encode() + b" " + response.string(value)
        case TextContains(value=value, body_only=body_only):
            return (b"BODY " if body_only else b"TEXT ") + response.string(value)
        case DateCompare(sent=sent, op=op, date=date):
            name = (b"SENT" if sent else b"") + op.upper().encode()
            month = MONTHS[date.month - 1].capitalize()
            return name + f" {date.day}-{month}-{date.year}".encode()
        case SizeCompare(larger=larger, size=size):
            return (b"LARGER " if larger else b"SMALLER ") + str(size).encode()
        case InSet(numbers=numbers, uid=uid):
            text = ",".join(
                ("*" if a == STAR else str(a)) + ":" + ("*" if b == STAR else str(b))
                for a, b in numbers.ranges
            )
            return (b"UID " if uid else b"") + text.encode()
        case Not(key=inner):
            return b"NOT " + write_key(inner)
        case Or(left=left, right=right):
            return b"OR " + write_key(left) + b" " + write_key(right)
        case And(keys=keys):
            return b"(" + b" ".join(write_key(k) for k in keys) + b")"
    raise AssertionError(key)


@FUZZ
@given(_keys)
def test_search_criteria_round_trip(key):
    wire = write_key(key) + b"\r\n"
    parsed = SearchParser(Reader(wire)).keys()
    assert parsed == key


# -- fuzzing: only protocol errors, never a crash ---------------------------------------------

_commands = st.sampled_from(
    [
        b"a1 FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (FROM)]<0.10>)",
        b"a2 UID SEARCH RETURN (MIN) CHARSET UTF-8 OR SUBJECT x NOT BODY {3}\r\nabc",
        b'a3 LIST (SUBSCRIBED) "" ("*" %) RETURN (STATUS (MESSAGES))',
        b"a4 STORE 1,2:* (UNCHANGEDSINCE 5) +FLAGS.SILENT (\\Seen $x)",
        b'a5 APPEND INBOX (\\Seen) "01-Jan-2024 00:00:00 +0000" {3+}\r\nabc',
        b"a6 SELECT INBOX (QRESYNC (1 2 1:5))",
        b'a7 LOGIN "u" {1}\r\np',
    ]
)


@FUZZ
@given(_commands, st.data())
def test_mutated_commands_raise_only_protocol_errors(command: bytes, data: st.DataObject):
    mutated = bytearray(command)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(mutated)))
        choice = data.draw(st.integers(0, 2))
        if choice == 0 and position < len(mutated):
            del mutated[position]
        elif choice == 1:
            mutated.insert(
                position, data.draw(st.sampled_from(b'(){}[]<>" \\*%$:,.+~0\r\n\x00\xff'))
            )
        elif position < len(mutated):
            mutated[position] = data.draw(st.integers(0, 255))
    with contextlib.suppress(CommandError):
        parse_command(bytes(mutated) + b"\r\n")


@FUZZ
@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_protocol_errors(data: bytes):
    with contextlib.suppress(CommandError):
        parse_command(data + b"\r\n")


@FUZZ
@given(st.lists(st.binary(max_size=80), max_size=8))
def test_the_framer_takes_any_lines(lines: list[bytes]):
    framer = CommandFramer(max_command_length=256, max_literal_size=512)
    for line in lines:
        line = line.replace(b"\n", b"") + b"\r\n"
        if len(line) > framer.line_limit:
            continue
        event = framer.feed_line(line)
        if isinstance(event, LiteralExpected):
            framer.feed_literal(b"x" * event.size)
        else:
            assert isinstance(event, CommandComplete | CommandRejected)


@FUZZ
@given(st.sets(st.integers(1, 300), max_size=60))
def test_uid_sets_compress_and_expand(uids: set[int]):
    ordered = sorted(uids)
    text = format_set(ordered)
    if not ordered:
        assert text == ""
        return
    command = parse_command(b"a UID FETCH " + text.encode() + b" FLAGS\r\n")
    assert command.args.sequence.select_uids(list(range(1, 301))) == ordered
