"""The junk classifier's parts without I/O: tokens, the Robinson-Fisher score, the header
fields and the RFC 5235 values, and accuracy on the generated corpus."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stalwart_py.junk.bayes import chi2q, classify, combine, token_probability
from stalwart_py.junk.headers import spamtest_value, status_fields, strip_fields
from stalwart_py.junk.tokens import (
    _URL_HOST,
    _WORD,
    _worth_counting,
    auth_tokens,
    tokenize,
    url_hosts,
    words,
)
from stalwart_py.sieve.message import MessageView
from tests.support.junk_corpus import corpus

HOST = "mail.example.test"


def test_words_drop_short_numeric_and_random_strings():
    text = "Hello WORLD, it's 2026: order 12345 ref x7kq9zt2mvb at 0xdeadbeef1234 café ok"
    assert words(text) == {"hello", "world", "it's", "order", "ref", "café"}


# Words, spaces of several kinds, apostrophes, underscores, links in either case, digits.
_PIECES = st.sampled_from(
    ["free", "Cash", "it's", "o''k", "x_y", "café", "K\u212aL", "1234", "https://Shop.Example/a",
     "HTTP://b.example", "://", "'", " ", "\r\n", "\t", "\u3000", "\u00a0", "\x1c", ",", "."]
)  # fmt: skip


@given(st.lists(_PIECES, max_size=60).map("".join))
def test_words_and_links_read_per_distinct_chunk_find_what_the_whole_text_has(text):
    # words() and url_hosts() search each distinct whitespace-separated chunk once; no word
    # or link spans whitespace, so they find exactly what a search of the whole text finds.
    whole = {word for word in _WORD.findall(text.lower()) if _worth_counting(word)}
    assert words(text) == whole
    assert set(url_hosts(text)) == set(_URL_HOST.findall(text))


def test_header_words_are_prefixed_and_the_body_words_are_not():
    data = (
        b"From: Ann <ann@Remote.Example>\r\nSubject: Cheap watches\r\n"
        b"Content-Type: text/html\r\n\r\n<p>Buy <b>watches</b> at https://Shop.Example/x</p>"
        b"<script>ignored()</script>"
    )
    tokens = tokenize(data, HOST)
    assert {"subject:cheap", "subject:watches", "from:ann", "from:remote"} <= tokens
    assert {"buy", "watches", "from-domain:remote.example", "url:shop.example"} <= tokens
    assert "ignored" not in tokens and "cheap" not in tokens


def test_only_our_authentication_results_become_tokens():
    data = (
        b"Authentication-Results: evil.example; spf=pass smtp.mailfrom=a@b.example\r\n"
        b"Authentication-Results: mail.example.test (ours);\r\n\tiprev=fail"
        b" policy.iprev=192.0.2.1;\r\n\tspf=softfail (not authorized) smtp.mailfrom=x@y.example;"
        b"\r\n\tdkim=pass header.d=y.example; dkim=fail header.d=z.example;\r\n\tdmarc=none\r\n"
        b"\r\nbody\r\n"
    )
    assert auth_tokens(MessageView(data), "MAIL.example.test") == {
        "auth:iprev:fail",
        "auth:spf:softfail",
        "auth:dkim:pass",
        "auth:dkim:fail",
        "auth:dmarc:none",
    }
    assert not auth_tokens(MessageView(data), "other.example")


def test_token_probability_is_pulled_towards_neutral_when_rare():
    assert token_probability(0, 0, 10, 10) == 0.5
    once = token_probability(1, 0, 10, 10)
    often = token_probability(20, 0, 20, 20)
    assert 0.5 < once < often < 1.0
    assert token_probability(0, 20, 20, 20) < 0.05


def test_fisher_combining():
    assert combine([]) == 0.5
    assert combine([0.99] * 20) > 0.99
    assert combine([0.01] * 20) < 0.01
    # contradicting evidence stays in the middle instead of rushing to an extreme
    assert 0.3 < combine([0.99] * 10 + [0.01] * 10) < 0.7
    assert chi2q(0.0, 4) == 1.0 and chi2q(1000.0, 4) < 1e-6


def test_a_trained_model_separates_the_held_out_corpus():
    training, held_out = corpus(50), corpus(200, start=1000, seed=99)
    counts: dict[str, list[int]] = {}
    for sample in training:
        for token in tokenize(sample.data, HOST):
            counts.setdefault(token, [0, 0])[sample.junk] += 1
    frozen = {token: (c[0], c[1]) for token, c in counts.items()}
    right = ham_as_junk = 0
    for sample in held_out:
        junk = classify(tokenize(sample.data, HOST), frozen, 50, 50).probability >= 0.9
        right += junk == sample.junk
        ham_as_junk += junk and not sample.junk
    assert right / len(held_out) >= 0.95
    assert ham_as_junk / (len(held_out) / 2) <= 0.01


def test_status_fields():
    assert status_fields(0.97, True, 0.9, (12, 11)) == (
        b"X-Spam-Status: Yes, score=0.97 required=0.90\r\nX-Spam-Score: 0.97\r\n"
    )
    assert status_fields(None, False, 0.9, (3, 1)) == (
        b"X-Spam-Status: No, not enough training (junk=1 not-junk=3)\r\n"
    )


def test_strip_fields_removes_forged_verdicts_with_their_continuations():
    message = (
        b"From: a@b.example\r\nX-Spam-Status: No,\r\n\tscore=0.00\r\nSubject: hi\r\n"
        b"x-spam-score: 0\r\nX-Spam-Flag: NO\r\nX-Spammy: kept\r\n\r\nX-Spam-Status: body\r\n"
    )
    assert strip_fields(message) == (
        b"From: a@b.example\r\nSubject: hi\r\nX-Spammy: kept\r\n\r\nX-Spam-Status: body\r\n"
    )
    plain = b"From: a@b.example\r\n\r\nbody"
    assert strip_fields(plain) is plain


@pytest.mark.parametrize(
    ("status", "plain", "percent"),
    [
        (None, "0", "0"),
        ("No, not enough training (junk=1 not-junk=3)", "0", "0"),
        ("No, score=0.00 required=0.90", "1", "0"),
        ("No, score=0.50 required=0.90", "6", "50"),
        ("Yes, score=0.97 required=0.90", "10", "97"),
        ("Yes, score=1.00 required=0.90", "10", "100"),
    ],
)
def test_spamtest_values(status, plain, percent):
    assert spamtest_value(status, percent=False) == plain
    assert spamtest_value(status, percent=True) == percent
