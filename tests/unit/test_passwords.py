"""Password hashing (scrypt), SASLprep and SCRAM-SHA-256 credentials."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pytest

from stalwart_py import passwords
from stalwart_py.passwords import (
    ScramCredentials,
    derive_scram_credentials,
    dummy_verify,
    format_scram_credentials,
    hash_password,
    needs_rehash,
    parse_scram_credentials,
    saslprep,
    scram_credentials,
    verify_password,
)

FAST_LOG2_N = 8


@pytest.fixture
def cheap(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cheap scrypt cost for speed; the default is tested on its own."""
    monkeypatch.setattr(passwords, "SCRYPT_LOG2_N", FAST_LOG2_N)


def test_the_default_hash_is_strong_and_self_describing():
    stored = hash_password("correct horse")
    assert re.fullmatch(r"\$scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}", stored)
    assert verify_password("correct horse", stored)
    assert not needs_rehash(stored)


@pytest.mark.usefixtures("cheap")
def test_verify_accepts_the_password_and_nothing_else():
    stored = hash_password("pencil")
    assert verify_password("pencil", stored)
    assert not verify_password("Pencil", stored)
    assert not verify_password("pencil ", stored)
    assert not verify_password("", stored)


@pytest.mark.usefixtures("cheap")
def test_every_hash_has_its_own_salt():
    assert hash_password("pencil") != hash_password("pencil")


@pytest.mark.usefixtures("cheap")
@pytest.mark.parametrize(
    "stored",
    [
        "",
        "pencil",
        "$scrypt$",
        "$scrypt$ln=8,r=8,p=1$c2FsdA$",
        "$scrypt$ln=8,r=8,p=1$$a2V5a2V5a2V5a2V5a2V5a2V5",
        "$scrypt$ln=8,r=8,p=1$c2F*dA$a2V5a2V5a2V5a2V5a2V5a2V5",
        "$scrypt$ln=8,r=8,p=1$c2FsdA$a2V5",  # key too short to mean anything
        "$scrypt$ln=0,r=8,p=1$c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5",
        "$scrypt$ln=8,r=0,p=1$c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5",
        "$scrypt$ln=8,r=8,p=0$c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5",
        "$scrypt$ln=30,r=8,p=1$c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5",  # 128 GiB: never computed
        "$scrypt$ln=8,r=8,p=1$c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5\n",
        "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5",
        None,
    ],
)
def test_a_malformed_stored_value_is_false_never_an_exception(stored):
    assert verify_password("pencil", stored) is False
    assert needs_rehash(stored) is True


@pytest.mark.usefixtures("cheap")
def test_needs_rehash_when_the_parameters_are_raised(monkeypatch: pytest.MonkeyPatch):
    stored = hash_password("pencil")
    assert not needs_rehash(stored)
    monkeypatch.setattr(passwords, "SCRYPT_LOG2_N", FAST_LOG2_N + 1)
    assert needs_rehash(stored)
    assert verify_password("pencil", stored)  # old hashes keep working meanwhile
    monkeypatch.setattr(passwords, "SCRYPT_LOG2_N", FAST_LOG2_N)
    monkeypatch.setattr(passwords, "SCRYPT_R", 16)
    assert needs_rehash(stored)


@pytest.mark.usefixtures("cheap")
def test_a_stronger_hash_does_not_need_rehash():
    salt, key = "c2FsdHNhbHRzYWx0c2FsdA", "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U"
    assert not needs_rehash(f"$scrypt$ln={FAST_LOG2_N + 1},r=8,p=1${salt}${key}")
    assert not needs_rehash(f"$scrypt$ln={FAST_LOG2_N},r=8,p=2${salt}${key}")


def test_dummy_verify_costs_what_verify_costs(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(passwords, "SCRYPT_LOG2_N", FAST_LOG2_N)
    stored = hash_password("pencil")
    calls: list[tuple[int, int, int, int]] = []
    real = hashlib.scrypt

    def spy(password: bytes, **kwargs: int) -> bytes:
        calls.append((kwargs["n"], kwargs["r"], kwargs["p"], kwargs["dklen"]))
        return real(password, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", spy)
    verify_password("wrong", stored)
    dummy_verify()
    verify_password("\x07", stored)  # refused by SASLprep: costs the same too
    assert calls == [(1 << FAST_LOG2_N, 8, 1, 32)] * 3


# RFC 4013 section 3, the examples.
@pytest.mark.parametrize(
    ("given", "prepared"),
    [
        ("I\u00adX", "IX"),  # SOFT HYPHEN mapped to nothing
        ("user", "user"),
        ("USER", "USER"),  # case preserved
        ("\u00aa", "a"),  # FEMININE ORDINAL INDICATOR, NFKC
        ("\u2168", "IX"),  # ROMAN NUMERAL NINE, NFKC
        ("a\u00a0b", "a b"),  # non-ASCII space mapped to SPACE
        ("\u0627\u0031\u0628", "\u0627\u0031\u0628"),  # RTL text starting and ending with RTL
        ("\U0001f600pass", "\U0001f600pass"),  # unassigned in Unicode 3.2: allowed (query)
    ],
)
def test_saslprep_examples(given: str, prepared: str):
    assert saslprep(given) == prepared


@pytest.mark.parametrize(
    "given",
    [
        "\u0007",  # ASCII control (RFC 4013 example 6)
        "\u0627\u0031",  # RTL not ending with RTL (example 7)
        "\u0627a\u0628",  # RTL mixed with LTR
        "pass\tword",
        "\ue000",  # private use
        "a\ufffdb",  # inappropriate for plain text
    ],
)
def test_saslprep_refuses_prohibited_text(given: str):
    with pytest.raises(ValueError, match="SASLprep"):
        saslprep(given)


@pytest.mark.usefixtures("cheap")
def test_passwords_are_compared_in_their_saslprep_form():
    stored = hash_password("I\u00adX")
    assert verify_password("IX", stored)
    assert verify_password("\u2168", stored)
    assert not verify_password("ix", stored)


@pytest.mark.usefixtures("cheap")
def test_hash_refuses_a_password_saslprep_refuses_or_empties():
    for bad in ("\u0007", "\u00ad", ""):
        with pytest.raises(ValueError):
            hash_password(bad)
    assert verify_password("\u00ad", hash_password("x")) is False


RFC7677_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")


def test_scram_credentials_follow_rfc5802():
    creds = derive_scram_credentials("pencil", 4096, salt=RFC7677_SALT)
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", RFC7677_SALT, 4096)  # spelled out
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    assert creds.stored_key == hashlib.sha256(client_key).digest()
    assert creds.server_key == hmac.new(salted, b"Server Key", "sha256").digest()
    assert (creds.salt, creds.iterations) == (RFC7677_SALT, 4096)


def test_scram_credentials_serialize_like_postgresql():
    text = scram_credentials("pencil", 4096, salt=RFC7677_SALT)
    assert re.fullmatch(
        r"SCRAM-SHA-256\$4096:W22ZaJ0SNY7soEsUEjb6gQ==\$[A-Za-z0-9+/]{43}=:[A-Za-z0-9+/]{43}=",
        text,
    )
    parsed = parse_scram_credentials(text)
    assert parsed == derive_scram_credentials("pencil", 4096, salt=RFC7677_SALT)
    assert format_scram_credentials(parsed) == text


def test_scram_credentials_default_to_a_fresh_salt_and_10000_iterations():
    first, second = (parse_scram_credentials(scram_credentials("pencil")) for _ in range(2))
    assert first is not None and second is not None
    assert first.iterations == 10000 and len(first.salt) == 16
    assert first.salt != second.salt


def test_scram_credentials_normalize_and_refuse_like_hashes():
    nfkc = derive_scram_credentials("\u2168", 4096, salt=RFC7677_SALT)
    assert nfkc == derive_scram_credentials("IX", 4096, salt=RFC7677_SALT)
    with pytest.raises(ValueError):
        scram_credentials("\u0007")
    with pytest.raises(ValueError):
        scram_credentials("pencil", 1000)  # below RFC 7677's minimum


@pytest.mark.parametrize(
    "text",
    [
        "",
        "SCRAM-SHA-256$4096:c2FsdA==$",
        "SCRAM-SHA-1$4096:c2FsdA==$a2V5:a2V5",
        "SCRAM-SHA-256$4096:c2FsdA==$a2V5:a2V5",  # keys of the wrong length
        "SCRAM-SHA-256$0:" + "c2FsdA==$" + "A" * 43 + "=:" + "A" * 43 + "=",
        "SCRAM-SHA-256$4096:$" + "A" * 43 + "=:" + "A" * 43 + "=",
        "SCRAM-SHA-256$4096:c2F=sdA==$" + "A" * 43 + "=:" + "A" * 43 + "=",
        None,
    ],
)
def test_parse_scram_credentials_refuses_malformed_text(text):
    assert parse_scram_credentials(text) is None


def test_scram_credentials_do_not_show_their_keys():
    creds = ScramCredentials(b"salt", 4096, b"\x01" * 32, b"\x02" * 32)
    assert "\\x01" not in repr(creds) and "\\x02" not in repr(creds)
