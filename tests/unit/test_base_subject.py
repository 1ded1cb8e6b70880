"""Base subject extraction (RFC 5256 section 2.1) and the other sort fields computed from
a header (``stalwart_py.mime.sortfields``), and the collations of SORT."""

from __future__ import annotations

import pytest

from protocols.imap.collation import ascii_casemap, unicode_casemap
from stalwart_py import mime
from stalwart_py.mime.sortfields import base_subject, compute, message_ids, sent_date


@pytest.mark.parametrize(
    ("subject", "base", "reply"),
    [
        ("Hello", "Hello", False),
        ("Re: Hello", "Hello", True),
        ("RE: re: Re:Hello", "Hello", True),
        ("Fwd: Hello", "Hello", True),
        ("Fw: Hello", "Hello", True),
        ("Re: [list] Fwd: Hello", "Hello", True),
        ("[list] Re: Hello", "Hello", True),
        ("Re [list]: Hello", "Hello", True),  # a blob between "Re" and the colon
        ("[PATCH 1/2] Fix it", "Fix it", False),
        ("[a][b] [c] Re: [d] Hello", "Hello", True),
        ("[PATCH]", "[PATCH]", False),  # a blob is kept when nothing would be left
        ("Re: [PATCH]", "[PATCH]", True),
        ("Hello (fwd)", "Hello", True),
        ("Hello (fwd) (FWD)  ", "Hello", True),
        ("[fwd: Hello]", "Hello", True),
        ("[Fwd: Re: Hello (fwd)]", "Hello", True),
        ("Re: [fwd: [list] Re: Hello]", "Hello", True),
        ("  Hello \t  world  ", "Hello world", False),
        ("Hello\r\n world", "Hello world", False),
        ("Reply to this", "Reply to this", False),  # "Re" without a colon is a word
        ("Fwd Hello", "Fwd Hello", False),
        ("Re:", "", True),
        ("", "", False),
        (None, "", False),
        # encoded words are decoded first, markers inside them included
        ("=?utf-8?q?Re=3A_caf=C3=A9?=", "café", True),
        ("Re: =?iso-8859-1?q?Gr=FC=DFe?= =?utf-8?b?IGF1cyBLw7Zsbg==?=", "Grüße aus Köln", True),
        ("=?utf-8?q?=5Bfwd=3A_x=5D?=", "x", True),
    ],
)
def test_base_subject(subject, base, reply):
    assert base_subject(subject) == (base, reply)


def test_sent_date_and_ids():
    assert sent_date("Tue, 2 Jan 2024 10:00:00 +0100") == 1704186000.0
    assert sent_date("2 Jan 2024 10:00 -0000") == 1704189600.0
    assert sent_date("yesterday") is None
    assert sent_date("") is None
    assert sent_date(None) is None
    assert message_ids("<a@b> junk <c> <d@e>(comment)<f@g>") == ("<a@b>", "<d@e>", "<f@g>")
    assert message_ids(None) == ()


def test_missing_date_and_addresses():
    data = b"Subject: Re: x\r\nFrom: undisclosed-recipients:;\r\n\r\nbody"
    fields = compute(data, mime.parse_message(data).envelope)
    assert fields.sent is None
    assert (fields.from_mailbox, fields.from_display, fields.cc_mailbox) == ("", "", "")
    assert fields.references == ()
    assert fields.message_id is None


def test_collations():
    assert ascii_casemap("Grüße abc") == "GRüßE ABC"
    assert unicode_casemap("abc") == "ABC"
    assert unicode_casemap("ärger") == unicode_casemap("Ärger") == "A\u0308RGER"
    assert unicode_casemap("apple") < unicode_casemap("ärger") < unicode_casemap("banana")
    assert unicode_casemap("ǆ") == "ǅ"  # titlecase, not upper case (RFC 5051 step 1)
