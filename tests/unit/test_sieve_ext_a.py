"""The Sieve extensions date and index (RFC 5260), editheader (RFC 5293), environment
(RFC 5183), ihave (RFC 5463), regex (draft-ietf-sieve-regex) and duplicate (RFC 7352) in
the interpreter and at upload. Expected values were checked against Pigeonhole's
``sieve-test`` where it has the extension (the date parts below are its answers)."""

from __future__ import annotations

import time

import pytest

from stalwart_py.sieve import Environment, Interpreter, MessageView, parse_script
from stalwart_py.sieve.actions import SieveRuntimeError
from stalwart_py.sieve.editheader import add_header
from stalwart_py.sieve.ext_run import NeedDuplicate, duplicate_key
from stalwart_py.sieve.lexer import SieveSyntaxError
from stalwart_py.sieve.regex_match import RegexError, regex_match

MESSAGE = (
    b"Return-Path: <ann@remote.test>\r\n"
    b"Received: from a by b; Thu, 13 Nov 2008 01:02:03 +0200\r\n"
    b"Received: from c by d; Fri, 14 Nov 2008 04:05:06 -0000\r\n"
    b"From: Ann <ann@remote.test>\r\n"
    b"To: Bob <bob@example.test>, carol@example.test\r\n"
    b"To: dave@example.test\r\n"
    b"Subject: Hello\r\n"
    b"Date: Wed, 12 Nov 2008 12:34:56 -0800\r\n"
    b"X-D: 1 Jan 70 00:00 +0100\r\n"
    b"X-E: Mon, 1 Jan 2001 10:00:00 EST\r\n"
    b"X-F: garbage\r\n"
    b"X-G: Tue, 29 Feb 2000 23:59:59 (comment) +0000\r\n"
    b"X-Y: Fri, 14 Nov 108 04:05:06 +0000\r\n"
    b"X-Tag: one\r\n"
    b"X-Tag: two\r\n"
    b"X-Tag: three\r\n"
    b"Auto-Submitted: no\r\n"
    b"Message-ID: <m1@remote.test>\r\n"
    b"\r\n"
    b"Body.\r\n"
)
REQUIRE = (
    'require ["date", "index", "editheader", "environment", "ihave", "regex", "duplicate",'
    ' "variables", "imap4flags", "relational", "fileinto", "comparator-i;ascii-numeric"];\n'
)
ITEMS = {
    "name": "stalwart-py", "host": "mail.example.test", "domain": "example.test",
    "location": "MDA", "phase": "during", "remote-ip": "192.0.2.7", "version": "1.0",
}  # fmt: skip
OUT = 'addheader :last "X-Out" "${1}";'  # the first match variable, for ``out``


def run(script, message=MESSAGE, *, now=None, duplicates=None):
    compiled = parse_script(REQUIRE + script)
    environment = Environment(
        MessageView(message), "ann@remote.test", "bob@example.test", frozenset(), "+",
        ITEMS, now, duplicates,
    )  # fmt: skip
    return Interpreter(compiled, environment).run()


def flags(script, **kwargs) -> list[str]:
    return sorted(run(script, **kwargs).keep_flags)


def out(script, **kwargs) -> list[str]:
    """The values of the X-Out fields the script added with ``addheader :last``."""
    outcome = run(script, **kwargs)
    return MessageView(outcome.message).values("x-out") if outcome.message else []


def error(script) -> str:
    with pytest.raises(SieveSyntaxError) as info:
        parse_script(REQUIRE + script)
    return str(info.value)


# -- date and index -------------------------------------------------------------------------


def test_date_parts_in_the_original_zone_and_in_another():
    parts = ["year", "month", "day", "date", "julian", "hour", "minute", "second", "time",
             "iso8601", "std11", "zone", "weekday"]  # fmt: skip
    script = "".join(
        f'if date :matches :originalzone "date" "{p}" "*" {{ {OUT} }}\n' for p in parts
    )
    assert out(script) == [
        "2008", "11", "12", "2008-11-12", "54782", "12", "34", "56", "12:34:56",
        "2008-11-12T12:34:56-08:00", "Wed, 12 Nov 2008 12:34:56 -0800", "-0800", "3",
    ]  # fmt: skip
    zoned = script.replace(":originalzone", ':zone "+0100"')
    assert out(zoned) == [
        "2008", "11", "12", "2008-11-12", "54782", "21", "34", "56", "21:34:56",
        "2008-11-12T21:34:56+01:00", "Wed, 12 Nov 2008 21:34:56 +0100", "+0100", "3",
    ]  # fmt: skip
    utc = 'if date :matches :zone "-0000" "date" "iso8601" "*" { ' + OUT + " }"
    assert out(utc) == ["2008-11-12T20:34:56Z"]  # as Pigeonhole: a zero offset is "Z"


def test_date_crossing_midnight_and_obsolete_forms():
    script = 'if date :matches :zone "+1400" "date" "date" "*" { ' + OUT + " }"
    assert out(script) == ["2008-11-13"]
    script = "".join(
        f'if date :matches :originalzone "{name}" "iso8601" "*" {{ {OUT} }}\n'
        for name in ("x-d", "x-e", "x-f", "x-g", "x-missing", "x-y")
    )
    assert out(script) == [
        "1970-01-01T00:00:00+01:00",  # two-digit year, no seconds
        "2001-01-01T10:00:00-05:00",  # an obsolete zone name
        "2000-02-29T23:59:59Z",  # a comment; garbage and a missing field give nothing
        "2008-11-14T04:05:06Z",  # a three-digit year is 1900 + it (RFC 5322 4.3)
    ]


def test_date_uses_the_first_occurrence_or_the_indexed_one_and_received_after_the_semicolon():
    assert flags('if date :originalzone "received" "time" "01:02:03" { addflag "first"; }'
                 'if date :originalzone "received" "time" "04:05:06" { addflag "second"; }'
                 'if date :originalzone :index 2 "received" "time" "04:05:06" { addflag "i2"; }'
                 'if date :originalzone :index 1 :last "received" "hour" "04" { addflag "last"; }'
                 'if date :count "eq" "received" "year" "1" { addflag "one"; }'
                 'if date :count "eq" "x-f" "year" "0" { addflag "none"; }'
                 'if date "x-f" "year" "" { addflag "empty"; }') == [
        "first", "i2", "last", "none", "one"]  # fmt: skip
    assert flags(
        'if date :value "gt" :originalzone "date" "year" "2000" { addflag "gt"; }'
        'if date :value "lt" "date" "date" "2008-11-13" { addflag "lt"; }'
    ) == ["gt", "lt"]


def test_currentdate_uses_the_clock_in_the_zone_asked_for():
    now = 1_700_000_000  # 2023-11-14T22:13:20Z, a Tuesday
    script = "".join(
        f'if currentdate :matches :zone "{zone}" "{part}" "*" {{ {OUT} }}\n'
        for zone, part in (("+0000", "iso8601"), ("+0200", "date"), ("-0500", "weekday"),
                           ("+0000", "julian"), ("+0530", "zone"))
    )  # fmt: skip
    assert out(script, now=now) == ["2023-11-14T22:13:20Z", "2023-11-15", "2", "60262", "+0530"]
    assert flags('if currentdate :value "ge" "year" "2024" { addflag "future"; }') == ["future"]


def test_index_on_header_and_address():
    assert flags('if header :index 2 "x-tag" "two" { addflag "h2"; }'
                 'if header :index 1 :last "x-tag" "three" { addflag "hlast"; }'
                 'if header :index 4 "x-tag" "" { addflag "h4"; }'
                 'if header :index 2 "x-tag" "one" { addflag "wrong"; }'
                 'if address :index 2 "to" "dave@example.test" { addflag "a2"; }'
                 'if address :index 1 :count "eq" "to" "2" { addflag "count_first"; }'
                 ) == ["a2", "count_first", "h2", "hlast"]  # fmt: skip


def test_date_and_index_are_checked_at_upload():
    assert "line 2" in error('if header :last "x" "y" {}') and ":index" in error(
        'if header :last "x" "y" {}'
    )
    assert '":index" counts from 1' in error('if header :index 0 "x" "y" {}')
    assert 'unknown date part "fortnight"' in error('if date "date" "fortnight" "1" {}')
    assert '"+25:00" is not a time zone' in error('if date :zone "+25:00" "date" "year" "1" {}')
    assert "cannot be used together" in error(
        'if date :zone "+0100" :originalzone "d" "year" "1" {}'
    )
    assert "unexpected tag" in error('if currentdate :originalzone "year" "1" {}')
    for extension, script in (("index", 'if header :index 1 "a" "b" {}'),
                              ("date", 'if currentdate "year" "1" {}')):  # fmt: skip
        with pytest.raises(SieveSyntaxError, match=f'require "{extension}"') as info:
            parse_script(script)
        assert (info.value.line, info.value.column) == (1, 4 if extension == "date" else 11)


# -- editheader -------------------------------------------------------------------------


def test_addheader_and_deleteheader_change_later_tests_and_the_message():
    outcome = run(
        'addheader "X-First" "top";'
        'addheader :last "X-Last" "bottom";'
        'if exists ["x-first", "x-last"] { addflag "added"; }'
        'deleteheader "subject";'
        'if not exists "subject" { addflag "deleted"; }'
        'deleteheader :index 2 "x-tag";'
        'if header :index 2 "x-tag" "three" { addflag "reindexed"; }'
        'deleteheader :matches "x-tag" "*e";'
        'if header :count "eq" "x-tag" "0" { addflag "all_gone"; }'
    )
    assert sorted(outcome.keep_flags) == ["added", "all_gone", "deleted", "reindexed"]
    data = outcome.message
    assert data.startswith(b"Return-Path: <ann@remote.test>\r\nX-First: top\r\nReceived: ")
    assert b"\r\nX-Last: bottom\r\n\r\nBody.\r\n" in data
    assert b"Subject:" not in data and b"X-Tag" not in data
    assert run("keep;").message is None  # untouched: the original bytes are delivered


def test_deleteheader_index_last_match_types_and_comparators():
    def remaining(script):
        return MessageView(run(script).message or MESSAGE).values("x-tag")

    assert remaining('deleteheader :index 1 :last "x-tag";') == ["one", "two"]
    assert remaining('deleteheader :index 1 "X-TAG" "two";') == ["one", "two", "three"]
    assert remaining('deleteheader :is :comparator "i;octet" "x-tag" "TWO";') == [
        "one", "two", "three"]  # fmt: skip
    assert remaining('deleteheader "x-tag" ["ONE", "three"];') == ["two"]
    assert remaining('deleteheader :contains "x-tag" "o";') == ["three"]
    assert remaining('deleteheader :regex "x-tag" "^t(wo|hree)$";') == ["one"]
    assert remaining('deleteheader :value "gt" "x-tag" "p";') == ["one"]
    matched = run('if header :matches "subject" "H*" {} deleteheader :matches "x-tag" "o*";'
                  'addheader :last "X-Out" "${1}";')  # fmt: skip
    assert MessageView(matched.message).values("x-out") == ["ello"]  # match vars untouched


def test_addheader_encodes_and_folds_values():
    data = add_header(b"A: b\r\n\r\n", "X-Long", "word " * 30 + "héllo wörld", last=True)
    lines = data.split(b"\r\n")
    assert all(len(line) <= 78 for line in lines)
    assert b"=?UTF-8?B?" in data and "héllo".encode() not in data
    view = MessageView(data)
    assert view.values("x-long") == [("word " * 30 + "héllo wörld").strip()]


def test_protected_fields_are_never_added_or_deleted(caplog):
    outcome = run(
        'addheader "Received" "forged";'
        'deleteheader "received";'
        'deleteheader "Auto-Submitted";'
        'addheader "auto-submitted" "no";'
        'if header :count "eq" "received" "2" { addflag "received_kept"; }'
        'if header :count "eq" "auto-submitted" "1" { addflag "auto_kept"; }'
    )
    assert sorted(outcome.keep_flags) == ["auto_kept", "received_kept"]
    assert outcome.message is None
    assert "protected field" in caplog.text


def test_addheader_refuses_a_value_too_long_rather_than_cutting_it():
    with pytest.raises(SieveRuntimeError, match="over 16384 characters"):
        run('set "v" "${x}"; addheader "X-Big" "' + "v" * 16385 + '";')
    data = run('addheader "X-Big" "' + "v" * 16384 + '";').message
    assert max(len(line) for line in data.split(b"\r\n")) <= 78  # folded as encoded words
    assert MessageView(data).values("x-big") == ["v" * 16384]


def test_editheader_is_checked_at_upload():
    assert '"X Bad" is not a header field name' in error('addheader "X Bad" "v";')
    assert '"a:b" is not a header field name' in error('deleteheader "a:b";')
    assert "is not a header field name" in error('addheader "' + "x" * 201 + '" "v";')
    assert "needs value patterns" in error('deleteheader :contains "x-tag";')
    assert ":index" in error('deleteheader :last "x-tag";')
    assert "takes field name (string), value (string)" in error('addheader "x";')
    with pytest.raises(SieveSyntaxError, match='require "editheader"'):
        parse_script('addheader "X-A" "b";')


# -- environment ------------------------------------------------------------------------


def test_environment_items():
    script = "".join(
        f'if environment :matches "{name}" "*" {{ addheader :last "X-Out" "{name}=${{1}}"; }}\n'
        for name in ("name", "host", "domain", "location", "phase", "remote-ip", "remote-host",
                     "vnd.unknown")
    )  # fmt: skip
    assert out(script) == [
        "name=stalwart-py", "host=mail.example.test", "domain=example.test", "location=MDA",
        "phase=during", "remote-ip=192.0.2.7",
    ]  # fmt: skip
    assert flags('if environment :contains "HOST" "EXAMPLE" { addflag "casemap"; }'
                 'if not environment "vnd.unknown" "" { addflag "unknown_false"; }'
                 ) == ["casemap", "unknown_false"]  # fmt: skip


# -- ihave and error ----------------------------------------------------------------------


def test_ihave_skips_blocks_of_unknown_extensions_at_upload_and_at_run_time():
    script = (
        'if ihave "x-frobnicate" { frobnicate :now "loudly"; addflag "bad"; }\n'
        'elsif ihave ["date", "mailbox"] { fileinto :create "Dated"; }\n'
        'if anyof(false, ihave "vnd.nothing") { whatever; }\n'
        'if not ihave "x-frobnicate" { addflag "not_have"; }\n'
    )
    outcome = run(script)
    assert [a.mailbox for a in outcome.actions] == ["Dated"] and outcome.actions[0].create
    assert sorted(outcome.keep_flags) == ["not_have"]
    # a known extension's block is checked: its mistakes are refused
    assert 'unknown command "frob"' in error('if ihave "date" { frob; }')
    assert 'unknown command "frob"' in error('if not ihave "x-none" { frob; }')
    with pytest.raises(SieveSyntaxError, match='require "ihave"'):
        parse_script('if ihave "date" {}')
    assert flags('set "x" "date"; if ihave "${x}" { addflag "runtime"; }') == []


def test_error_fails_the_run_with_its_message():
    with pytest.raises(SieveRuntimeError, match=r"line 3, column 11: error: no \$\{\}thanks"):
        run('set "t" "thanks";\nif true { error "no ${}${t}"; }')


# -- regex ------------------------------------------------------------------------------


def test_regex_match_type_with_match_variables_and_comparators():
    assert out(
        'if header :regex "from" "([a-z]+)@(remote|other)\\\\.test" {'
        ' addheader :last "X-Out" "${0}|${1}|${2}|${3}"; }'
        'if header :regex :comparator "i;octet" "subject" "^hello" { addflag "octet"; }'
        'if header :regex "subject" "^HEL+O$" { addheader :last "X-Out" "casemap"; }'
        'if address :regex :domain "to" "^ex[[:alpha:]]+\\\\.test$" {'
        ' addheader :last "X-Out" "posix class"; }'
        'if string :regex "a|b" "(x)|(b)" { addheader :last "X-Out" "[${1}][${2}]"; }'
    ) == ["ann@remote.test|ann|remote|", "casemap", "posix class", "[][b]"]
    quoted = (
        'set :quoteregex "q" "a.b*"; if string :regex "axbb" "${q}" { addflag "no"; }'
        'if string :regex "a.b*" "^${q}$" { addflag "quoted"; }'
    )
    assert flags(quoted) == ["quoted"]


def test_regex_is_checked_at_upload():
    assert "not a valid regular expression" in error('if header :regex "a" "(unclosed" {}')
    assert 'cannot do ":regex"' in error(
        'if header :regex :comparator "i;ascii-numeric" "a" "1" {}'
    )
    assert "cannot be used together" in error('if header :regex :matches "a" "b" {}')
    with pytest.raises(SieveSyntaxError, match='require "regex"'):
        parse_script('if header :regex "a" "b" {}')


def test_a_catastrophic_pattern_is_stopped_within_its_budget():
    evil = "(a|aa)+$"  # exponential in a backtracking engine
    value = "a" * 40 + "!"
    started = time.monotonic()
    with pytest.raises(RegexError, match="took longer"):
        regex_match([value], [evil], "i;octet", timeout=0.2)
    assert time.monotonic() - started < 5.0  # generous: 2 shared cores
    started = time.monotonic()
    with pytest.raises(SieveRuntimeError, match="took longer"):
        run(f'if header :regex "x-evil" "{evil}" {{ discard; }}',
            MESSAGE.replace(b"X-F: garbage", b"X-Evil: " + value.encode()))  # fmt: skip
    assert time.monotonic() - started < 8.0  # the budget of one test, whatever the pattern


# -- duplicate --------------------------------------------------------------------------


def test_duplicate_asks_for_each_key_and_records_what_it_saw():
    default = duplicate_key(None, "<m1@remote.test>")
    with pytest.raises(NeedDuplicate) as info:
        run("if duplicate { discard; }", duplicates={})
    assert info.value.key == default
    assert duplicate_key(None, "<m1@remote.test>") == default  # the same from :header and :uniqueid
    outcome = run("if duplicate { discard; }", duplicates={default: True})
    assert not outcome.implicit_keep and outcome.duplicates == ((default, 7 * 86400.0, False),)
    fresh = run("if duplicate { discard; }", duplicates={default: False})
    assert fresh.implicit_keep and fresh.duplicates == ((default, 7 * 86400.0, False),)
    alert = duplicate_key("alerts", "Hello")
    outcome = run(
        'if duplicate :handle "alerts" :header "subject" :seconds 99999999 :last { addflag "d"; }',
        duplicates={alert: False},
    )
    assert outcome.duplicates == ((alert, 30 * 86400.0, True),)  # the site maximum
    assert run('if duplicate :uniqueid "x" :seconds 0 { discard; }', duplicates={}).implicit_keep
    assert run('if duplicate :header "x-missing" { discard; }', duplicates={}).duplicates == ()
    assert run('if duplicate :header "bad name" { discard; }', duplicates={}).implicit_keep
    assert "cannot be used together" in error('if duplicate :header "a" :uniqueid "b" {}')


def test_environment_items_of_a_delivery_come_from_our_own_fields():
    from stalwart_py.sieve.ext_delivery import VERSION, environment_items

    message = (
        b"Return-Path: <ann@remote.test>\r\n"
        b"Received: from helo.remote.test ([IPv6:2001:db8::1])\r\n"
        b"\tby mail.example.test (stalwart-py) with ESMTP id 1; date\r\n"
        b"Authentication-Results: evil.test; iprev=pass policy.iprev=2001:db8::1 (forged.test)\r\n"
        b"Authentication-Results: Mail.Example.Test;\r\n"
        b"\tiprev=pass policy.iprev=2001:DB8::1 (MX.Remote.Test.);\r\n"
        b"\tspf=none smtp.mailfrom=ann@remote.test\r\n"
        b"\r\n"
    )
    assert environment_items("Mail.Example.Test.", message) == {
        "name": "stalwart-py", "version": VERSION, "host": "mail.example.test",
        "domain": "example.test", "location": "MDA", "phase": "during",
        "remote-ip": "2001:db8::1", "remote-host": "mx.remote.test",
    }  # fmt: skip
    failed = message.replace(
        b"iprev=pass policy.iprev=2001:DB8", b"iprev=fail policy.iprev=2001:DB8"
    )
    assert "remote-host" not in environment_items("mail.example.test", failed)
    forged = b"Received: from x ([192.0.2.1])\r\n\r\n"  # not first after Return-Path: not ours
    assert "remote-ip" not in environment_items("h.example.test", b"X: y\r\n" + forged)
    assert environment_items("localhost", b"\r\n")["domain"] == "localhost"


def test_index_applies_within_the_part_of_a_mime_header_test():
    message = (
        b"From: ann@remote.test\r\nTo: bob@example.test\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        b"Content-Type: text/plain\r\nX-Part: first\r\nX-Part: second\r\n\r\ntext\r\n--b--\r\n"
    )
    script = (
        'require ["foreverypart", "mime", "index", "imap4flags"];\n'
        'foreverypart { if header :mime :index 2 "x-part" "second" { addflag "second"; }\n'
        'if header :mime :index 1 :last "x-part" "first" { addflag "wrong"; } }'
    )
    environment = Environment(MessageView(message), "ann@remote.test", "bob@example.test")
    outcome = Interpreter(parse_script(script), environment).run()
    assert sorted(outcome.keep_flags) == ["second"]
