"""The authentication cache (stalwart_py.auth_cache): expiry, bounds, invalidation through the
stored hash, no caching of failures, no password in memory; and the directory using it."""

from __future__ import annotations

import gc
import hashlib
import ipaddress

import pytest

from stalwart_py import passwords, sasl
from stalwart_py.auth_cache import AuthCache
from stalwart_py.config import AuthCacheSettings, DirectorySettings, ThrottleSettings
from stalwart_py.directory import AuthThrottled, Directory
from stalwart_py.store.sqlite import SqliteStore

PASSWORD = "Tr0ub4dor&3-unique-marker"
HASH = "$scrypt$ln=15,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U"
CLIENT = ipaddress.ip_address("192.0.2.10")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def cache(ttl: float = 300.0, max_entries: int = 10_000) -> tuple[AuthCache, Clock]:
    clock = Clock()
    return AuthCache(AuthCacheSettings(ttl=ttl, max_entries=max_entries), clock), clock


def test_an_entry_lives_for_the_ttl_and_no_longer():
    auth, clock = cache(ttl=300)
    auth.remember(1, HASH, PASSWORD)
    clock.now += 299.9
    assert auth.verified(1, HASH, PASSWORD)
    clock.now += 0.1
    assert not auth.verified(1, HASH, PASSWORD)
    assert len(auth) == 0  # an expired entry is dropped when found


def test_use_does_not_extend_an_entry():
    auth, clock = cache(ttl=10)
    auth.remember(1, HASH, PASSWORD)
    for _ in range(9):
        clock.now += 1
        assert auth.verified(1, HASH, PASSWORD)
    clock.now += 1
    assert not auth.verified(1, HASH, PASSWORD)


def test_expired_entries_are_dropped_when_others_arrive():
    auth, clock = cache(ttl=10)
    for account in range(5):
        auth.remember(account, HASH, PASSWORD)
    clock.now += 10
    auth.remember(99, HASH, PASSWORD)
    assert len(auth) == 1


def test_the_oldest_entries_go_past_max_entries():
    auth, _ = cache(max_entries=3)
    for account in range(5):
        auth.remember(account, HASH, PASSWORD)
    assert len(auth) == 3
    assert [auth.verified(account, HASH, PASSWORD) for account in range(5)] == [
        False,
        False,
        True,
        True,
        True,
    ]


def test_only_the_same_account_hash_and_password_match():
    auth, _ = cache()
    auth.remember(1, HASH, PASSWORD)
    assert auth.verified(1, HASH, PASSWORD)
    assert not auth.verified(2, HASH, PASSWORD)  # another account with the same hash
    assert not auth.verified(1, HASH.replace("c2Fsd", "c2Fse"), PASSWORD)  # a new hash
    assert not auth.verified(1, HASH, PASSWORD + " ")
    assert not auth.verified(1, HASH, PASSWORD[:-1])
    # A NUL in the password cannot shift bytes from the hash into it.
    assert not auth.verified(1, HASH[:-1], HASH[-1] + "\0" + PASSWORD)


def test_a_ttl_of_zero_turns_it_off_and_a_reload_applies():
    auth, _ = cache(ttl=0)
    auth.remember(1, HASH, PASSWORD)
    assert len(auth) == 0 and not auth.verified(1, HASH, PASSWORD)
    auth.configure(AuthCacheSettings(ttl=60, max_entries=2))
    for account in range(3):
        auth.remember(account, HASH, PASSWORD)
    assert len(auth) == 2
    auth.configure(AuthCacheSettings(ttl=60, max_entries=1))
    assert len(auth) == 1
    auth.configure(AuthCacheSettings(ttl=0))
    assert len(auth) == 0


def test_the_cache_holds_no_password_bytes():
    auth, _ = cache()
    auth.remember(1, HASH, PASSWORD)
    held = b"".join([auth._key, *auth._entries]) + repr(auth.__dict__).encode()
    for form in (PASSWORD.encode(), PASSWORD.encode("utf-16-le"), PASSWORD.encode("utf-32-le")):
        assert form not in held
    # Nor an unkeyed hash of it, which could be tested offline far faster than scrypt.
    for name in ("sha256", "sha1", "md5", "blake2b", "sha512"):
        assert hashlib.new(name, PASSWORD.encode()).digest()[:16] not in held
    # Nor a reference to it: the password object is only borrowed.
    assert not any(ref is PASSWORD for ref in gc.get_referents(auth._entries, auth.__dict__))


# -- through the directory, on a real store --------------------------------------------------


@pytest.fixture
async def directory(tmp_path):
    store = SqliteStore(tmp_path)
    await store.open()
    settings = DirectorySettings(
        throttle=ThrottleSettings(
            max_failures_per_address_and_account=2, max_failures_per_address=5, failure_delay=0
        )
    )
    directory = Directory(store, settings)
    await directory.add_domain("example.test")
    await directory.add_account("bob@example.test", PASSWORD)
    yield directory
    await store.close()


@pytest.fixture
def scrypt_calls(monkeypatch) -> list[str]:
    """The passwords each scrypt check was asked about."""
    calls: list[str] = []
    real = passwords.verify_password

    def counting(password: str, stored: str) -> bool:
        calls.append(password)
        return real(password, stored)

    monkeypatch.setattr(passwords, "verify_password", counting)
    return calls


@pytest.mark.anyio
async def test_a_repeated_login_skips_scrypt(directory, scrypt_calls):
    for _ in range(5):
        account = await directory.login("bob@example.test", PASSWORD, CLIENT)
        assert account.address == "bob@example.test"
    assert len(scrypt_calls) == 1


@pytest.mark.anyio
async def test_sasl_plain_uses_the_same_cache(directory, scrypt_calls):
    await directory.login("bob@example.test", PASSWORD, CLIENT)
    initial = b"\0bob@example.test\0" + PASSWORD.encode()

    async def no_exchange(challenge: bytes) -> bytes:
        raise AssertionError("PLAIN with an initial response needs no exchange")

    account = await directory.authenticate("PLAIN", initial, no_exchange, CLIENT)
    assert account.address == "bob@example.test"
    assert len(scrypt_calls) == 1


@pytest.mark.anyio
async def test_a_wrong_password_never_hits_and_is_never_entered(directory, scrypt_calls):
    await directory.login("bob@example.test", PASSWORD, CLIENT)
    entries = len(directory.auth_cache)
    with pytest.raises(sasl.AuthFailed):
        await directory.login("bob@example.test", PASSWORD + "x", CLIENT)
    assert scrypt_calls == [PASSWORD, PASSWORD + "x"]  # checked by scrypt, not the cache
    assert len(directory.auth_cache) == entries
    with pytest.raises(sasl.AuthFailed):  # and again: a failure was not remembered
        await directory.login("bob@example.test", PASSWORD + "x", CLIENT)
    assert len(scrypt_calls) == 3


@pytest.mark.anyio
async def test_the_throttle_stays_in_front_of_the_cache(directory):
    await directory.login("bob@example.test", PASSWORD, CLIENT)
    for _ in range(2):
        with pytest.raises(sasl.AuthFailed):
            await directory.login("bob@example.test", "wrong password", CLIENT)
    with pytest.raises(AuthThrottled):  # cached, and still refused while blocked
        await directory.login("bob@example.test", PASSWORD, CLIENT)


@pytest.mark.anyio
async def test_a_password_change_in_the_store_invalidates_at_once(directory, scrypt_calls):
    await directory.login("bob@example.test", PASSWORD, CLIENT)
    # Another process (the CLI) writes a new hash straight into the store.
    other = Directory(directory.store, directory.settings)
    await other.set_password("bob@example.test", "a new password")
    with pytest.raises(sasl.AuthFailed):
        await directory.login("bob@example.test", PASSWORD, CLIENT)
    account = await directory.login("bob@example.test", "a new password", CLIENT)
    assert account.address == "bob@example.test"


@pytest.mark.anyio
async def test_a_deleted_account_is_refused_at_once(directory):
    await directory.login("bob@example.test", PASSWORD, CLIENT)
    await directory.store.delete_account("bob@example.test")
    with pytest.raises(sasl.AuthFailed):
        await directory.login("bob@example.test", PASSWORD, CLIENT)


@pytest.mark.anyio
async def test_a_new_account_with_the_old_address_does_not_inherit_the_entry(directory):
    await directory.login("bob@example.test", PASSWORD, CLIENT)
    await directory.store.delete_account("bob@example.test")
    await directory.add_account("bob@example.test", "another password")
    with pytest.raises(sasl.AuthFailed):
        await directory.login("bob@example.test", PASSWORD, CLIENT)
