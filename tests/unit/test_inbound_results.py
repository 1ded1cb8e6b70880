"""Authentication-Results (RFC 8601): the field we write, its quoting, and the removal of
fields that claim our authserv-id (section 5)."""

from __future__ import annotations

from stalwart_py.inbound.results import (
    AuthenticationResults,
    authserv_id_of,
    comment,
    pvalue,
    remove_ours,
)

HOST = "mail.example.test"


def test_the_field_has_one_resinfo_per_line_and_our_authserv_id():
    results = AuthenticationResults(HOST)
    results.add("spf", "pass", [("smtp.mailfrom", "alice@sender.test")], reason="allowed")
    results.add(
        "dkim",
        "fail",
        [("header.d", "sender.test"), ("header.s", "s1"), ("header.b", "Ab/c+d=")],
        reason="bad signature",
    )
    results.add("dmarc", "pass", [("header.from", "sender.test"), ("policy.dmarc", None)])
    assert results.header() == (
        b"Authentication-Results: mail.example.test;\r\n"
        b"\tspf=pass (allowed) smtp.mailfrom=alice@sender.test;\r\n"
        b'\tdkim=fail (bad signature) header.d=sender.test header.s=s1 header.b="Ab/c+d=";\r\n'
        b"\tdmarc=pass header.from=sender.test\r\n"
    )


def test_nothing_checked_is_none():
    assert AuthenticationResults(HOST).header() == (
        b"Authentication-Results: mail.example.test;\r\n\tnone\r\n"
    )


def test_values_are_bare_only_when_a_token_or_an_address():
    assert pvalue("sender.test") == "sender.test"
    assert pvalue("a.b@sender.test") == "a.b@sender.test"
    assert pvalue("@sender.test") == "@sender.test"
    assert pvalue("a b@x.test") == '"a b@x.test"'
    assert pvalue('say "hi"\\') == '"say \\"hi\\"\\\\"'
    assert pvalue("") == '""'
    assert pvalue("x;y") == '"x;y"'


def test_comments_cannot_close_themselves_or_the_field():
    assert comment("a (nested) \\ reason\r\nBcc: x") == " (a nested reason Bcc: x)"
    assert comment(None) == ""
    assert comment("()") == ""
    assert len(comment("x" * 1000)) < 210


def test_authserv_id_after_comments_quotes_and_versions():
    assert authserv_id_of(" mail.example.test; spf=pass") == "mail.example.test"
    assert authserv_id_of("mail.example.test 1; spf=pass") == "mail.example.test"
    assert authserv_id_of(" (forged (nested)) MAIL.example.test;none") == "MAIL.example.test"
    assert authserv_id_of(' "mail.example.test"; none') == "mail.example.test"
    assert authserv_id_of("other.test;") == "other.test"


def test_fields_with_our_authserv_id_are_removed_and_others_kept():
    message = (
        b"Received: from x\r\n"
        b"Authentication-Results: Mail.Example.Test;\r\n\tspf=pass smtp.mailfrom=bank.test\r\n"
        b"Authentication-Results: other.test; dkim=pass header.d=bank.test\r\n"
        b"authentication-results : mail.example.test 1; dmarc=pass\r\n"
        b"ARC-Authentication-Results: i=1; mail.example.test; dmarc=pass\r\n"
        b"Authentication-Results: (x) mail.example.test. ; none\r\n"
        b"Subject: hi\r\n"
        b"\r\n"
        b"Authentication-Results: mail.example.test; in the body stays\r\n"
    )
    cleaned, removed = remove_ours(message, HOST)
    assert removed == 3
    assert cleaned == (
        b"Received: from x\r\n"
        b"Authentication-Results: other.test; dkim=pass header.d=bank.test\r\n"
        b"ARC-Authentication-Results: i=1; mail.example.test; dmarc=pass\r\n"
        b"Subject: hi\r\n"
        b"\r\n"
        b"Authentication-Results: mail.example.test; in the body stays\r\n"
    )


def test_a_message_without_ours_is_returned_as_is():
    message = b"Subject: hi\r\n\r\nbody\r\n"
    assert remove_ours(message, HOST) == (message, 0)
    assert remove_ours(b"", HOST) == (b"", 0)
    assert remove_ours(b"Authentication-Results: mail.example.test; none", HOST) == (b"", 1)
