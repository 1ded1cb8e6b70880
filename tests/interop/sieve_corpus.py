"""The corpus of the Sieve differential test (test_sieve_pigeonhole.py): MIME messages with
their envelopes, the RFC examples of every extension we support, and generated scripts.

Two kinds of script:

* whole scripts (the RFC examples and generated combinations of actions): each run on each
  message, compared on everything they do;
* probe scripts: many generated tests packed into one script, each recording its result as
  a keyword (``if <test> { addflag "pN"; }``), so that one ``sieve-test`` run compares
  hundreds of (test, message) cases. Keys are derived from the messages' own values
  (exact, other case, a substring, wildcards in place of some characters, a number near
  one), so that probes match about as often as they do not.

Everything is generated from a fixed seed: a failure names a case that stays the same.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tests.support.pigeonhole import Envelope

SEED = 22  # the issue's number


@dataclass(frozen=True)
class Message:
    name: str
    data: bytes
    envelope: Envelope


def _crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


BOB = "bob@example.test"
MESSAGES: tuple[Message, ...] = (
    Message(
        "plain",
        _crlf(
            "Return-Path: <ann@remote.test>\nFrom: Ann Smith <ann@remote.test>\n"
            "To: Bob <bob@example.test>\nSubject: Lunch on Friday?\n"
            "Date: Fri, 4 Dec 2026 10:00:00 +0000\nMessage-ID: <p1@remote.test>\n"
            "X-Spam-Score: 3\n\nShall we have lunch on Friday? The usual place.\n"
        ),
        Envelope("ann@remote.test", BOB),
    ),
    Message(
        "alternative",
        _crlf(
            'From: "Shop" <news@shop.test>\nTo: bob@example.test\nCc: carol@example.test,'
            " Dave <dave@remote.test>\nSubject: [Offers] 50% off\nX-Spam-Score: 7\n"
            "List-Id: Shop offers <offers.shop.test>\nPrecedence: bulk\nMIME-Version: 1.0\n"
            'Content-Type: multipart/alternative; boundary="alt"\n\nThis is a preamble.\n'
            "--alt\nContent-Type: text/plain; charset=iso-8859-1\n"
            "Content-Transfer-Encoding: quoted-printable\n\nGr=FC=DFe, half price on=\n"
            " everything. Unsubscribe here.\n--alt\nContent-Type: text/html; charset=utf-8\n"
            "\n<p>Half <b>price</b> on everything</p>\n--alt--\nThe epilogue.\n"
        ),
        Envelope("bounces+123@shop.test", BOB),
    ),
    Message(
        "forwarded",
        _crlf(
            "From: carol@example.test\nTo: bob+work@example.test\nSubject: Fwd: the report\n"
            'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="mix"\n\n'
            "--mix\nContent-Type: text/plain\n\nSee below.\n--mix\n"
            "Content-Type: message/rfc822\n\nFrom: boss@corp.test\nTo: carol@example.test\n"
            "Subject: Quarterly report\n\nThe numbers are in.\n--mix\n"
            'Content-Type: application/pdf; name="r.pdf"\nContent-Transfer-Encoding: base64\n'
            "\nJVBERi0xLjQK\n--mix--\n"
        ),
        Envelope("carol@example.test", "bob+work@example.test"),
    ),
    Message(
        "encoded",
        _crlf(
            "From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <juergen@remote.test>\n"
            "To: bob@example.test\nSubject: =?iso-8859-1?q?Gr=FC=DFe?= aus =?utf-8?b?S8O2bG4=?=\n"
            "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
            "Content-Transfer-Encoding: base64\n\nR3LDvMOfZSBhdXMgS8O2bG4uCg==\n"
        ),
        Envelope("juergen@remote.test", BOB),
    ),
    Message(
        "invalid-from",
        _crlf(
            "From: Whomever\nTo: undisclosed-recipients:;\nCc: team: eve@remote.test,"
            " fay@remote.test;\nSubject: no address\n\nbody\n"
        ),
        Envelope("nobody@remote.test", BOB),
    ),
    Message(
        "folded",
        _crlf(
            "From: ann@remote.test\nTo: bob@example.test\nSubject: Project\n\tAlpha status\n"
            "X-Tag: one\nX-Tag: two\nX-Tag: three\nX-Folded: first\n second\n"
            "Received: from a.remote.test by mx.example.test; Fri, 4 Dec 2026 10:00:00 +0000\n"
            "Received: from b.remote.test by a.remote.test; Fri, 4 Dec 2026 09:59:00 +0000\n"
            "X-Spam-Score: 12\nX-Number: 0042\n\nStatus: all green.\n"
        ),
        Envelope("ann+alpha@remote.test", BOB),
    ),
    Message(
        "auto",
        _crlf(
            "From: MAILER-DAEMON@remote.test\nTo: bob@example.test\n"
            "Subject: Undelivered Mail Returned to Sender\nAuto-Submitted: auto-replied\n"
            "X-Spam-Score: 0\n\nThis is the mail system.\n"
        ),
        Envelope("MAILER-DAEMON@remote.test", BOB),  # sieve-test takes no null sender
    ),
    Message(
        "html-only",
        _crlf(
            "From: promo@deals.test\nTo: Bob <BOB@EXAMPLE.TEST>\nSubject: Deals\n"
            "MIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\n\n"
            "<html><body><h1>Deals</h1><p>Click to unsubscribe</p></body></html>\n"
        ),
        Envelope("promo@deals.test", BOB),
    ),
    Message(
        "big",
        _crlf(
            "From: ann@remote.test\nTo: bob@example.test\nSubject: a large attachment\n"
            "X-Spam-Score: 5\n\n" + "The quick brown fox jumps over the lazy dog.\n" * 1200
        ),
        Envelope("ann@remote.test", BOB),
    ),
    Message(
        "cc-only",
        _crlf(
            "From: dave@remote.test\nTo: list@lists.test\nCc: Bob <bob@example.test>\n"
            "Reply-To: list@lists.test\nSubject: Re: meeting\nX-Priority: 1\n\nAgreed.\n"
        ),
        Envelope("dave@remote.test", BOB),
    ),
    Message(
        "empty-body",
        _crlf("From: x@remote.test\nTo: bob@example.test\nSubject:\n\n"),
        Envelope("x@remote.test", BOB),
    ),
    Message(
        "resent",
        _crlf(
            "From: a@remote.test\nSender: secretary@remote.test\nResent-From: c@remote.test\n"
            "To: someone@else.test\nBcc: bob@example.test\nSubject: FYI resent\n\nFYI\n"
        ),
        Envelope("c@remote.test", BOB),
    ),
)


# -- the RFC examples ------------------------------------------------------------------------

RFC_EXAMPLES: dict[str, str] = {
    # RFC 5228 (Sieve)
    "5228-2.5.1": 'if allof (header :contains "from" "Ann", header :contains "subject" "lunch")'
    " { discard; }",
    "5228-4.1-fileinto": 'require "fileinto";\nif header :contains "from" "shop" '
    '{ fileinto "INBOX.shop"; } else { fileinto "INBOX.harassment"; }',
    "5228-4.2-redirect": 'redirect "bart@example.com";',
    "5228-4.3-keep": "if size :under 1M { keep; } else { discard; }",
    "5228-4.4-discard": 'if header :contains ["from"] ["idiot@example.com"] { discard; }',
    "5228-5.1-address": 'if address :is :all "from" "ann@remote.test" { discard; }',
    "5228-5.1-domain": 'if address :domain :is ["from", "cc"] "remote.test" { discard; }',
    "5228-5.2-allof": 'if allof (header :contains "From" "ann", header :contains "X-Tag" "two")'
    " { discard; }",
    "5228-5.3-anyof": 'if anyof (size :over 10K, header :contains "subject" "deal") { discard; }',
    "5228-5.4-envelope": 'require "envelope";\nif envelope :all :is "from" "ann@remote.test" '
    "{ discard; }",
    "5228-5.5-exists": 'if exists ["From","Date"] { discard; }',
    "5228-5.6-false": "if false { discard; }",
    "5228-5.7-header": 'if header :is ["X-Caffeine"] [""] { discard; }',
    "5228-5.8-not": 'if not exists ["From","Date"] { discard; }',
    "5228-5.9-size": "if size :over 500K { discard; }",
    "5228-9-full": 'require "fileinto";\n'
    'if header :is "Sender" "owner-ietf-mta-filters@imc.org" { fileinto "filter"; }\n'
    'elsif address :DOMAIN :is ["From", "To"] "example.com" { keep; }\n'
    'elsif anyof (NOT address :all :contains ["To", "Cc", "Bcc"] "me@example.com",'
    ' header :matches "subject" ["*make*money*fast*", "*university*dipl*mas*"])'
    ' { fileinto "spam"; }\nelse { fileinto "personal"; }',
    "5228-2.4.2.4-encoded": 'require ["encoded-character", "fileinto"];\n'
    'if header :contains "Subject" "${hex:47 72 C3 BC}" { fileinto "hex"; }\n'
    'if header :contains "Subject" "${unicode:FC DF}" { fileinto "unicode"; }\n'
    'fileinto "${hex:41 42}";',
    "5228-encoded-not-utf8": 'require ["encoded-character", "fileinto"];\n'
    'fileinto "${hex:47 72 FC}";',
    "5228-comparators": 'require ["fileinto", "comparator-i;ascii-numeric"];\n'
    'if header :is :comparator "i;octet" "subject" "lunch on friday?" { fileinto "octet"; }\n'
    'if header :is :comparator "i;ascii-numeric" "x-number" "42" { fileinto "numeric"; }\n'
    'if header :is "subject" "LUNCH ON FRIDAY?" { fileinto "casemap"; }',
    # RFC 5229 (variables)
    "5229-3-matches": 'require ["fileinto", "variables"];\n'
    'if header :matches "List-ID" "*<*@*" { fileinto "INBOX.lists.${2}"; stop; }\n'
    'if header :matches "Subject" "[*] *" { fileinto "INBOX.lists.${1}"; stop; }\n'
    'if address :matches ["To", "Cc"] ["coyote@**.com", "wile@**.com"]'
    ' { fileinto "INBOX.business.${2}"; stop; }',
    "5229-4-modifiers": 'require ["variables", "fileinto"];\n'
    'set "honorific" "Mr";\nset "first_name" "Wile";\nset "last_name" "Coyote";\n'
    'set "vacation" "Dear ${HONORIFIC} ${last_name}, I am out, please leave a message";\n'
    'set :length "len" "${vacation}";\nset :upper "up" "${first_name}";\n'
    'set :lowerfirst "lf" "${last_name}";\nset :upperfirst :lower "uf" "mIXED";\n'
    'set :quotewildcard "qw" "a*b?c\\\\";\n'
    'fileinto "${len}.${up}.${lf}.${uf}.${qw}";',
    "5229-5-string": 'require ["variables", "fileinto"];\n'
    'set "a" "juMBlEd lETteRS";\nif string :is "${a}" "jumbled letters" { fileinto "casemap"; }\n'
    'if string :count "eq" :comparator "i;ascii-numeric" ["${a}", "", "x"] "2"'
    ' { fileinto "count"; }',
    "5229-match-vars": 'require ["variables", "fileinto"];\n'
    'if header :matches "subject" "*o*" { fileinto "m.${0}.${1}.${2}.${3}"; }',
    # RFC 5230 (vacation) and RFC 6131 (vacation-seconds)
    "5230-4.8-a": 'require "vacation";\nif header :contains "subject" "cyrus"'
    ' { vacation "I\'m out -- send mail to cyrus-bugs"; } else { vacation "I\'m out"; }',
    "5230-4.8-b": 'require "vacation";\nvacation :days 23 :addresses ["tjs@example.edu",'
    ' "ts4z@landru.example.edu"] "I\'m away until October 19."',
    "5230-4.8-c": 'require ["vacation", "variables"];\nif header :matches "subject" "*"'
    ' { vacation :subject "Automatic response to: ${1}" "I\'m away"; }',
    "5230-4.8-d": 'require "vacation";\nvacation :days 7 :from "hemberger@example.com"'
    ' :handle "ran-away" "I\'m in the jungle."',
    "5230-days-bounds": 'require ["vacation", "fileinto"];\nfileinto "x";\n'
    'vacation :days 365 :subject "long" "r";',
    "6131-seconds": 'require "vacation-seconds";\nvacation :seconds 1800 "Back in half an hour";',
    # RFC 5231 (relational)
    "5231-count": 'require ["relational", "comparator-i;ascii-numeric", "fileinto"];\n'
    'if header :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] ["3"]'
    ' { fileinto "3plus"; }\n'
    'if address :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] ["3"]'
    ' { fileinto "3addresses"; }',
    "5231-value": 'require ["relational", "comparator-i;ascii-numeric", "fileinto"];\n'
    'if header :value "gt" :comparator "i;ascii-numeric" "x-spam-score" "5"'
    ' { fileinto "spam"; }\n'
    'if header :value "lt" "subject" "M" { fileinto "a-to-l"; }',
    "5231-priority": 'require ["relational", "comparator-i;ascii-numeric", "fileinto"];\n'
    'if header :value "lt" :comparator "i;ascii-numeric" ["x-priority"] ["3"]'
    ' { fileinto "Priority"; } elsif address :count "gt" :comparator "i;ascii-numeric"'
    ' ["to"] ["5"] { fileinto "SPAM"; }',
    # RFC 5232 (imap4flags)
    "5232-7": 'require ["imap4flags", "fileinto"];\n'
    'if header :contains "from" "ann" { setflag "\\\\Deleted"; fileinto "INBOX.From-ann"; }\n'
    'if header :contains "subject" "lunch" { addflag "\\\\Answered"; }\n'
    'if hasflag :contains "MyVar" "Junk" { fileinto "junk"; }',
    "5232-variables": 'require ["imap4flags", "variables", "fileinto"];\n'
    'set "MyFlags" "";\naddflag "MyFlags" "$Junk";\naddflag "MyFlags" ["\\\\Seen", "$Junk"];\n'
    'removeflag "MyFlags" "\\\\seen";\nif hasflag "MyFlags" "$junk" { fileinto :flags "${MyFlags}"'
    ' "Junk"; }\nkeep :flags "kept";',
    "5232-keep-flags": 'require ["imap4flags"];\nsetflag "\\\\Seen";\n'
    'if header :contains "subject" "deal" { addflag "$Deal"; }\n'
    'if hasflag :count "ge" "1" { removeflag "\\\\Seen"; }',
    # RFC 5173 (body)
    "5173-text": 'require ["body", "fileinto"];\n'
    'if body :text :contains "unsubscribe" { fileinto "lists"; }\n'
    'if body :raw :contains "=FC" { fileinto "raw-qp"; }\n'
    'if body :content "text/html" :contains "<b>" { fileinto "html"; }\n'
    'if body :content ["application", "image"] :matches "*" { fileinto "attached"; }',
    "5173-multipart": 'require ["body", "fileinto"];\n'
    'if body :content "multipart" :contains "preamble" { fileinto "preamble"; }\n'
    'if body :content "message/rfc822" :contains "Quarterly" { fileinto "inner"; }\n'
    'if body :content "text/" :contains "e" { fileinto "text-slash"; }',
    # RFC 5429 (reject), RFC 3894 (copy), RFC 5233 (subaddress), RFC 5490 (fileinto :create)
    "5429-reject": 'require "reject";\nif header :contains "subject" "offers"'
    ' { reject "I no longer accept offers."; }',
    "5429-reject-fileinto": 'require ["reject", "fileinto"];\nfileinto "x";\nreject "no";',
    "3894-copy": 'require ["copy", "fileinto"];\nredirect :copy "archive@example.test";\n'
    'fileinto :copy "Archive";',
    "5233-subaddress": 'require ["envelope", "subaddress", "fileinto"];\n'
    'if envelope :detail "to" "work" { fileinto "work"; }\n'
    'if envelope :user "from" "ann" { fileinto "from-ann"; }\n'
    'if address :detail :is "to" "" { fileinto "empty-detail"; }\n'
    'if envelope :detail :is "from" "" { fileinto "from-empty-detail"; }',
    "5490-create": 'require ["fileinto", "mailbox"];\nfileinto :create "Archive/2026";',
    # RFC 5260 (date, index): on the Date field, never the clock
    "5260-date": 'require ["date", "relational", "fileinto", "variables"];\n'
    'if date :value "ge" :originalzone "date" "date" "2026-01-01" { fileinto "this-year"; }\n'
    'if date :is :zone "-0500" "date" "hour" "05" { fileinto "five-in-new-york"; }\n'
    'if date :matches "date" "weekday" "*" { fileinto "day-${1}"; }\n'
    'if date :matches :originalzone "date" "std11" "*" { fileinto "std11"; }\n'
    'if date :is "received" "year" "2026" { fileinto "received"; }',
    "5260-index": 'require ["index", "date", "fileinto", "relational"];\n'
    'if header :index 2 :contains "received" "a.remote.test" { fileinto "second"; }\n'
    'if header :index 1 :last :contains "received" "b.remote.test" { fileinto "last"; }\n'
    'if address :index 1 :is "to" "bob@example.test" { fileinto "first-to"; }',
    # RFC 5183 (environment), RFC 5463 (ihave)
    "5183-environment": 'require ["environment", "fileinto", "variables"];\n'
    'if environment :is "phase" "during" { fileinto "during"; }\n'
    'if environment :is "location" "MDA" { fileinto "mda"; }\n'
    'if environment :contains "vnd.unknown" "" { fileinto "unknown"; }',
    "5463-ihave": 'require ["ihave", "fileinto"];\n'
    'if ihave "fileinto" { fileinto "has-fileinto"; }\n'
    'if ihave ["fileinto", "x-unknown-extension"] { fileinto "has-unknown"; }\n'
    'if ihave "relational" { if header :value "gt" "subject" "M" { fileinto "later"; } }',
    # draft-ietf-sieve-regex
    "regex": 'require ["regex", "variables", "fileinto"];\n'
    'if header :regex "subject" "^(lunch|deals)" { fileinto "regex"; }\n'
    'if address :regex :domain "from" "^[a-z]+\\\\.test$" { fileinto "dot-test"; }\n'
    'if header :regex "subject" "([A-Z][a-z]+) ([a-z]+)" { fileinto "w-${1}-${2}"; }',
    # RFC 5703 (mime, foreverypart, extracttext)
    "5703-mime": 'require ["mime", "fileinto"];\n'
    'if header :mime :anychild :contenttype "Content-Type" "application/pdf" { fileinto "pdf"; }\n'
    'if header :mime :type "Content-Type" "multipart" { fileinto "multipart"; }\n'
    'if header :mime :param "charset" :anychild "Content-Type" "iso-8859-1"'
    ' { fileinto "latin1"; }\n'
    'if exists :mime :anychild "Content-Transfer-Encoding" { fileinto "cte"; }',
    "5703-foreverypart": 'require ["foreverypart", "mime", "variables", "extracttext",'
    ' "fileinto"];\n'
    'set "n" "";\nforeverypart { set "n" "${n}x";\n'
    '  if header :mime :subtype "Content-Type" "plain" { extracttext :first 10 "t";'
    ' fileinto "plain-${t}"; }\n'
    '  if header :mime :type "Content-Type" "message" { break; } }\n'
    'fileinto "parts-${n}";',
    # RFC 5293 (editheader): later tests see the edited header; RFC 7352 (duplicate)
    "5293-editheader": 'require ["editheader", "fileinto", "relational", "index"];\n'
    'addheader "X-Sieve" "seen";\nif header :is "x-sieve" "seen" { fileinto "added"; }\n'
    'deleteheader "x-tag";\nif not exists "x-tag" { fileinto "deleted"; }\n'
    'addheader :last "X-Last" "1";\ndeleteheader :index 1 "received";\n'
    'if header :count "eq" "received" "1" { fileinto "one-received"; }\n'
    'deleteheader :contains "subject" "lunch";\nif exists "subject" { fileinto "subject"; }\n'
    'deleteheader "received";',
    "7352-duplicate": 'require ["duplicate", "fileinto"];\n'
    'if duplicate { fileinto "dup"; } else { fileinto "first"; }',
    # RFC 5703: walks that name every part, parameters, break :name, extracttext lengths
    "5703-type": 'require ["mime", "fileinto"];\n'
    'if header :mime :type "Content-Type" "image" { fileinto "images"; }\n'
    'if header :mime :anychild :contenttype "Content-Type" "text/html" { fileinto "html"; }',
    "5703-walk": 'require ["mime", "foreverypart", "variables", "fileinto"];\n'
    'foreverypart { if header :mime :matches :contenttype "content-type" "*" {'
    ' fileinto "T-${1}"; } }',
    "5703-walk-count": 'require ["mime", "foreverypart", "variables", "fileinto"];\n'
    'set "n" "";\nforeverypart { set "n" "${n}x";'
    ' if not exists :mime "content-type" { fileinto "none-${n}"; } }\nfileinto "parts-${n}";',
    "5703-param": 'require ["mime", "foreverypart", "variables", "fileinto"];\n'
    'foreverypart { if header :mime :param ["charset", "filename", "name"] :matches'
    ' "content-type" "*" { fileinto "P-${1}"; }'
    ' if header :mime :param "filename" :matches "content-disposition" "*" { fileinto "F-${1}"; }'
    ' if header :mime :type :matches "content-disposition" "*" { fileinto "D-${1}"; } }',
    "5703-anychild": 'require ["mime", "fileinto", "relational", "comparator-i;ascii-numeric"];\n'
    'if address :mime :anychild :domain "from" "remote.test" { fileinto "any-remote"; }\n'
    'if exists :mime :anychild "content-transfer-encoding" { fileinto "cte"; }\n'
    'if header :mime :anychild :count "ge" :comparator "i;ascii-numeric" "content-type" "3"'
    ' { fileinto "three-types"; }',
    "5703-break": 'require ["mime", "foreverypart", "variables", "fileinto"];\nset "n" "";\n'
    'foreverypart :name "outer" { set "n" "${n}o"; foreverypart { set "n" "${n}i";'
    ' if header :mime :type "content-type" "text" { break :name "outer"; } } }\n'
    'fileinto "walk-${n}";',
    "5703-extract": 'require ["mime", "foreverypart", "variables", "extracttext", "fileinto"];\n'
    'foreverypart { if header :mime :type "content-type" "text" { extracttext :first 12 "t";'
    ' if string :matches "${t}" "*" { set :length "l" "${1}"; fileinto "len-${l}"; } } }',
    # RFC 5435 (enotify): the notify tests and :encodeurl (the notify action itself is not
    # compared: sieve-test only prints it; tests/unit/test_sieve_notify.py covers it)
    "5435-tests": 'require ["enotify", "variables", "fileinto"];\n'
    'if valid_notify_method "mailto:a@example.org" { fileinto "valid-1"; }\n'
    'if valid_notify_method ["mailto:a@example.org", "xmpp:b@example.org"] { fileinto "v-2"; }\n'
    'if valid_notify_method "mailto:a@example.org?subject=a%20b&body=x" { fileinto "valid-3"; }\n'
    'if valid_notify_method "http://example.org/" { fileinto "valid-4"; }\n'
    'if notify_method_capability "mailto:a@example.org" "online" "maybe" { fileinto "maybe"; }\n'
    'if notify_method_capability "mailto:a@example.org" "online" "yes" { fileinto "yes"; }\n'
    'if notify_method_capability "mailto:a@example.org" "other" "maybe" { fileinto "other"; }\n'
    'if header :matches "subject" "*" { set :encodeurl "s" "${1}"; fileinto "enc-${s}"; }',
    "5435-notify": 'require ["enotify", "fileinto"];\n'
    'notify :importance "1" "mailto:alice@example.org?subject=hi";\nfileinto "notified";',
    # The issue's bugs, as they were found.
    "bug-hasflag-split": 'require ["imap4flags", "fileinto"];\nsetflag "A B";\n'
    'if hasflag :is "b A" { fileinto "yes"; }',
    "bug-redirect-named": 'redirect "Name <named@example.org>";',
    "bug-localpart-invalid": 'require "fileinto";\n'
    'if address :localpart :matches "from" "*" { fileinto "lp"; }',
    "decided-flags-twice": 'require ["fileinto", "imap4flags"];\n'
    'fileinto :flags "\\\\Seen" "A";\nfileinto :flags "other" "A";',
    "decided-tab": 'require ["fileinto", "variables"];\n'
    'if header :matches "subject" "*" { fileinto "${1}"; }',
    # RFC 5260 (date and index): section 7's examples, then every date-part of the Date field
    "5260-7-hours": 'require ["date", "relational", "fileinto"];\n'
    'if allof(header :contains "from" "ann", date :value "ge" :originalzone "date" "hour" "09",'
    ' date :value "lt" :originalzone "date" "hour" "17") { fileinto "urgent"; }',
    "5260-7-weekend": 'require ["date", "fileinto"];\n'
    'if anyof(date :is "received" "weekday" "0", date :is "received" "weekday" "6")'
    ' { fileinto "weekend"; }',
    "5260-7-currentdate": 'require ["date", "variables", "fileinto"];\n'
    'if currentdate :matches "year" "*" { set "year" "${1}"; }\n'
    'if currentdate :value "ge" "date" "2026-01-01" { fileinto "after-${year}"; }',
    "5260-parts": 'require ["date", "variables", "fileinto"];\n'
    + "".join(
        f'if date :matches :zone "{zone}" "date" "{part}" "*"'
        f' {{ fileinto "{part}{zone}=${{1}}"; }}\n'
        for zone in ("+0100", "-0930")
        for part in (
            "year",
            "month",
            "day",
            "date",
            "julian",
            "hour",
            "minute",
            "second",
            "time",
            "iso8601",
            "zone",
            "weekday",
        )
    )
    + 'if date :matches :originalzone "date" "std11" "*" { fileinto "std11=${1}"; }',
    "5260-index-last": 'require ["date", "index", "variables", "fileinto"];\n'
    'if date :matches :originalzone :index 1 :last "received" "time" "*" { fileinto "l${1}"; }\n'
    'if header :index 2 :matches "received" "*by *;*" { fileinto "by-${2}"; }\n'
    'if address :index 1 :last :matches "to" "*" { fileinto "to-${1}"; }',
    # RFC 5293 (editheader): later tests see the edits
    "5293-edits": 'require ["editheader", "fileinto", "relational",'
    ' "comparator-i;ascii-numeric"];\n'
    'addheader "X-Source" "filter";\naddheader :last "X-Source" "last";\n'
    'deleteheader :index 1 :last "x-source";\ndeleteheader :contains "subject" "u";\n'
    'deleteheader "received";\n'
    'if header :is "x-source" "filter" { fileinto "added"; }\n'
    'if not exists "subject" { fileinto "subject-deleted"; }\n'
    'if header :count "ge" :comparator "i;ascii-numeric" "received" "1" { fileinto "protected"; }',
    # RFC 5463 (ihave, error)
    "5463-ihave-error": 'require ["ihave", "fileinto"];\n'
    'if ihave "x-frobnicate" { frobnicate :loudly; } elsif ihave "mailbox"'
    ' { fileinto :create "has-mailbox"; }\n'
    'if header :contains "subject" "lunch" { error "no lunch filtering"; }',
    # draft-ietf-sieve-regex
    "regex-groups": 'require ["regex", "variables", "fileinto"];\n'
    'if header :regex "subject" "^\\\\[([a-z]+)\\\\] ([0-9]+)%" { fileinto "${1}-${2}"; }\n'
    'if address :regex :domain "from" "^([[:alpha:]]+)\\\\.test$" { fileinto "dom-${1}"; }\n'
    'if header :regex :comparator "i;octet" "subject" "^lunch" { fileinto "octet"; }\n'
    'if header :regex "subject" "(x)|(on)" { fileinto "alt-[${1}][${2}]"; }',
}


# -- generated probes ------------------------------------------------------------------------

HEADERS = ("from", "to", "cc", "subject", "x-spam-score", "x-tag", "list-id", "x-folded",
           "reply-to", "sender", "resent-from", "bcc", "x-number", "auto-submitted",
           "date")  # fmt: skip
ADDRESS_HEADERS = ("from", "to", "cc", "reply-to", "sender", "resent-from", "bcc")
PARTS = ("", ":all", ":localpart", ":domain", ":user", ":detail")
COMPARATORS = ("", ':comparator "i;octet"', ':comparator "i;ascii-casemap"')
RELATIONS = ("gt", "ge", "lt", "le", "eq", "ne")
ENVELOPE_KEYS = ("ann@remote.test", "bob@example.test", "", "work", "remote.test", "bob", "ann",
                 "*@*", "alpha", "bob+work@example.test", "BOB")  # fmt: skip
BODY_KEYS = ("price", "unsubscribe", "Gr", "<b>", "numbers", "*", "green", "preamble", "epilogue",
             "Quarterly", "fox", "=FC", "half", "lunch", "Subject:")  # fmt: skip


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _key_from(value: str, rng: random.Random) -> str:
    """A key derived from a value the message has: it matches often, but not always."""
    choice = rng.randrange(7)
    if not value or choice == 0:
        return rng.choice(["", "x", "remote", "Lunch", "*", "?", "0", "10"])
    if choice == 1:
        return value
    if choice == 2:
        return value.swapcase()
    if choice == 3:
        start = rng.randrange(len(value))
        return value[start : start + rng.randrange(1, 8)]
    if choice == 4:  # wildcards in place of some characters
        chars = list(value)
        for _ in range(rng.randrange(1, 3)):
            at = rng.randrange(len(chars))
            chars[at] = rng.choice("*?")
        return "".join(chars)
    if choice == 5:
        return "*" + value[rng.randrange(len(value)) :]
    return value[: rng.randrange(len(value) + 1)] + rng.choice(["*", "", "x"])


def _values(header: str) -> list[str]:
    """Values of ``header`` across the corpus (raw, unfolded), to derive keys from."""
    out = []
    for message in MESSAGES:
        head = message.data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
        for line in head.replace("\r\n ", " ").replace("\r\n\t", "\t").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == header:
                out.append(value.strip())
    return out


def _match_type(rng: random.Random, numeric_ok: bool) -> str:
    kind = rng.choice(["", ":is", ":contains", ":matches", ":value", ":count"])
    if kind in (":value", ":count"):
        kind += " " + _quote(rng.choice(RELATIONS))
    comparator = rng.choice(COMPARATORS)
    numeric_kind = kind.startswith((":value", ":count", ":is")) or not kind
    if numeric_ok and numeric_kind and rng.random() < 0.4:
        comparator = ':comparator "i;ascii-numeric"'
    return f"{kind} {comparator}".strip()


def _probe_test(rng: random.Random) -> str:
    kind = rng.choice(["header", "header", "address", "address", "envelope", "exists", "size",
                       "body", "string", "hasflag", "not", "anyof"])  # fmt: skip
    if kind == "header":
        header = rng.choice(HEADERS)
        match = _match_type(rng, True)
        keys = [
            _key_from(rng.choice(_values(header) or [""]), rng) for _ in range(rng.randint(1, 2))
        ]
        if ":count" in match or "numeric" in match:
            keys = [str(rng.randrange(0, 14))]
        return f"header {match} {_quote(header)} [{', '.join(map(_quote, keys))}]"
    if kind == "address":
        header = rng.choice(ADDRESS_HEADERS)
        match = _match_type(rng, True)
        keys = [_key_from(v, rng) for v in rng.sample(_values(header) or [""], 1)]
        keys += [rng.choice(["remote.test", "bob", "ann", "example.test", "work", ""])]
        if ":count" in match or "numeric" in match:
            keys = [str(rng.randrange(0, 4))]
        return (
            f"address {rng.choice(PARTS)} {match} {_quote(header)} [{', '.join(map(_quote, keys))}]"
        )
    if kind == "envelope":
        match = _match_type(rng, False).replace(':comparator "i;ascii-numeric"', "")
        part = rng.choice(["from", "to"])
        key = rng.choice(ENVELOPE_KEYS)
        if ":count" in match:
            key = str(rng.randrange(0, 3))
        return f"envelope {rng.choice(PARTS)} {match} {_quote(part)} {_quote(key)}"
    if kind == "exists":
        return (
            f"exists [{', '.join(_quote(rng.choice(HEADERS)) for _ in range(rng.randint(1, 2)))}]"
        )
    if kind == "size":
        limit = rng.choice(["100", "500", "1K", "10K", "50K"])
        return f"size {rng.choice([':over', ':under'])} {limit}"
    if kind == "body":
        transform = rng.choice(["", ":raw", ":text", ':content "text"', ':content "text/plain"',
                                ':content "multipart"', ':content "text/html"',
                                ':content ""', ':content "message/rfc822"'])  # fmt: skip
        key = rng.choice(BODY_KEYS)
        match = rng.choice([":contains", ":is", ":matches"])
        if match == ":matches":
            key = f"*{key}*"
        return f"body {transform} {match} {_quote(key)}"
    if kind == "string":
        match = _match_type(rng, True)
        source = rng.choice(["${subj}", "${from}", "abc", "", "${subj}${from}", "12"])
        key = rng.choice(["*", "abc", "12", "", "lunch*", "*@*", "?*", "ABC", "3"])
        return f"string {match} {_quote(source)} {_quote(key)}"
    if kind == "hasflag":
        match = rng.choice([":is", ":contains", ":matches", ':count "ge"', ':value "gt"'])
        key = rng.choice(["\\\\Seen", "flag1", "FLAG1 other", "*", "1", "f*", "\\\\seen flag2"])
        return f"hasflag {match} {_quote(key)}"
    if kind == "not":
        return f"not {_probe_test(rng)}"
    return f"anyof ({_probe_test(rng)}, {_probe_test(rng)})"


PROBE_HEAD = (
    'require ["envelope", "body", "variables", "imap4flags", "relational", "subaddress",'
    ' "comparator-i;ascii-numeric"];\n'
    'set "subj" "";\nset "from" "";\n'
    'if header :matches "subject" "*" { set "subj" "${1}"; }\n'
    'if address :all :matches "from" "*" { set "from" "${1}"; }\n'
    'setflag "flag1 \\\\Seen";\naddflag "flag2";\n'
)


def probe_scripts(count: int, per_script: int) -> list[tuple[str, list[str]]]:
    """``count`` scripts of ``per_script`` probes each: (script, [probe tests])."""
    rng = random.Random(SEED)
    out = []
    for _ in range(count):
        tests = [_probe_test(rng) for _ in range(per_script)]
        body = "".join(
            f'if {test} {{ set "hit" "${{hit}} p{n}"; }}\n' for n, test in enumerate(tests)
        )
        out.append((PROBE_HEAD + 'set "hit" "";\n' + body + 'addflag "${hit}";\n', tests))
    return out


# -- generated whole scripts: combinations of actions ----------------------------------------

ACTION_HEAD = (
    'require ["fileinto", "copy", "imap4flags", "variables", "envelope", "body", "relational",'
    ' "subaddress", "comparator-i;ascii-numeric", "mailbox", "vacation", "reject"];\n'
)
MESSAGES_PER_ACTION_SCRIPT = 4


def _flags(rng: random.Random) -> str:
    choices = ["\\\\Seen", "\\\\Flagged", "$Work", "later", "\\\\Answered"]
    flags = rng.sample(choices, rng.randint(1, 2))
    return "[" + ", ".join(f'"{flag}"' for flag in flags) + "]"


def _action(rng: random.Random) -> str:
    kind = rng.choice(["keep", "fileinto", "fileinto", "redirect", "discard", "stop", "flags",
                       "flags", "set", "vacation", "reject"])  # fmt: skip
    if kind == "keep":
        return "keep;" if rng.random() < 0.5 else f"keep :flags {_flags(rng)};"
    if kind == "fileinto":
        tags = [t for t in (":copy", ":create") if rng.random() < 0.3]
        if rng.random() < 0.4:
            tags.append(f":flags {_flags(rng)}")
        box = rng.choice(["Work", "Lists", "Archive", "INBOX", "box-${v}", "Lists/${1}"])
        return f'fileinto {" ".join(tags)} "{box}";'.replace("  ", " ")
    if kind == "redirect":
        copy = ":copy " if rng.random() < 0.4 else ""
        target = rng.choice(["r1@remote.test", "r2@remote.test", "Some One <r3@remote.test>"])
        return f'redirect {copy}"{target}";'
    if kind == "flags":
        command = rng.choice(["setflag", "addflag", "removeflag"])
        return f"{command} {_flags(rng)};"
    if kind == "set":
        modifier = rng.choice(["", ":lower ", ":upper ", ":length "])
        return f'set {modifier}"v" "{rng.choice(["A", "b c", "${1}"])}";'
    if kind == "vacation":
        return f'vacation :days {rng.choice([1, 7, 100])} :subject "Away ${{v}}" "Back soon";'
    if kind == "reject":
        return 'reject "Not wanted";'
    return kind + ";"


def action_scripts(count: int) -> list[tuple[str, tuple[str, ...]]]:
    """``count`` scripts of conditions and actions, each with the messages it runs on."""
    rng = random.Random(SEED + 1)
    names = [message.name for message in MESSAGES]
    out = []
    for number in range(count):
        lines = [ACTION_HEAD, 'set "v" "x";\n']
        for _ in range(rng.randint(2, 4)):
            actions = " ".join(_action(rng) for _ in range(rng.randint(1, 2)))
            if rng.random() < 0.2:
                lines.append(actions + "\n")
                continue
            test = _probe_test(rng)
            otherwise = f" else {{ {_action(rng)} }}" if rng.random() < 0.3 else ""
            lines.append(f"if {test} {{ {actions} }}{otherwise}\n")
        start = number * MESSAGES_PER_ACTION_SCRIPT % len(names)
        chosen = tuple((names + names)[start : start + MESSAGES_PER_ACTION_SCRIPT])
        out.append(("".join(lines), chosen))
    return out
