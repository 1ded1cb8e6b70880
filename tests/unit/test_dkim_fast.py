"""dkim_fast gives dkimpy's verdict, signature by signature, on generated signed messages:
every canonicalization pair, folded and refolded headers, trailing whitespace, empty bodies,
duplicate and missing signed headers, over-signing, and changes after signing that must break
(or must not break) a signature. Equivalence is tested, not assumed."""

from __future__ import annotations

import itertools
import random

import dkim
import dkim.util
import pytest

from stalwart_py.inbound import dkim_fast
from tests.support.auth_world import SigningKey, ed25519_key, rsa_key

KEYS = {"rsa": rsa_key(2048), "ed": ed25519_key(), "rsa1024": rsa_key(1024)}

HEADERS = [
    b"From: Alice <alice@example.test>\r\n",
    b"To: bob@example.test,\r\n\t carol@example.test\r\n",
    b"Subject:   Hello \t  there   \r\n",
    b"Date: Fri, 04 Dec 2026 16:00:00 +0000\r\n",
    b"Message-ID: <m1@example.test>\r\n",
    b"Received: from a by b; Fri, 04 Dec 2026 15:00:00 +0000\r\n",
    b"Received: from c by d; Fri, 04 Dec 2026 15:01:00 +0000\r\n",
    b"X-Folded: one\r\n two \r\n\tthree\r\n",
    b"X-Empty:\r\n",
    b"x-CASE:  MiXeD  \r\n",
]

BODIES = [
    b"",
    b"\r\n",
    b"\r\n\r\n\r\n",
    b"Hello.\r\n",
    b"no final line end",
    b"trailing spaces   \r\n\ttabbed\t line\t\r\n\r\n\r\n",
    b"a  b\t\tc \r\n \r\n\t\r\n",
    b"bare\rCR\r\r\n",
    b"line\r\n" * 300,
    b" \t \r\n  \t\t  leading\r\n\t",
    b"x \t",
    b"word " * 50 + b"\r\n" + b"a" + b" " * 37 + b"b \t \r\n\r\n",
]

SIGNED = [
    [b"from", b"to", b"subject"],
    [b"from", b"from", b"subject", b"subject"],  # over-signing
    [b"from", b"received", b"received", b"received"],  # duplicates, one more than present
    [b"from", b"x-folded", b"x-empty", b"x-case", b"reply-to"],  # reply-to is absent
    [b"From", b"Date", b"Message-ID", b"To"],
]


def _tamper(message: bytes, how: str) -> bytes:
    """Changes after signing: some the canonicalization absorbs, some it must not."""
    end = message.index(b"\r\n\r\n")
    head, body = message[: end + 2], message[end + 4 :]
    if how == "none":
        return message
    if how == "body-space":  # relaxed absorbs, simple does not
        return head + b"\r\n" + body.replace(b"\r\n", b" \r\n", 1)
    if how == "body-append":
        return head + b"\r\n" + body + b"appended\r\n"
    if how == "body-blank-lines":  # both absorb trailing empty lines
        return head + b"\r\n" + body + (b"\r\n\r\n" if body.endswith(b"\r\n") else b"")
    if how == "refold":  # relaxed absorbs, simple does not
        return head.replace(b"Subject:   Hello", b"Subject:   Hello\r\n\t", 1) + b"\r\n" + body
    if how == "case":  # header name case: relaxed absorbs
        return head.replace(b"Subject:", b"SUBJECT:", 1) + b"\r\n" + body
    if how == "new-from":  # an added From breaks it (dkimpy hashes one From more)
        return b"From: mallory@evil.test\r\n" + message
    if how == "new-received":  # a Received on top, signed twice above: breaks
        return b"Received: from e by f; Fri, 04 Dec 2026 15:02:00 +0000\r\n" + message
    if how == "bad-b":
        at = message.index(b" b=") + 3  # one base64 digit of b= changed, its length kept
        digit = b"B" if message[at : at + 1] == b"A" else b"A"
        return message[:at] + digit + message[at + 1 :]
    raise AssertionError(how)


def _dkimpy(message: bytes, index: int, record: str) -> str:
    try:
        ok = dkim.DKIM(message).verify(idx=index, dnsfunc=lambda name, timeout=5: record.encode())
    except dkim.ValidationError as exc:
        return dkim_fast.BAD_BODY_HASH if "body hash mismatch" in str(exc) else f"error {exc}"
    except Exception as exc:
        return f"error {exc!r}"
    return dkim_fast.PASS if ok else dkim_fast.BAD_SIGNATURE


def _fast(message: bytes, index: int, record: str) -> str | None:
    split = dkim_fast.split(message)
    assert split is not None
    fields = [v for k, v in split.headers if k.lower() == b"dkim-signature"]
    tags = dkim.util.parse_tag_value(fields[index])
    return dkim_fast.verify(split, index, tags, record)


CASES = list(
    itertools.product(
        ["rsa", "ed"],
        [b"simple", b"relaxed"],
        [b"simple", b"relaxed"],
        range(len(SIGNED)),
        [
            "none",
            "body-space",
            "body-append",
            "body-blank-lines",
            "refold",
            "case",
            "new-from",
            "new-received",
            "bad-b",
        ],
    )
)


@pytest.mark.parametrize("key_name", ["rsa", "ed", "rsa1024"])
def test_matches_dkimpy_over_every_body(key_name: str) -> None:
    key = KEYS[key_name]
    rng = random.Random(15)
    handled = 0
    for body in BODIES:
        for hc, bc in itertools.product([b"simple", b"relaxed"], repeat=2):
            headers = rng.sample(HEADERS, k=7)
            if HEADERS[0] not in headers:
                headers.insert(0, HEADERS[0])
            message = b"".join(headers) + b"\r\n" + body
            signed = _sign(key, message, hc, bc, SIGNED[rng.randrange(len(SIGNED))])
            for how in ("none", "body-space", "body-append", "body-blank-lines"):
                tampered = _tamper(signed, how)
                want = _dkimpy(tampered, 0, key.record)
                got = _fast(tampered, 0, key.record)
                if got is not None:
                    handled += 1
                    assert got == want, (how, hc, bc, body, tampered)
    assert handled >= 4 * 4 * len(BODIES) - 4  # the fast path decides (almost) every one


@pytest.mark.parametrize(("key_name", "hc", "bc", "signed", "how"), CASES)
def test_matches_dkimpy(key_name: str, hc: bytes, bc: bytes, signed: int, how: str) -> None:
    key = KEYS[key_name]
    message = b"".join(HEADERS) + b"\r\n" + b"Body  with\t whitespace \r\n\r\n\r\n"
    result = _tamper(_sign(key, message, hc, bc, SIGNED[signed]), how)
    want = _dkimpy(result, 0, key.record)
    got = _fast(result, 0, key.record)
    assert got == want
    if how == "none":
        assert got == dkim_fast.PASS


def test_two_signatures_and_the_second_one() -> None:
    """The index picks the right DKIM-Signature field; a second key's record fails the first."""
    rsa, ed = KEYS["rsa"], KEYS["ed"]
    message = b"".join(HEADERS) + b"\r\nbody\r\n"
    both = _sign(ed, _sign(rsa, message, b"relaxed", b"simple", SIGNED[0]), b"simple",
                 b"relaxed", SIGNED[1])  # fmt: skip
    assert _fast(both, 0, ed.record) == _dkimpy(both, 0, ed.record) == dkim_fast.PASS
    assert _fast(both, 1, rsa.record) == _dkimpy(both, 1, rsa.record) == dkim_fast.PASS
    # the wrong key type for the algorithm is left to dkimpy (our caller rejects it first)
    assert _fast(both, 1, ed.record) is None
    # Another key of the same size: a mismatch, as dkimpy says. (When the signature's value
    # is over that key's modulus, about one key in two, it is left to dkimpy: try another.)
    for _ in range(20):
        other = rsa_key(2048)
        got = _fast(both, 1, other.record)
        if got is not None:
            assert got == _dkimpy(both, 1, other.record) == dkim_fast.BAD_SIGNATURE
            break
    else:
        raise AssertionError("no key of 20 was decided by the fast path")
    small = KEYS["rsa1024"]  # a signature longer than the modulus is left to dkimpy
    assert _fast(both, 1, small.record) is None


def test_left_to_dkimpy() -> None:
    """What the fast path does not reproduce is left to dkimpy, not guessed."""
    key = KEYS["rsa"]
    message = b"".join(HEADERS) + b"\r\nbody\r\n"
    signed = _sign(key, message, b"relaxed", b"relaxed", SIGNED[0])
    assert dkim_fast.split(signed.replace(b"body\r\n", b"body\n")) is None  # a bare LF
    assert dkim_fast.split(signed.replace(b"\r\n\r\n", b"\r\n")) is None  # no body
    split = dkim_fast.split(signed)
    assert split is not None
    tags = dkim.util.parse_tag_value(
        next(v for k, v in split.headers if k.lower() == b"dkim-signature")
    )
    assert dkim_fast.verify(split, 0, tags | {b"l": b"3"}, key.record) is None
    assert dkim_fast.verify(split, 0, tags | {b"a": b"rsa-sha1"}, key.record) is None
    assert dkim_fast.verify(split, 0, tags, key.record + "; s=tlsrpt") is None
    assert dkim_fast.verify(split, 0, tags, "v=DKIM1; p=notbase64!") is None
    assert dkim_fast.verify(split, 0, tags, key.record) == dkim_fast.PASS


def _sign(key: SigningKey, message: bytes, hc: bytes, bc: bytes, headers: list[bytes]) -> bytes:
    signer = dkim.DKIM(message)
    signer.should_not_sign = set()  # Received signed too: duplicates, over-signing
    signature = signer.sign(
        b"sel",
        b"example.test",
        key.private,
        canonicalize=(hc, bc),
        signature_algorithm=key.algorithm,
        include_headers=headers,
    )
    return signature + message


def test_body_canonicalization_matches_dkimpy_on_random_bodies() -> None:
    """The bytes-method canonicalization against dkimpy's regular expressions, on bodies made
    of the characters that matter (WSP, CR, LF, CRLF) in random runs."""
    rng = random.Random(6376)
    pieces = [b"a", b"bc", b" ", b"  ", b"\t", b"\r\n", b"\r\n\r\n", b"\r", b"\n"]
    for _ in range(3000):
        body = b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 30)))
        for algorithm in (dkim.canonicalization.Simple, dkim.canonicalization.Relaxed):
            want = algorithm.canonicalize_body(body)
            assert dkim_fast._canonical_body(algorithm, body) == want, (algorithm, body)


def test_b_tag_removal_matches_dkimpy() -> None:
    """The faster b= pattern empties exactly what dkimpy's RE_BTAG empties."""
    rng = random.Random(8463)
    pieces = [b"b", b"=", b";", b" ", b"\t", b"\r\n", b"\n", b"\r", b"A", b"z9", b"+/", b"h", b"-"]
    for _ in range(5000):
        value = b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 40)))
        want = dkim.RE_BTAG.sub(b"\\1", value)
        assert dkim_fast._BTAG.sub(b"\\1", value) == want, value
