"""The Sieve lexer, parser and validator: what parses, and the exact error (line, column,
what was expected) for what does not."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stalwart_py.sieve import EXTENSIONS, SieveSyntaxError, parse_script
from stalwart_py.sieve.lexer import Lexer
from stalwart_py.sieve.validate import Conditional, Node

ALL = "require [" + ", ".join(f'"{e}"' for e in EXTENSIONS) + "];\n"


def error(text: str) -> str:
    with pytest.raises(SieveSyntaxError) as info:
        parse_script(text)
    return str(info.value)


def test_lexer_tokens_with_positions():
    lexer = Lexer('if :is 10K "a\\"b\\\\c\\d" # comment\r\n /* x\n */ [')
    tokens = []
    while (token := lexer.next()).kind != "end":
        tokens.append((token.kind, token.value, token.line, token.column))
    assert tokens == [
        ("identifier", "if", 1, 1),
        ("tag", "is", 1, 4),
        ("number", 10240, 1, 8),
        ("string", 'a"b\\cd', 1, 12),
        ("[", "[", 3, 5),
    ]


def test_numbers_with_quantifiers():
    node = parse_script("if size :over 2M { keep; }").commands[0].branches[0][0]
    assert node.args == (2 * 1024 * 1024,)
    assert parse_script("if size :under 1G {}").commands[0].branches[0][0].args == (1 << 30,)


def test_multiline_strings_dot_stuffing_and_comment_after_text():
    script = parse_script(
        'require "vacation";\nvacation text: # a comment\nline one\n..dot\n.\n;\n'
    )
    assert script.commands[0].args == ("line one\r\n.dot\r\n",)
    lf_and_crlf = parse_script('require "reject";\r\nreject text:\r\na\nb\r\n.\r\n;')
    assert lf_and_crlf.commands[0].args == ("a\r\nb\r\n",)


def test_every_command_and_test_parses():
    script = parse_script(
        ALL
        + """
        if allof (header :contains ["Subject", "Comments"] "hi",
                  address :domain :is "from" "example.com",
                  envelope :localpart :matches "to" "bob*",
                  exists ["X-Spam"], size :over 100K,
                  not true, anyof (false, true),
                  body :text :contains "x", body :raw :contains "y",
                  body :content ["text/plain", "text"] :contains "z",
                  string :is "${a}" "b", hasflag "\\\\Seen", hasflag "var" "flag",
                  mailboxexists "Lists",
                  header :value "ge" :comparator "i;ascii-numeric" "X-Score" "5",
                  address :count "gt" :comparator "i;ascii-numeric" "to" "3",
                  envelope :user "to" "bob", envelope :detail "to" "tag") {
            fileinto :copy :create :flags ["\\\\Seen", "$Label"] "Lists/a";
            keep :flags "\\\\Flagged"; redirect :copy "a@b.example"; discard;
            setflag "\\\\Seen"; addflag "var" "x"; removeflag "x";
            set :lower :upperfirst "name" "VALUE"; global "g"; include :once :optional "other";
            include :personal "x"; return;
        } elsif header "a" "b" { reject "no"; } else { ereject "no"; stop; }
        vacation :days 3 :subject "s" :from "me@example.com" :addresses ["a@b.c"] :mime
            :handle "h" "reason";
        """
    )
    assert isinstance(script.commands[0], Conditional)
    assert len(script.commands[0].branches) == 2 and script.commands[0].otherwise is not None
    assert script.includes == {"other", "x"}
    assert script.uses_mailboxes
    vacation = script.commands[1]
    assert isinstance(vacation, Node) and vacation.tags["days"] == 3
    assert vacation.tags["addresses"] == ("a@b.c",) and vacation.tags["mime"] is True


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("keep", 'line 1, column 5: expected ";" or "{" after "keep", found the end of the script'),
        ("keep;\nfoo;", 'line 2, column 1: unknown command "foo"'),
        ('if true {\n  keep;\n', 'line 3, column 1: expected a command or "}" to close the block'
         ' of "if", found the end of the script'),
        ('fileinto "x";', 'line 1, column 1: "fileinto" needs require "fileinto" at the start of'
         " the script"),
        ('require "fileinto";\nkeep;\nrequire "reject";', 'line 3, column 1: "require" must come'
         " before every other command"),
        ('require ["fileinto", "frobnicate"];', 'line 1, column 9: unsupported extension'
         ' "frobnicate" in require'),
        ("keep :copy;", 'line 1, column 6: unexpected tag ":copy" for the command "keep"'),
        ('require "fileinto";\nfileinto :copy "x";', 'line 2, column 10: ":copy" needs require'
         ' "copy" at the start of the script'),
        ('if header :is :contains "a" "b" {}', 'line 1, column 15: ":contains" and ":is" cannot'
         " be used together"),
        ('if header :is :is "a" "b" {}', 'line 1, column 15: ":is" is given twice'),
        ('if header "a" {}', 'line 1, column 4: "header" takes header names (string list), keys'
         " (string list); found 1 argument"),
        ('redirect "a@b.c" "d@e.f";', 'line 1, column 18: "redirect" takes address (string);'
         " found 2 arguments"),
        ('redirect ["a@b.c"];', "line 1, column 10: expected a string for the address of"
         ' "redirect", found a string list'),
        ("if size 10 {}", 'line 1, column 4: "size" needs :over or :under'),
        ('if size :over "10" {}', 'line 1, column 15: expected a number for the limit of "size",'
         " found a string"),
        ('redirect "not an address";', 'line 1, column 10: "not an address" is not a valid'
         " address"),
        ('elsif true {}', 'line 1, column 1: "elsif" must follow an "if" or "elsif" block'),
        ("if true keep;", 'line 1, column 9: unexpected "keep" after the test "true"'),
        ("if anyof true {}", 'line 1, column 4: "anyof" takes a test list: anyof (test, test,'
         " ...)"),
        ("if frob {}", 'line 1, column 4: unknown test "frob"'),
        ("if true;", 'line 1, column 1: "if" needs a block { ... }'),
        ("keep {}", 'line 1, column 1: "keep" takes no block; end it with ";"'),
        ('if header :comparator "i;frob" "a" "b" {}', 'line 1, column 23: unknown comparator'
         ' "i;frob"'),
        ('if header :comparator "i;ascii-numeric" "a" "b" {}', 'line 1, column 23: comparator'
         ' "i;ascii-numeric" needs require "comparator-i;ascii-numeric" at the start of the'
         " script"),
        ('require "relational";\nif header :value "bigger" "a" "b" {}', "line 2, column 18:"
         ' unknown relational operator "bigger" (gt, ge, lt, le, eq, ne)'),
        ('require "envelope";\nif envelope "sender" "a" {}', 'line 2, column 13: unknown'
         ' envelope part "sender" (from, to)'),
        ('if header "bad name" "a" {}', 'line 1, column 11: "bad name" is not a header field'
         " name"),
        ('if header "a" "b" :is {}', 'line 1, column 19: the tag ":is" must come before the other'
         " arguments"),
        ('keep; "x"', 'line 1, column 7: expected a command, found the string "x"'),
        ('if header ["a", 3] "b" {}', "line 1, column 17: expected a string after ','"
         ", found the number 3"),
        ('if header ["a" "b"] "c" {}', 'line 1, column 16: expected "," or "]" in the string'
         ' list, found the string "b"'),
        ('if anyof (true false) {}', 'line 1, column 16: unexpected "false" after the test'
         ' "true"'),
        ('if "x" {}', 'line 1, column 4: expected a test after "if", found a string'),
        ('keep; "unterminated', "line 1, column 7: unterminated string: expected a closing"
         " '\"'"),
        ("keep; /* never closed", "line 1, column 7: unterminated comment: expected */ before"
         " the end of the script"),
        ('require "reject";\nreject text:\nno end\n', "line 2, column 8: unterminated multi-line"
         " string: expected a line with a single '.'"),
        ('require "reject";\nreject text: x\n.\n;', "line 2, column 14: expected a line break"
         " after 'text:'"),
        ("keep; : x", "line 1, column 8: expected a tag name after ':'"),
        ("keep; $", "line 1, column 7: unexpected character '$'"),
        ("if size :over 99999999999999999999 {}", "line 1, column 15: the number"
         " 99999999999999999999 is too large"),
        ('require "variables";\nset "1" "x";', 'line 2, column 5: "1" is not a variable name'),
        ('require "include";\ninclude "a/b";', 'line 2, column 9: "a/b" is not a valid script'
         " name"),
        ('require ["include", "variables"];\ninclude "${x}";', "line 2, column 9: the script"
         " name of include must be constant"),
        ('require "imap4flags";\nsetflag "var" "x";', 'line 2, column 9: the variable name of'
         ' "setflag" needs require "variables" at the start of the script'),
        ('require "vacation";\nvacation :from "nobody" "r";', 'line 2, column 16: "nobody" is not'
         " a valid address"),
        ('require ["relational", "comparator-i;ascii-numeric"];\n'
         'if header :contains :comparator "i;ascii-numeric" "a" "1" {}', "line 2, column 4: the"
         " comparator i;ascii-numeric cannot do :contains or :matches"),
        ('if address "subject" "a" {}', 'line 1, column 12: "subject" is not a header field'
         " with addresses"),
        ("if not (true) {}", 'line 1, column 4: "not" takes exactly one test (not a test list)'),
        ("stop true;", 'line 1, column 6: the command "stop" takes no test'),
        ('if exists "a" "b" {}', 'line 1, column 15: "exists" takes header names (string list);'
         " found 2 arguments"),
    ],
)  # fmt: skip
def test_errors_name_the_line_column_and_what_was_expected(text, message):
    assert error(text) == message


def test_error_attributes():
    with pytest.raises(SieveSyntaxError) as info:
        parse_script("keep;\n  discard\n")
    assert (info.value.line, info.value.column) == (3, 1)
    assert info.value.message == 'expected ";" or "{" after "discard", found the end of the script'


def test_script_size_limit():
    with pytest.raises(SieveSyntaxError, match="the limit is 10"):
        parse_script("keep; # a comment", max_size=10)


def test_nesting_is_bounded():
    deep = "if true {" * 40 + "}" * 40
    assert error(deep).endswith("blocks and tests nest more than 32 deep")
    tests = "if " + "not " * 40 + "true {}"
    assert error(tests) == "line 1, column 132: blocks and tests nest more than 32 deep"


def test_encoded_characters_only_with_the_extension():
    script = parse_script(
        'require ["encoded-character", "reject"];\n'
        'reject "${hex:48 69}${unicode:20 263a}${hex:zz}";'
    )
    assert script.commands[0].args == ("Hi \u263a${hex:zz}",)
    plain = parse_script('require "reject";\nreject "${hex:48}";')
    assert plain.commands[0].args == ("${hex:48}",)
    assert "is not a Unicode character" in error(
        'require ["encoded-character", "reject"];\nreject "${unicode:D800}";'
    )


def test_the_base_comparators_may_be_required():
    script = parse_script('require ["comparator-i;octet", "comparator-i;ascii-casemap"];')
    assert script.extensions == {"comparator-i;octet", "comparator-i;ascii-casemap"}


def test_case_insensitive_names_and_identifiers():
    script = parse_script('REQUIRE "FileInto";\nIF HEADER :IS "a" "b" { FILEINTO "x"; }')
    assert script.extensions == {"fileinto"}
    assert script.commands[0].branches[0][0].tags == {"is": True}


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["if", "require", "keep", "header", ":is", "{", "}", "[", "]", "(", ")", ";", ",",
             '"', "\\", "#", "/*", "*/", " ", "\n", "x", ".", "0", "K", "text:\n", "allof"]
        )
    ).map("".join)
)  # fmt: skip
def test_fuzz_never_crashes(text):
    try:
        parse_script(text)
    except SieveSyntaxError as exc:
        error = exc
    else:
        return
    assert error.line >= 1 and error.column >= 1


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_fuzz_arbitrary_text(text):
    with contextlib.suppress(SieveSyntaxError):
        parse_script(text)
