"""Sieve tests and extensions at delivery, end to end: each script is activated over
ManageSieve (sievelib), real MIME messages are delivered over SMTP (smtplib) or LMTP, and
what the script decided is read back over IMAP (which mailbox, which flags: most scripts
record each test's result as a keyword on the message), or is the SMTP/LMTP reply.

The commands, ``reject``, ``vacation``, ``include`` and ``body`` are in
test_sieve_delivery.py."""

from __future__ import annotations

import email
import email.policy
import textwrap

import pytest

from tests.support.managesieve import (
    activate,
    deliver,
    deliver_lmtp,
    mailbox_contents,
    queued,
    sieve_server,
    where,
)

pytestmark = pytest.mark.filterwarnings("ignore:Credentials are sent over an unencrypted")

# A multipart message: the part headers (Content-Type: application/pdf, Content-Disposition)
# are not the message's header fields.
MESSAGE = (
    b'From: "Ann Smith" <Ann.Smith@Remote.Test>\r\n'
    b"To: Bob <bob@example.test>, carol@example.test\r\n"
    b"Cc: team: dave@remote.test, eve@remote.test;\r\n"
    b"Subject: [Fruit] Hello World\r\n"
    b"X-Score: 12\r\n"
    b"X-Tag: a\r\n"
    b"X-Tag: b\r\n"
    b"X-Tag: c\r\n"
    b"X-Folded: one\r\n"
    b" two\r\n"
    b"Message-ID: <m2@remote.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n'
    b"\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hello.\r\n"
    b"--b1\r\n"
    b'Content-Type: application/pdf; name="report.pdf"\r\n'
    b'Content-Disposition: attachment; filename="report.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"JVBERi0xLjQK\r\n"
    b"--b1--\r\n"
)


@pytest.fixture
def server(start_server):
    return sieve_server(start_server)


def script(text: str) -> str:
    """A script written as an indented Python string, with the CRLF line ends of RFC 5228."""
    return textwrap.dedent(text).lstrip("\n").replace("\n", "\r\n")


def with_header(name: str, value: str, message: bytes = MESSAGE) -> bytes:
    """``message`` with the value of its (first) ``name`` field replaced."""
    head, _, rest = message.partition(f"\r\n{name}: ".encode())
    return head + f"\r\n{name}: {value}".encode() + rest[rest.index(b"\r\n") :]


def test_ereject_refuses_at_the_protocol_level(server):
    activate(
        server,
        script("""
            require "ereject";
            if header :contains "subject" "fruit" { ereject "No fruit here, thank you"; }
        """),
    )
    results = deliver_lmtp(server, MESSAGE, "bob@example.test", "carol@example.test")
    assert [(r.code, r.enhanced, r.text) for r in results] == [
        (550, "5.7.1", "<bob@example.test> No fruit here, thank you"),
        (250, "2.0.0", "<carol@example.test> Delivered"),
    ]
    [result] = deliver(server, MESSAGE, "bob@example.test")
    assert (result.code, result.enhanced, result.text) == (550, "5.7.1", "No fruit here, thank you")
    assert queued(server) == []  # refused in the session: no DSN
    [result] = deliver(server, MESSAGE, "bob@example.test", "carol@example.test")
    assert result.code == 250  # carol took it: bob's refusal goes back as a DSN (RFC 5429 2.1.2)
    [(mail_from, recipients, source, data)] = queued(server)
    assert (mail_from, recipients, source) == ("", ["ann@remote.test"], "bounce")
    report = email.message_from_bytes(data, policy=email.policy.default)
    [status] = [p for p in report.walk() if p.get_content_type() == "message/delivery-status"]
    per_recipient = status.get_payload()[1]
    assert per_recipient["Final-Recipient"] == "rfc822; bob@example.test"
    assert per_recipient["Status"] == "5.7.1"
    assert "No fruit here, thank you" in per_recipient["Diagnostic-Code"]
    assert where(server) == {}
    assert where(server, "carol@example.test") == {"INBOX": [[], []]}


def test_relational_value_and_count_with_ascii_numeric(server):
    activate(
        server,
        script("""
            require ["relational", "comparator-i;ascii-numeric", "imap4flags"];
            if header :value "ge" :comparator "i;ascii-numeric" "x-score" "10" {
              addflag "numeric_ge_10";
            }
            if header :value "lt" :comparator "i;ascii-numeric" "x-score" "9" {
              addflag "numeric_lt_9";
            }
            if header :value "ge" "x-score" "9" { addflag "casemap_ge_9"; }
            if header :count "eq" :comparator "i;ascii-numeric" "x-tag" "3" {
              addflag "three_tags";
            }
            if address :count "eq" :comparator "i;ascii-numeric" ["to", "cc"] "4" {
              addflag "four_addresses";
            }
            if header :count "gt" :comparator "i;ascii-numeric" "x-missing" "0" {
              addflag "missing_counted";
            }
        """),
    )
    for score in ("12", "5", "n/a"):
        deliver(server, with_header("X-Score", score), "bob@example.test")
    common = ["four_addresses", "three_tags"]
    assert where(server) == {
        "INBOX": [
            sorted(["numeric_ge_10", *common]),  # 12 >= 10, but "12" < "9" as text
            sorted(["numeric_lt_9", *common]),
            sorted(["numeric_ge_10", "casemap_ge_9", *common]),  # no digits: infinity
        ]
    }


def test_exists_size_and_the_logical_tests(server):
    activate(
        server,
        script("""
            require "imap4flags";
            if exists ["x-tag", "Subject"] { addflag "exists_both"; }
            if exists ["x-tag", "x-missing"] { addflag "exists_missing"; }
            if size :over 4K { addflag "over_4k"; }
            if size :under 4K { addflag "under_4k"; }
            if size :under 1M { addflag "under_1m"; }
            if allof (exists "x-tag", size :under 1M, true) { addflag "allof"; }
            if allof (exists "x-tag", false) { addflag "allof_false"; }
            if anyof (false, not exists "x-tag", not false) { addflag "anyof"; }
            if anyof (false, not true) { addflag "anyof_false"; }
            if not anyof (exists "x-missing", false) { addflag "not_anyof"; }
        """),
    )
    large = MESSAGE.replace(b"Hello.\r\n", b"Hello.\r\n" + (b"y" * 76 + b"\r\n") * 60)
    assert len(MESSAGE) < 1500 and 4096 < len(large) < 6000
    deliver(server, MESSAGE, "bob@example.test")
    deliver(server, large, "bob@example.test")
    logical = ["allof", "anyof", "exists_both", "not_anyof", "under_1m"]
    assert where(server) == {
        "INBOX": [sorted([*logical, "under_4k"]), sorted([*logical, "over_4k"])]
    }


def test_header_tests_see_only_the_top_level_fields_of_a_multipart_message(server):
    activate(
        server,
        script("""
            require ["imap4flags", "fileinto", "mailbox"];
            if header :contains "content-type" "multipart/mixed" { addflag "top_type"; }
            if header :contains "content-type" ["text/plain", "application/pdf"] {
              addflag "part_type";
            }
            if exists "content-disposition" { addflag "part_field"; }
            if header :is "x-tag" "b" { addflag "second_occurrence"; }
            if header :is "x-folded" "one two" { addflag "unfolded"; }
            if header :contains "content-type" "boundary=\\"b1\\"" { fileinto :create "Boundary"; }
        """),
    )
    deliver(server, MESSAGE, "bob@example.test")
    assert where(server) == {"Boundary": [["second_occurrence", "top_type", "unfolded"]]}


def test_setflag_addflag_removeflag_and_hasflag_are_the_stored_flags(server):
    activate(
        server,
        script(r"""
            require ["imap4flags", "fileinto", "mailbox", "variables", "relational",
                     "comparator-i;ascii-numeric"];
            setflag "\\Seen $Work";
            addflag ["\\Flagged", "$Later"];
            removeflag "$work";
            if hasflag :is "\\SEEN" { addflag "has_seen"; }
            if hasflag :contains "work" { addflag "still_work"; }
            if hasflag :count "eq" :comparator "i;ascii-numeric" "4" { addflag "four"; }
            fileinto :create "Tagged";
            setflag "v" "\\Answered $Var";
            if hasflag "v" "$var" { fileinto :create :flags "${v}" "FromVariable"; }
            removeflag "\\Seen";
            keep;
        """),
    )
    deliver(server, MESSAGE, "bob@example.test")
    kept = ["$Later", "\\Flagged", "four", "has_seen"]
    assert where(server) == {
        "INBOX": [kept],
        "Tagged": [sorted([*kept, "\\Seen"])],
        "FromVariable": [["$Var", "\\Answered"]],
    }


def test_address_parts_match_types_and_match_variables(server):
    activate(
        server,
        script(r"""
            require ["fileinto", "mailbox", "variables", "imap4flags", "body"];
            addflag "before_${1}_";
            if address :localpart :is "from" "ann.smith" { addflag "localpart"; }
            if address :all :is "to" "bob@example.test" { addflag "all"; }
            if address :all :is "to" "Bob <bob@example.test>" { addflag "all_with_name"; }
            if address :localpart :is "cc" "team" { addflag "group_name"; }
            if address :localpart "cc" "eve" { addflag "default_is"; }
            if header :is "subject" "[Fruit] *" { addflag "is_has_no_wildcards"; }
            if header :matches "subject" "[fruit] hello*" { addflag "matches"; }
            if header :matches "subject" "Hello*" { addflag "matches_is_anchored"; }
            if header :matches "x-score" "\\*" { addflag "quoted_star"; }
            if header :matches "x-score" "1?" { addflag "score_${0}_${1}"; }
            if address :all :matches "from" "*.*@*" {
              set "first" "${1}"; set "last" "${2}"; set "domain" "${3}";
            }
            if header :matches "subject" "[*] ?*" {
              addflag "d_${domain}";
              if body :text :matches "*ll*" { addflag "body_matches"; }  # leaves ${1}...
              fileinto :create "${1}/${2}-${last}-${3}";
            }
        """),
    )
    deliver(server, MESSAGE, "bob@example.test")
    flags = ["all", "before__", "body_matches", "d_Remote.Test", "default_is", "localpart"]
    assert where(server) == {"Fruit/H-Smith-ello World": [[*flags, "matches", "score_12_2"]]}


def test_comparators_octet_and_ascii_casemap(server):
    activate(
        server,
        script("""
            require ["imap4flags", "encoded-character"];
            if header :is "subject" "[fruit] HELLO world" { addflag "casemap_is"; }
            if header :is :comparator "i;octet" "subject" "[fruit] hello world" {
              addflag "octet_is";
            }
            if header :is :comparator "i;octet" "subject" "[Fruit] Hello World" {
              addflag "octet_exact";
            }
            if header :contains :comparator "i;octet" "subject" "hello" {
              addflag "octet_contains";
            }
            if header :contains :comparator "i;ascii-casemap" "subject" "HELLO" {
              addflag "casemap_contains";
            }
            if header :matches :comparator "i;octet" "subject" "*World" { addflag "octet_matches"; }
            if header :is "x-note" "${unicode:dc}BER" { addflag "casemap_folds_only_ascii"; }
            if header :is "x-note" "${unicode:fc}ber" { addflag "casemap_non_ascii_equal"; }
        """),
    )
    deliver(server, b"X-Note: =?utf-8?q?=C3=BCber?=\r\n" + MESSAGE, "bob@example.test")
    assert where(server) == {
        "INBOX": [
            [
                "casemap_contains",
                "casemap_is",
                "casemap_non_ascii_equal",
                "octet_exact",
                "octet_matches",
            ]
        ]
    }


def test_if_elsif_else_runs_the_first_branch_that_holds(server):
    activate(
        server,
        script("""
            require ["fileinto", "mailbox"];
            if header :contains "subject" "alpha" { fileinto :create "A"; }
            elsif header :contains "subject" "beta" { fileinto :create "B"; }
            elsif true { fileinto :create "Never"; stop; }
            else { fileinto :create "Else"; }
            if header :contains "subject" "gamma" { fileinto :create "G"; }
            else { if true { fileinto :create "Nested"; } }
        """),
    )
    for subject in ("alpha and beta", "just beta", "gamma"):
        deliver(server, with_header("Subject", subject), "bob@example.test")
    assert {name: len(messages) for name, messages in where(server).items()} == {
        "A": 1,
        "B": 1,
        "Never": 1,
        "Nested": 2,
    }
    boxes = mailbox_contents(server, "bob@example.test")
    assert [b"Subject: alpha and beta\r\n" in data for _, data in boxes["A"]] == [True]
    assert [b"Subject: gamma\r\n" in data for _, data in boxes["Never"]] == [True]


def test_set_modifiers_and_the_string_test(server):
    activate(
        server,
        script(r"""
            require ["variables", "fileinto", "mailbox", "imap4flags", "relational",
                     "comparator-i;ascii-numeric"];
            if header :matches "subject" "[*] *" { set "list" "${1}"; set "topic" "${2}"; }
            set :lower "lower" "${list}";
            set :upper "upper" "${list}";
            set :lowerfirst "lowerfirst" "FRUIT";
            set :upperfirst :lower "mixed" "hELLO";
            set :length "length" "${topic}";
            set :quotewildcard "quoted" "a*b?c\\d";
            set "Case" "insensitive names";
            if string :is "${quoted}" "a\\*b\\?c\\\\d" { addflag "quotewildcard"; }
            if string :is "${length}" "11" { addflag "length_11"; }
            if string :value "gt" :comparator "i;ascii-numeric" "${length}" "9" {
              addflag "numeric_gt_9";
            }
            if string :value "gt" "${length}" "9" { addflag "text_gt_9"; }
            if string :count "eq" :comparator "i;ascii-numeric" ["${list}", "", "${nothing}", "x"]
              "2" { addflag "two_non_empty"; }
            if string :is "${CASE}" "insensitive names" { addflag "names_ignore_case"; }
            if string :matches "${topic}" "* *" { set "second" "${2}"; }
            fileinto :create "${lower}-${upper}-${lowerfirst}-${mixed}-${second}";
        """),
    )
    deliver(server, MESSAGE, "bob@example.test")
    assert where(server) == {
        "fruit-FRUIT-fRUIT-Hello-World": [
            ["length_11", "names_ignore_case", "numeric_gt_9", "quotewildcard", "two_non_empty"]
        ]
    }


def test_encoded_characters_in_keys_and_mailbox_names(server):
    activate(
        server,
        script("""
            require ["encoded-character", "fileinto", "mailbox", "imap4flags"];
            if header :is "subject" "Gr${hex:C3 BC}${unicode:df}e" { addflag "decoded"; }
            if header :is "x-tag" "${hex: 61 }" { addflag "hex_spaces"; }
            if header :is "x-tag" "${hex:zz}" { addflag "invalid_is_literal"; }
            if header :is "x-literal" "${hex:zz}" { addflag "kept_literally"; }
            fileinto :create "Caf${unicode:E9}";
        """),
    )
    message = b"X-Literal: ${hex:zz}\r\n" + with_header("Subject", "=?utf-8?q?Gr=C3=BC=C3=9Fe?=")
    deliver(server, message, "bob@example.test")
    assert where(server) == {"Caf&AOk-": [["decoded", "hex_spaces", "kept_literally"]]}


def test_vacation_seconds(server):
    activate(
        server,
        script("""
            require ["vacation", "vacation-seconds"];
            vacation :seconds 0 :subject "Away" "Back soon";
        """),
    )
    deliver(server, MESSAGE, "bob@example.test")
    # :seconds 0 is raised to sieve.vacation.min-period (a day, as Pigeonhole): one reply
    deliver(server, MESSAGE, "bob@example.test")
    activate(
        server,
        script("""
            require ["vacation", "vacation-seconds"];
            vacation :seconds 3600 :subject "Away" "Back later";
        """),
    )
    deliver(server, MESSAGE, "bob@example.test")
    deliver(server, MESSAGE, "bob@example.test")  # within the hour: no reply
    replies = queued(server)
    assert [(mail_from, recipients, source) for mail_from, recipients, source, _ in replies] == [
        ("", ["ann@remote.test"], "sieve")
    ] * 2
    bodies = [
        email.message_from_bytes(data, policy=email.policy.default).get_body().get_content()
        for *_, data in replies
    ]
    assert [body.strip() for body in bodies] == ["Back soon", "Back later"]
    assert where(server) == {"INBOX": [[], [], [], []]}
