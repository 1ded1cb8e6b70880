"""The Sieve fixes of issue 22 end to end: each script is activated over ManageSieve, the
message that showed the bug is delivered over SMTP or LMTP, and the outcome is read back over
IMAP (mailboxes and flags) or from the outbound queue (redirects, vacation replies).

Unit tests of the same cases: tests/unit/test_sieve_fixes.py."""

from __future__ import annotations

import email
import email.policy

import pytest

from tests.support.managesieve import (
    PASSWORD,
    activate,
    config,
    deliver,
    deliver_lmtp,
    mailbox_contents,
    queued,
    sieve_server,
    where,
)
from tests.unit.test_sieve_fixes import INVALID_FROM, NESTED, TAB_SUBJECT

pytestmark = pytest.mark.filterwarnings("ignore:Credentials are sent over an unencrypted")


@pytest.fixture
def server(start_server):
    return sieve_server(start_server)


def test_vacation_seconds_alone_and_flag_lists(server):
    # Bug 1: "vacation-seconds" implies "vacation" (RFC 6131 2); bug 2: hasflag keys are
    # space-separated flag lists (RFC 5232 4).
    activate(
        server,
        'require ["vacation-seconds", "imap4flags"];\r\n'
        'setflag "A B";\r\n'
        'if hasflag :is "b A" { addflag "\\\\Flagged"; }\r\n'
        'vacation :seconds 60 "Away";\r\n',
    )
    [result] = deliver_lmtp(server, NESTED, "bob@example.test")
    assert result.code == 250
    assert where(server) == {"INBOX": [["A", "B", "\\Flagged"]]}
    [(mail_from, recipients, source, data)] = queued(server)
    assert (mail_from, recipients, source) == ("", ["ann@remote.test"], "sieve")
    assert email.message_from_bytes(data, policy=email.policy.default)["Subject"] == "Auto: nested"


def test_body_content_multipart_and_message(server):
    # Bugs 3 and 4: preamble/epilogue, the enclosed header, and "text/" matching nothing.
    activate(
        server,
        'require ["body", "fileinto", "imap4flags"];\r\n'
        'if body :content "multipart" :contains "preamble" { addflag "preamble"; }\r\n'
        'if body :content "multipart" :contains "epilogue" { addflag "epilogue"; }\r\n'
        'if body :content "message/rfc822" :contains "forwarded one" { addflag "inner"; }\r\n'
        'if body :content "text/" :contains "text part" { addflag "text_slash"; }\r\n'
        'if body :content "text" :contains "text part" { addflag "text"; }\r\n',
    )
    deliver(server, NESTED, "bob@example.test")
    assert where(server) == {"INBOX": [["epilogue", "inner", "preamble", "text"]]}


def test_invalid_address_parts_and_redirect_to_a_named_address(server):
    # Bug 5: :localpart of "From: Whomever" matches nothing, :all matches it; bug 6: a
    # redirect to "Name <addr>" is accepted at upload (ManageSieve) and sends to the addr.
    activate(
        server,
        'require ["fileinto", "imap4flags", "copy"];\r\n'
        'if address :localpart :matches "from" "*" { addflag "localpart"; }\r\n'
        'if address :all :is "from" "whomever" { addflag "all"; }\r\n'
        'redirect :copy "Named Person <named@example.org>";\r\n',
    )
    deliver(server, INVALID_FROM, "bob@example.test")
    assert where(server) == {"INBOX": [["all"]]}
    [(_, recipients, _, _)] = queued(server)
    assert recipients == ["named@example.org"]


def test_a_tab_from_unfolding_becomes_a_space_in_the_mailbox_name(server):
    activate(
        server,
        'require ["fileinto", "variables", "mailbox"];\r\n'
        'if header :matches "subject" "*" { fileinto :create "${1}"; }\r\n',
    )
    deliver(server, TAB_SUBJECT, "bob@example.test")
    assert where(server) == {"Project Alpha": [[]]}


def test_filing_twice_into_one_mailbox_unions_the_flags(server):
    # RFC 5228 4.2 files a message once per mailbox; RFC 5232 does not say whose flags the
    # one copy gets when two actions ask for different ones. Pigeonhole takes the last
    # action's; we keep the union, so no flag a script asked for is silently lost (each
    # :flags argument and each keep is a request to store the message WITH those flags).
    activate(
        server,
        'require ["fileinto", "imap4flags", "mailbox"];\r\n'
        'fileinto :create :flags "\\\\Seen" "Archive";\r\n'
        'fileinto :create :flags ["first", "second"] "Archive";\r\n'
        'keep :flags "kept";\r\n'
        'keep :flags "\\\\Answered";\r\n',
    )
    deliver(server, NESTED, "bob@example.test")
    assert where(server) == {
        "INBOX": [["\\Answered", "kept"]],
        "Archive": [["\\Seen", "first", "second"]],
    }
    assert len(mailbox_contents(server, "bob@example.test")["Archive"]) == 1


def test_vacation_period_bounds_come_from_the_configuration(start_server):
    # [sieve.vacation]: with both bounds 0, :days 7 becomes 0 and every message is answered.
    server = start_server(
        config(extra="managesieve.auth.require-tls = false\n")
        + '\n[sieve.vacation]\nmin-period = "0s"\nmax-period = "0s"\n'
    )
    server.add_account("bob@example.test", PASSWORD)
    activate(server, 'require "vacation";\r\nvacation :days 7 "Away";\r\n')
    deliver(server, NESTED, "bob@example.test")
    deliver(server, NESTED, "bob@example.test")
    assert len(queued(server)) == 2
