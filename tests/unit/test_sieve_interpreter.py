"""The Sieve interpreter on real MIME messages: every command, test and extension, the
implicit keep, the action conflicts and the limits."""

from __future__ import annotations

import base64

import pytest

from stalwart_py.sieve import Environment, Interpreter, Limits, MessageView, parse_script
from stalwart_py.sieve.actions import (
    Discard,
    FileInto,
    Keep,
    Redirect,
    Reject,
    SieveRuntimeError,
    Vacation,
)

HTML = base64.encodebytes(b"<p>Hello <b>html</b> world</p>").replace(b"\n", b"\r\n")
MESSAGE = (
    b"Return-Path: <ann+lists@remote.example>\r\n"
    b"Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    b"Received: from c by d; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    b"From: =?utf-8?q?Ann_M=C3=BCller?= <Ann@Remote.Example>\r\n"
    b"To: Bob <bob+work@example.test>, carol@example.test\r\n"
    b"Cc: team: dave@example.test, eve@example.test;\r\n"
    b"Subject: =?utf-8?b?w4RwZmVs?= and [news] about\r\n"
    b"  things\r\n"
    b"X-Score: 12\r\n"
    b"Message-ID: <m1@remote.example>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/alternative; boundary="b1"\r\n'
    b"\r\n"
    b"preamble\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Gr=FC=DFe from the plain part\r\n"
    b"--b1\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n" + HTML + b"--b1\r\n"
    b"Content-Type: application/pdf\r\n"
    b"\r\n"
    b"%PDF-secret\r\n"
    b"--b1--\r\n"
)  # fmt: skip

ALL = (
    'require ["fileinto", "reject", "ereject", "envelope", "encoded-character", "vacation",'
    ' "vacation-seconds", "subaddress", "comparator-i;ascii-numeric", "relational",'
    ' "imap4flags", "copy", "include", "variables", "body", "mailbox"];\n'
)


def run(
    script,
    message=MESSAGE,
    *,
    mail_from="ann+lists@remote.example",
    to="bob+work@example.test",
    mailboxes=("INBOX", "Lists"),
    limits=None,
    includes=None,
):
    compiled = parse_script(ALL + script)
    environment = Environment(MessageView(message), mail_from, to, frozenset(mailboxes), "+")
    included = {name: parse_script(ALL + text) for name, text in (includes or {}).items()}
    return Interpreter(compiled, environment, limits=limits, includes=included).run()


def filed(outcome):
    return [action.mailbox for action in outcome.actions if isinstance(action, FileInto)]


def test_no_action_is_implicit_keep():
    outcome = run("")
    assert outcome.actions == () and outcome.implicit_keep and outcome.keep_flags == frozenset()


def test_keep_discard_stop_and_if_elsif_else():
    assert run("keep;").actions == (Keep(frozenset()),) and not run("keep;").implicit_keep
    assert run("discard;").actions == (Discard(),) and not run("discard;").implicit_keep
    assert run("stop; discard;").implicit_keep
    script = 'if false { fileinto "A"; } elsif true { fileinto "B"; } else { fileinto "C"; }'
    assert filed(run(script)) == ["B"]
    assert filed(run('if false {} elsif false {} else { fileinto "C"; }')) == ["C"]


def test_fileinto_copy_create_and_redirect():
    outcome = run('fileinto :create "New/Box"; fileinto :copy "Lists";')
    assert outcome.actions == (
        FileInto("New/Box", frozenset(), True, False),
        FileInto("Lists", frozenset(), False, True),
    )
    assert not outcome.implicit_keep
    copy = run('redirect :copy "x@other.example";')
    assert copy.actions == (Redirect("x@other.example", True),) and copy.implicit_keep
    moved = run('redirect "x@other.example";')
    assert not moved.implicit_keep


@pytest.mark.parametrize(
    ("test", "expected"),
    [
        ('header :is "subject" "\u00c4pfel and [news] about  things"', True),  # decoded, unfolded
        ('header :contains "Subject" "[NEWS]"', True),  # i;ascii-casemap by default
        ('header :contains :comparator "i;octet" "Subject" "[NEWS]"', False),
        ('header :matches "subject" "*[news]*"', True),
        ('header :matches "subject" "?pfel*"', True),
        ('header :is "x-missing" ""', False),
        ('header :contains ["received"] "from c"', True),  # every occurrence
        ('address :is "from" "ann@remote.example"', True),
        ('address :domain :is "from" "REMOTE.example"', True),
        ('address :localpart :is "to" "carol"', True),
        ('address :all :is "cc" "eve@example.test"', True),  # inside a group
        ('address :is "${unset}X-Score" "12"', False),  # not an address field: no values
        ('address :user :is "to" "bob"', True),
        ('address :detail :is "to" "work"', True),
        ('address :detail :matches "cc" "*"', False),  # no detail: never matches
        ('envelope :is "from" "ann+lists@remote.example"', True),
        ('envelope :user :is "from" "ann"', True),
        ('envelope :detail :is "to" "work"', True),
        ('envelope :domain :is "to" "example.test"', True),
        ('exists ["from", "x-score"]', True),
        ('exists ["from", "x-nope"]', False),
        ("size :over 100", True),
        ("size :under 100", False),
        ("size :under 1M", True),
        ('not header :is "x-score" "12"', False),
        ('allof (true, header :is "x-score" "12")', True),
        ("anyof (false, false)", False),
        ('header :value "gt" :comparator "i;ascii-numeric" "x-score" "9"', True),
        ('header :value "gt" "x-score" "9"', False),  # as strings "12" < "9"
        ('header :count "eq" :comparator "i;ascii-numeric" "received" "2"', True),
        ('address :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] "4"', True),
        ('header :value "lt" :comparator "i;ascii-numeric" "subject" "5"', False),  # not numeric
        ('body :contains "Gr\u00fc\u00dfe"', True),  # :text, qp and latin-1 decoded
        ('body :text :contains "hello html world"', True),  # html to text
        ('body :text :contains "%PDF"', False),
        ('body :content "application/pdf" :contains "%PDF-secret"', True),
        ('body :content "text" :contains "<b>html</b>"', True),  # :content keeps html markup
        ('body :raw :contains "Gr=FC=DFe"', True),
        ('body :raw :contains "preamble"', True),
        ('mailboxexists "Lists"', True),
        ('mailboxexists ["Lists", "Nope"]', False),
        ('mailboxexists "inbox"', True),
        ('string :is "${hex:41}" "A"', True),
        ('hasflag "\\\\Seen"', False),
    ],
)
def test_tests(test, expected):
    outcome = run(f'if {test} {{ fileinto "Yes"; }}')
    assert (filed(outcome) == ["Yes"]) is expected


def test_null_envelope_sender():
    assert filed(run('if envelope :is "from" "" { fileinto "Bounce"; }', mail_from="")) == [
        "Bounce"
    ]


def test_imap4flags():
    outcome = run(
        'setflag "\\\\Seen $Label";\naddflag ["\\\\flagged", "\\\\seen"];\nremoveflag "$label";\n'
        'fileinto "A";\nfileinto :flags "\\\\Draft \\\\Recent \\\\Bogus ok" "B";\n'
        'if hasflag :contains "\\\\Flag" { fileinto "C"; }\n'
        'addflag "var" "one two";\nif hasflag "var" "two" { keep; }\n'
        'if hasflag :count "eq" :comparator "i;ascii-numeric" "var" "2" { fileinto "D"; }'
    )
    assert [(a.mailbox, sorted(a.flags)) for a in outcome.actions if isinstance(a, FileInto)] == [
        ("A", ["\\Flagged", "\\Seen"]),
        ("B", ["\\Draft", "ok"]),
        ("C", ["\\Flagged", "\\Seen"]),
        ("D", ["\\Flagged", "\\Seen"]),
    ]
    assert Keep(frozenset({"\\Flagged", "\\Seen"})) in outcome.actions
    implicit = run('addflag "\\\\Answered";')
    assert implicit.implicit_keep and implicit.keep_flags == {"\\Answered"}


def test_variables_and_match_variables():
    outcome = run(
        'if header :matches "subject" "*[*]*" { set :upperfirst "tag" "${2}"; }\n'
        'set "n" "${tag}";\nset :length "len" "${n}";\nset :quotewildcard "q" "a*b?";\n'
        'set :lower "low" "MiXed";\nset :upper "up" "MiXed";\n'
        'if address :matches :domain "from" "*.*" { set "dom" "${1}"; }\n'
        'fileinto "${n}-${len}-${q}-${low}-${up}-${dom}-${unknown}-${3}-${bad name}";'
    )
    assert filed(outcome) == ["News-4-a\\*b\\?-mixed-MIXED-Remote---${bad name}"]


def test_body_matches_leaves_the_match_variables_alone():
    # RFC 5173 section 6: wildcards in a body test do not set ${0}, ${1}, ...
    outcome = run(
        'if header :matches "message-id" "<*@*>" { set "id" "${1}"; }\n'
        'if body :raw :matches "*preamble*" { fileinto "${0}|${1}|${id}"; }'
    )
    assert filed(outcome) == ["<m1@remote.example>|m1|m1"]


def test_string_test_counts_non_empty_strings():
    outcome = run(
        'set "a" "x";\nif string :count "eq" :comparator "i;ascii-numeric" ["${a}", "${b}"] "1"'
        ' { fileinto "one"; }'
    )
    assert filed(outcome) == ["one"]


def test_variable_limits():
    limits = Limits(max_variables=2, max_variable_size=5)
    outcome = run('set "a" "1234567890";\nfileinto "${a}";', limits=limits)
    assert filed(outcome) == ["12345"]
    with pytest.raises(SieveRuntimeError, match="more than 2 variables"):
        run('set "a" "1"; set "b" "2"; set "c" "3";', limits=limits)


def test_reject_and_ereject():
    outcome = run('reject "go away";')
    assert outcome.actions == (Reject("go away", False),) and not outcome.implicit_keep
    assert run('ereject "no";').actions == (Reject("no", True),)
    for other in ("keep;", 'fileinto "x";', 'redirect "a@b.example";', 'vacation "away";'):
        with pytest.raises(SieveRuntimeError, match="reject cannot be combined"):
            run(f'reject "no"; {other}')
    with pytest.raises(SieveRuntimeError, match="more than one reject"):
        run('reject "a"; ereject "b";')
    assert run('reject "no"; discard;').actions[0] == Reject("no", False)


def test_vacation_arguments():
    [action] = run(
        'vacation :days 3 :subject "Away: ${1}" :from "Bob <bob@example.test>"'
        ' :addresses ["b@example.test"] :handle "h1" "reason";'
    ).actions
    assert action == Vacation("reason", "Away: ", "Bob <bob@example.test>", ("b@example.test",),
                              False, "h1", 3 * 86400.0)  # fmt: skip
    [seconds] = run('vacation :seconds 0 :mime "Content-Type: text/plain\r\n\r\nx";').actions
    assert seconds.period == 86400 and seconds.mime  # the minimum period, as Pigeonhole
    no_minimum = Limits(vacation_min_period=0)
    [seconds] = run('vacation :seconds 0 "r";', limits=no_minimum).actions
    assert seconds.period == 0  # every message is answered
    [default] = run('vacation "r";').actions
    assert default.period == 7 * 86400 and len(default.handle) == 32
    [clamped] = run('vacation :days 365 "r";').actions
    assert clamped.period == 90 * 86400  # sieve.vacation.max-period
    [clamped] = run('vacation :days 365 "r";', limits=Limits(vacation_max_period=86400)).actions
    assert clamped.period == 86400
    assert run('vacation "r";').implicit_keep
    with pytest.raises(SieveRuntimeError, match="more than one vacation"):
        run('vacation "a"; vacation "b";')


def test_include_return_once_optional_and_globals():
    includes = {
        "lists": (
            'global "tag";\nset "tag" "L";\nif true { fileinto "Lists"; return; }\nfileinto "x";'
        ),
        "flag": 'addflag "\\\\Seen";',
        "loop": 'include "loop";',
    }
    outcome = run(
        'global "tag";\ninclude "lists";\ninclude :once "flag";\ninclude :once "flag";\n'
        'include :optional "missing";\nfileinto "T-${tag}";\ninclude :global :optional "g";',
        includes=includes,
    )
    assert filed(outcome) == ["Lists", "T-L"]
    assert outcome.keep_flags == {"\\Seen"}
    with pytest.raises(SieveRuntimeError, match='"loop" includes itself'):
        run('include "loop";', includes=includes)
    with pytest.raises(SieveRuntimeError, match='no personal script "missing"'):
        run('include "missing";', includes=includes)
    with pytest.raises(SieveRuntimeError, match='no global script "g"'):
        run('include :global "g";', includes=includes)
    stopped = run('include "stopper"; fileinto "never";', includes={"stopper": "stop;"})
    assert filed(stopped) == []


def test_limits_redirects_steps_actions():
    with pytest.raises(SieveRuntimeError, match="more than 2 redirects"):
        run('redirect "a@x.example"; redirect "b@x.example"; redirect "c@x.example";',
            limits=Limits(max_redirects=2))  # fmt: skip
    many_tests = "if anyof (" + ", ".join(["false"] * 200) + ") {}"
    with pytest.raises(SieveRuntimeError, match="more than 100 steps"):
        run(many_tests, limits=Limits(max_steps=100))
    keys = ", ".join(f'"k{i}"' for i in range(60))
    with pytest.raises(SieveRuntimeError, match="more than 100 steps"):
        run(f'if header :is ["subject", "from"] [{keys}] {{}}', limits=Limits(max_steps=100))
    with pytest.raises(SieveRuntimeError, match="more than 3 actions"):
        run('fileinto "a"; fileinto "b"; fileinto "c"; fileinto "d";', limits=Limits(max_actions=3))
    with pytest.raises(SieveRuntimeError, match="too many included scripts"):
        run('include "a";', includes={"a": 'include "b";', "b": 'include "c";', "c": "keep;"},
            limits=Limits(max_include_depth=2))  # fmt: skip


def test_runtime_invalid_redirect_and_mailbox():
    with pytest.raises(SieveRuntimeError, match='line 3, column 1: "nobody" is not a valid'):
        run('set "a" "nobody";\nredirect "${a}";')
    with pytest.raises(SieveRuntimeError, match="is not a mailbox name"):
        run('set "a" "";\nfileinto "${a}";')


def test_header_only_and_broken_messages():
    assert filed(run('if header :is "subject" "x" { fileinto "Y"; }', b"Subject: x")) == ["Y"]
    assert filed(run('if body :contains "" { fileinto "Y"; }', b"")) == ["Y"]
    junk = b"\x00\xff\xfe garbage without a header\r\n"
    assert run('if header :contains "subject" "x" { fileinto "Y"; }', junk).implicit_keep
