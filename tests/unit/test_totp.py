"""TOTP (``stalwart_py.totp``) against the RFCs' own test vectors: RFC 4226 appendix D (HOTP)
and RFC 6238 appendix B (TOTP, SHA-1, 8 digits), then the tolerance, the URI and the
recovery codes."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import pytest

from stalwart_py import totp

RFC_SEED = b"12345678901234567890"  # the SHA-1 seed of both appendices
RFC_SECRET = base64.b32encode(RFC_SEED).decode()

# RFC 4226 appendix D: HOTP values for counters 0..9.
HOTP_VALUES = [
    "755224",
    "287082",
    "359152",
    "969429",
    "338314",
    "254676",
    "287922",
    "162583",
    "399871",
    "520489",
]

# RFC 6238 appendix B, the SHA-1 rows: (time, T in hex, TOTP).
TOTP_VECTORS = [
    (59, 0x1, "94287082"),
    (1111111109, 0x23523EC, "07081804"),
    (1111111111, 0x23523ED, "14050471"),
    (1234567890, 0x273EF07, "89005924"),
    (2000000000, 0x3F940AA, "69279037"),
    (20000000000, 0x27BC86AA, "65353130"),
]


@pytest.mark.parametrize("counter", range(10))
def test_hotp_rfc4226_appendix_d(counter):
    assert totp.hotp(RFC_SEED, counter) == HOTP_VALUES[counter]


@pytest.mark.parametrize(("now", "step", "expected"), TOTP_VECTORS)
def test_totp_rfc6238_appendix_b_sha1(now, step, expected):
    assert totp.step(now) == step
    assert totp.hotp(RFC_SEED, totp.step(now), digits=8) == expected
    # The 6-digit code apps show is the same value's last six digits.
    assert totp.code(RFC_SECRET, now) == expected[-6:]


def test_a_code_of_the_step_before_or_after_matches_and_no_further():
    now = 1111111111  # step 0x23523ED
    current = totp.step(now)
    for offset in (-1, 0, 1):
        code = totp.code(RFC_SECRET, now + offset * totp.PERIOD)
        assert totp.matching_step(RFC_SECRET, code, now) == current + offset
    for offset in (-2, 2):
        code = totp.code(RFC_SECRET, now + offset * totp.PERIOD)
        assert totp.matching_step(RFC_SECRET, code, now) is None
    for bad in ("", "12345", "1234567", "12345a", "\uff11\uff12\uff13\uff14\uff15\uff16"):
        assert totp.matching_step(RFC_SECRET, bad, now) is None


def test_new_secrets_are_160_bits_and_differ():
    secret = totp.new_secret()
    assert len(base64.b32decode(secret + "=" * (-len(secret) % 8))) == 20
    assert secret != totp.new_secret()


def test_the_otpauth_uri():
    uri = totp.uri("JBSWY3DPEHPK3PXP", "alice@example.test", "mail.example.test")
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert parts.path == "/mail.example.test:alice@example.test"
    assert parse_qs(parts.query) == {
        "secret": ["JBSWY3DPEHPK3PXP"],
        "issuer": ["mail.example.test"],
        "algorithm": ["SHA1"],
        "digits": ["6"],
        "period": ["30"],
    }


def test_recovery_codes_are_typed_leniently_and_nothing_else_is_one():
    codes = totp.new_recovery_codes()
    assert len(codes) == len(set(codes)) == totp.RECOVERY_CODES
    first = codes[0]
    digest = totp.recovery_digest(first)
    assert digest is not None
    assert totp.recovery_digest(first.replace("-", " ").upper()) == digest
    assert totp.recovery_digest(codes[1]) != digest
    assert totp.recovery_digest("123456") is None
    assert totp.recovery_digest(first[:-1]) is None
