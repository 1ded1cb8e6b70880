"""The sans-IO IMAP command parser: lexer, commands, sequence sets, FETCH items, SEARCH keys,
framing and limits."""

from __future__ import annotations

import datetime

import pytest

from protocols.imap.append_syntax import Append
from protocols.imap.commands import (
    CommandError,
    Fetch,
    ListArgs,
    Search,
    Select,
    Store,
    parse_command,
)
from protocols.imap.fetch_items import BodySection, Section
from protocols.imap.framing import (
    CommandComplete,
    CommandFramer,
    CommandRejected,
    LiteralExpected,
)
from protocols.imap.lexer import ParseError, Reader
from protocols.imap.search_keys import (
    And,
    Constant,
    DateCompare,
    HasFlag,
    HeaderContains,
    InSet,
    ModSeqAtLeast,
    Not,
    Or,
    SizeCompare,
    TextContains,
)
from protocols.imap.sequence import STAR, SequenceSet, format_set


def parse(text: bytes | str):
    data = text.encode() if isinstance(text, str) else text
    return parse_command(data + b"\r\n")


def error_of(text: bytes | str) -> CommandError:
    with pytest.raises(CommandError) as info:
        parse(text)
    return info.value


# -- lexer ----------------------------------------------------------------------------------


def test_quoted_strings_unescape_only_quote_and_backslash():
    assert Reader(b'"a\\"b\\\\c"\r\n').quoted() == b'a"b\\c'
    assert Reader('"Grüße"\r\n'.encode()).quoted() == "Grüße".encode()
    with pytest.raises(ParseError):
        Reader(b'"unterminated\r\n').quoted()
    with pytest.raises(ParseError):
        Reader(b'"a\\nb"\r\n').quoted()  # only \" and \\ are escapes


def test_literals_of_every_kind():
    assert Reader(b"{3}\r\nabc\r\n").literal() == b"abc"
    assert Reader(b"{3+}\r\nabc\r\n").literal() == b"abc"
    assert Reader(b"{0}\r\n\r\n").literal() == b""
    assert Reader(b"~{3}\r\na\x00c\r\n").literal(binary=True) == b"a\x00c"
    with pytest.raises(ParseError, match="literal8"):
        Reader(b"~{3}\r\nabc\r\n").literal()
    with pytest.raises(ParseError, match="NUL"):
        Reader(b"{3}\r\na\x00c\r\n").literal()
    with pytest.raises(ParseError, match="shorter"):
        Reader(b"{10}\r\nabc").literal()


def test_astring_takes_atoms_with_brackets_quoted_and_literals():
    assert Reader(b"INBOX]x rest").astring() == b"INBOX]x"
    assert Reader(b'"two words"').astring() == b"two words"
    assert Reader(b"{5}\r\nhello").astring() == b"hello"
    with pytest.raises(ParseError):
        Reader(b"(list)").astring()


def test_nstring():
    assert Reader(b"NIL").nstring() is None
    assert Reader(b"nil").nstring() is None
    assert Reader(b'"NIL"').nstring() == b"NIL"


# -- commands -------------------------------------------------------------------------------


def test_simple_commands_and_tags():
    command = parse("a001 CAPABILITY")
    assert (command.tag, command.name, command.uid, command.args) == (
        "a001",
        "CAPABILITY",
        False,
        None,
    )
    assert parse("x.1 noop").name == "NOOP"
    assert error_of("+tag NOOP").tag == "*"  # "+" cannot start a tag
    assert "unknown command" in str(error_of("a1 FROB"))
    assert error_of("a1 FROB").tag == "a1"
    assert "unexpected characters" in str(error_of("a1 NOOP extra"))
    assert "UID NOOP" in str(error_of("a1 UID NOOP"))


def test_login_with_quoted_and_literal_arguments():
    args = parse('a LOGIN "alice@example.test" {6}\r\nsecret').args
    assert (args.user, args.password) == ("alice@example.test", "secret")
    args = parse('a LOGIN alice "pa ss\\"word"').args
    assert args.password == 'pa ss"word'


def test_authenticate_with_and_without_initial_response():
    assert parse("a AUTHENTICATE plain").args.mechanism == "PLAIN"
    assert parse("a AUTHENTICATE plain").args.initial_response is None
    assert parse("a AUTHENTICATE PLAIN AGEAYg==").args.initial_response == b"AGEAYg=="
    assert parse("a AUTHENTICATE PLAIN =").args.initial_response == b"="


def test_select_with_condstore_and_qresync():
    args: Select = parse("a SELECT INBOX (CONDSTORE)").args
    assert args.mailbox == b"INBOX" and args.condstore and args.qresync is None
    args = parse("a EXAMINE Lists (QRESYNC (67890007 20050715194045000 41,43:211,214:541))").args
    assert args.qresync.uidvalidity == 67890007
    assert args.qresync.modseq == 20050715194045000
    assert args.qresync.known_uids.ranges == ((41, 41), (43, 211), (214, 541))
    args = parse("a SELECT INBOX (QRESYNC (1 2 1:100 (1,50 10,500)))").args
    sequences, uids = args.qresync.seq_match
    assert sequences.ranges == ((1, 1), (50, 50)) and uids.ranges == ((10, 10), (500, 500))
    assert "unknown SELECT parameter" in str(error_of("a SELECT INBOX (FOO)"))


def test_list_basic_and_extended():
    args: ListArgs = parse('a LIST "" *').args
    assert (args.reference, args.patterns, args.extended) == (b"", (b"*",), False)
    args = parse(
        'a LIST (SUBSCRIBED RECURSIVEMATCH) "" ("INBOX" %/x)'
        " RETURN (CHILDREN STATUS (MESSAGES UNSEEN))"
    ).args
    assert args.selection == {"SUBSCRIBED", "RECURSIVEMATCH"}
    assert args.patterns == (b"INBOX", b"%/x")
    assert args.returns == {"CHILDREN", "STATUS"}
    assert args.status_items == ("MESSAGES", "UNSEEN")
    assert args.extended
    assert "RECURSIVEMATCH" in str(error_of('a LIST (RECURSIVEMATCH) "" *'))
    assert parse('a LSUB "" "*"').args.patterns == (b"*",)


def test_status_items_are_checked():
    assert parse("a STATUS INBOX (messages uidnext SIZE)").args.items == (
        "MESSAGES",
        "UIDNEXT",
        "SIZE",
    )
    assert parse("a STATUS INBOX (deleted Deleted-Storage)").args.items == (
        "DELETED",
        "DELETED-STORAGE",
    )  # RFC 9208 section 4.1.4
    assert "unknown STATUS item" in str(error_of("a STATUS INBOX (BOGUS)"))


def test_append_with_flags_date_and_literal8():
    args: Append = parse(
        b'a APPEND Drafts (\\Draft $Label) " 5-Mar-2024 13:04:05 +0200" ~{4}\r\nab\x00c'
    ).args
    assert args.mailbox == b"Drafts"
    (message,) = args.messages
    assert message.flags == ("\\Draft", "$Label")
    assert message.internaldate == datetime.datetime(
        2024, 3, 5, 13, 4, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
    )
    assert message.data == b"ab\x00c"
    (message,) = parse(b"a APPEND INBOX {5+}\r\nhello").args.messages
    assert (message.flags, message.internaldate, message.data) == ((), None, b"hello")
    assert "date-time" in str(error_of('a APPEND INBOX "32-Foo-2024 00:00:00 +0000" {1}\r\nx'))


def test_store_forms():
    args: Store = parse("a STORE 1:3 +FLAGS.SILENT (\\Seen \\Deleted)").args
    assert (args.mode, args.silent, args.flags) == ("add", True, ("\\Seen", "\\Deleted"))
    args = parse("a UID STORE 5 (UNCHANGEDSINCE 320162338) -FLAGS \\Flagged").args
    assert (args.mode, args.unchanged_since, args.flags) == ("remove", 320162338, ("\\Flagged",))
    args = parse("a STORE * FLAGS ()").args
    assert (args.mode, args.flags) == ("replace", ())
    assert parse("a UID STORE 1 FLAGS (x)").uid
    assert "FLAGS" in str(error_of("a STORE 1 +LABELS (x)"))


def test_copy_move_expunge_and_uid_variants():
    command = parse("a UID MOVE 1:* Trash")
    assert (command.name, command.uid, command.args.mailbox) == ("MOVE", True, b"Trash")
    assert parse("a EXPUNGE").args is None
    assert parse("a UID EXPUNGE 3:5").args.sequence.ranges == ((3, 5),)


def test_id_enable_quota():
    args = parse('a ID ("name" "Thunderbird" "version" NIL)').args
    assert args.fields == (("name", "Thunderbird"), ("version", None))
    assert parse("a ID NIL").args.fields is None
    assert "pairs" in str(error_of('a ID ("name")'))
    assert parse("a ENABLE condstore IMAP4rev2").args.capabilities == ("CONDSTORE", "IMAP4REV2")
    assert parse('a GETQUOTA ""').args.root == ""
    assert parse('a SETQUOTA "" (STORAGE 512)').args.limits == (("STORAGE", 512),)


def test_create_with_special_use():
    args = parse("a CREATE MySent (USE (\\Sent))").args
    assert (args.mailbox, args.special_use) == (b"MySent", ("\\Sent",))


# -- sequence sets --------------------------------------------------------------------------


def test_sequence_sets_resolve_star_and_reversed_ranges():
    command = parse("a FETCH 1,3:5,*,9:7,20:* FLAGS")
    numbers = command.args.sequence
    assert numbers.ranges == ((1, 1), (3, 5), (STAR, STAR), (9, 7), (20, STAR))
    assert numbers.positions(10) == [1, 3, 4, 5, 7, 8, 9, 10]
    # "n:*" with n above the largest number still names the last message (RFC 9051 9)
    assert SequenceSet(((50, STAR),)).select_uids([3, 8, 12]) == [12]
    assert SequenceSet(((2, 9), (5, 20))).select_uids([1, 3, 8, 12, 30]) == [3, 8, 12]
    assert SequenceSet(((1, STAR),)).positions(0) == []
    assert parse("a FETCH $ FLAGS").args.sequence.saved
    assert "sequence set" in str(error_of("a FETCH 0 FLAGS"))
    assert "sequence set" in str(error_of("a FETCH 1:x FLAGS"))


def test_format_set_compresses_runs():
    assert format_set([1, 2, 3, 5, 7, 8]) == "1:3,5,7:8"
    assert format_set([]) == ""
    assert format_set([4]) == "4"


# -- FETCH items ----------------------------------------------------------------------------


def test_fetch_macros_and_simple_items():
    assert parse("a FETCH 1 ALL").args.items == ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE")
    assert parse("a FETCH 1 fast").args.items == ("FLAGS", "INTERNALDATE", "RFC822.SIZE")
    assert parse("a FETCH 1 FULL").args.items[-1] == "BODY"
    assert parse("a FETCH 1 (uid flags flags MODSEQ)").args.items == ("UID", "FLAGS", "MODSEQ")
    assert "unknown fetch item" in str(error_of("a FETCH 1 (FLAGS BOGUS)"))


def test_fetch_sections_and_partials():
    items = parse(
        'a FETCH 1 (BODY[] BODY.PEEK[HEADER.FIELDS (From "X-Odd")]<0.100> BODY[1.2.MIME]'
        " BODY[2.HEADER] BODY[3.TEXT] BODY[4] BINARY.PEEK[1]<5.10> BINARY.SIZE[2] RFC822.HEADER)"
    ).args.items
    whole, fields, mime_header, header, text, part, binary, size, rfc822 = items
    assert whole == BodySection("BODY", Section())
    assert whole.sets_seen and whole.response_name() == "BODY[]"
    assert fields.section == Section((), "HEADER.FIELDS", ("From", "X-Odd"))
    assert fields.peek and fields.partial == (0, 100)
    assert fields.response_name() == "BODY[HEADER.FIELDS (From X-Odd)]<0>"
    assert mime_header.section == Section((1, 2), "MIME")
    assert header.section == Section((2,), "HEADER")
    assert text.section == Section((3,), "TEXT")
    assert part.section == Section((4,))
    assert binary == BodySection("BINARY", Section((1,)), peek=True, partial=(5, 10))
    assert size.kind == "BINARY.SIZE" and not size.sets_seen
    assert rfc822.response_name() == "RFC822.HEADER" and not rfc822.sets_seen
    assert "invalid section" in str(error_of("a FETCH 1 BODY[MIME]"))  # MIME needs a part
    assert "invalid section" in str(error_of("a FETCH 1 BODY[1.FOO]"))


def test_fetch_modifiers():
    args: Fetch = parse("a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)").args
    assert (args.modifiers.changed_since, args.modifiers.vanished) == (12345, True)
    assert "UID FETCH only" in str(error_of("a FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)"))
    assert "needs CHANGEDSINCE" in str(error_of("a UID FETCH 1 (FLAGS) (VANISHED)"))


# -- SEARCH ---------------------------------------------------------------------------------


def test_every_search_key():
    args: Search = parse(
        "a SEARCH ALL ANSWERED BCC b BEFORE 1-Feb-2024 BODY x CC c DELETED DRAFT FLAGGED FROM f"
        " HEADER X-Spam yes KEYWORD $Junk LARGER 10 NEW NOT SEEN OLD ON 2-Feb-2024"
        ' OR SEEN UNSEEN RECENT SENTBEFORE "3-Mar-2024" SENTON 4-Mar-2024 SENTSINCE 5-Mar-2024'
        " SINCE 6-Mar-2024 SMALLER 99 SUBJECT s TEXT t TO o UID 1:5 UNANSWERED UNDELETED"
        " UNDRAFT UNFLAGGED UNKEYWORD $Done UNSEEN 1:2 (SEEN FLAGGED) MODSEQ 7"
    ).args
    keys = args.criteria.keys
    day = datetime.date
    assert keys[:12] == (
        Constant(True),
        HasFlag("\\Answered", True),
        HeaderContains("bcc", "b"),
        DateCompare(False, "before", day(2024, 2, 1)),
        TextContains("x", True),
        HeaderContains("cc", "c"),
        HasFlag("\\Deleted", True),
        HasFlag("\\Draft", True),
        HasFlag("\\Flagged", True),
        HeaderContains("from", "f"),
        HeaderContains("x-spam", "yes"),
        HasFlag("$Junk", True),
    )
    assert keys[12:20] == (
        SizeCompare(True, 10),
        And((HasFlag("\\Recent", True), HasFlag("\\Seen", False))),  # NEW
        Not(HasFlag("\\Seen", True)),
        HasFlag("\\Recent", False),  # OLD
        DateCompare(False, "on", day(2024, 2, 2)),
        Or(HasFlag("\\Seen", True), HasFlag("\\Seen", False)),
        HasFlag("\\Recent", True),  # RECENT
        DateCompare(True, "before", day(2024, 3, 3)),
    )
    assert keys[-5:] == (
        HasFlag("$Done", False),
        HasFlag("\\Seen", False),
        InSet(SequenceSet(((1, 2),)), uid=False),
        And((HasFlag("\\Seen", True), HasFlag("\\Flagged", True))),
        ModSeqAtLeast(7),
    )
    assert TextContains("t", False) in keys
    assert InSet(SequenceSet(((1, 5),)), uid=True) in keys


def test_search_charset_and_return_options():
    args = parse("a SEARCH RETURN (MIN COUNT SAVE) CHARSET utf-8 SUBJECT {6}\r\nGrüß").args
    assert args.returns == ("MIN", "COUNT", "SAVE")
    assert args.charset == "UTF-8"
    assert args.criteria == HeaderContains("subject", "Grüß")
    # an unknown charset parses (and is refused with NO when the search runs)
    assert parse("a SEARCH CHARSET KOI8-R ALL").args.charset == "KOI8-R"
    assert parse("a SEARCH RETURN () ALL").args.returns == ()
    assert "return option" in str(error_of("a SEARCH RETURN (FOO) ALL"))


def test_search_modseq_with_entry_and_nesting_limit():
    args = parse('a SEARCH MODSEQ "/flags/\\\\draft" all 620162338').args
    assert args.criteria == ModSeqAtLeast(620162338)
    deep = "a SEARCH " + "NOT " * 100 + "ALL"
    assert "nested too deeply" in str(error_of(deep))
    assert "invalid date" in str(error_of("a SEARCH SINCE 31-Feb-2024"))
    assert "unknown search key" in str(error_of("a SEARCH FOOBAR"))


# -- framing and limits ---------------------------------------------------------------------


def test_framing_synchronizing_and_non_synchronizing_literals():
    framer = CommandFramer(max_command_length=1024, max_literal_size=10_000)
    assert framer.feed_line(b"a LOGIN {5}\r\n") == LiteralExpected(5, True)
    framer.feed_literal(b"alice")
    assert framer.feed_line(b" {6+}\r\n") == LiteralExpected(6, False)
    framer.feed_literal(b"secret")
    event = framer.feed_line(b"\r\n")
    assert event == CommandComplete(b"a LOGIN {5}\r\nalice {6+}\r\nsecret\r\n")
    assert parse_command(event.data).args.password == "secret"


def test_framing_limits():
    framer = CommandFramer(max_command_length=1024, max_literal_size=10_000)
    # a literal that would make a command too long: refused before it is sent...
    assert framer.feed_line(b"a LOGIN {2000}\r\n") == CommandRejected(
        "a", "literal of 2000 octets is over the limit of 1024", close=False
    )
    # ... or, already on its way (LITERAL+), the end of the connection
    assert framer.feed_line(b"b LOGIN {2000+}\r\n").close
    # APPEND literals may be as large as max-literal-size, not more
    assert framer.feed_line(b"c APPEND INBOX {9000}\r\n") == LiteralExpected(9000, True)
    framer.feed_literal(b"x" * 9000)
    assert isinstance(framer.feed_line(b"\r\n"), CommandComplete)
    rejected = framer.feed_line(b"d UID APPEND INBOX {10001}\r\n")
    assert isinstance(rejected, CommandRejected)
    refused = framer.feed_line(b"e APPEND INBOX {10001}\r\n")
    assert isinstance(refused, CommandRejected) and refused.tag == "e"
    assert framer.line_limit == 1024
