"""The directory: resolution (aliases, catch-all, plus-addressing), passwords, SASL, throttle."""

from __future__ import annotations

import base64
import ipaddress
import time

import pytest

from stalwart_py import sasl
from stalwart_py.config import DirectorySettings, ThrottleSettings
from stalwart_py.directory import AuthThrottled, Directory
from stalwart_py.store import NotFound, StoreError
from stalwart_py.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio

PASSWORD = "correct horse battery"
CLIENT = ipaddress.ip_address("192.0.2.10")


@pytest.fixture
async def directory(tmp_path):
    store = SqliteStore(tmp_path)
    await store.open()
    settings = DirectorySettings(
        throttle=ThrottleSettings(
            max_failures_per_address_and_account=3, max_failures_per_address=5, failure_delay=0
        )
    )
    directory = Directory(store, settings)
    await directory.add_domain("example.test")
    await directory.add_domain("other.test")
    await directory.add_account("bob@example.test", PASSWORD)
    await directory.add_account("carol@example.test", PASSWORD)
    yield directory
    await store.close()


async def addresses(directory, address):
    resolution = await directory.resolve(address)
    return sorted(a.address for a in resolution.accounts), sorted(resolution.forwards)


async def test_accounts_and_subaddresses_resolve(directory):
    assert await addresses(directory, "Bob@Example.TEST") == (["bob@example.test"], [])
    assert await addresses(directory, "bob+lists@example.test") == (["bob@example.test"], [])
    assert await addresses(directory, "nobody@example.test") == ([], [])
    remote = await directory.resolve("someone@remote.test")
    assert not remote.local_domain and not remote.exists


async def test_aliases_chains_forwards_and_loops(directory):
    await directory.add_alias("team@example.test", ["bob@example.test", "sales@example.test"])
    await directory.add_alias(
        "sales@example.test", ["carol@example.test", "ext@remote.test", "team@example.test"]
    )  # a loop back
    assert await addresses(directory, "team@example.test") == (
        ["bob@example.test", "carol@example.test"],
        ["ext@remote.test"],
    )
    assert await addresses(directory, "team+x@example.test") == (
        ["bob@example.test", "carol@example.test"],
        ["ext@remote.test"],
    )


async def test_catch_all_only_for_unknown_addresses(directory):
    await directory.add_alias("@example.test", ["carol@example.test"])
    assert await addresses(directory, "anything@example.test") == (["carol@example.test"], [])
    assert await addresses(directory, "bob@example.test") == (["bob@example.test"], [])
    assert await addresses(directory, "x@other.test") == ([], [])  # another domain's catch-all


async def test_plus_addressing_can_be_turned_off(directory):
    directory.configure(DirectorySettings(subaddress_separator=""))
    assert await addresses(directory, "bob+tag@example.test") == ([], [])


async def test_sender_ownership(directory):
    bob = await directory.store.get_account("bob@example.test")
    await directory.add_alias("info@example.test", ["bob@example.test"])
    assert await directory.owns(bob, "bob@example.test")
    assert await directory.owns(bob, "BOB+news@example.test")
    assert await directory.owns(bob, "info@example.test")
    assert not await directory.owns(bob, "carol@example.test")
    await directory.add_alias("@other.test", ["bob@example.test"])
    assert await directory.owns(bob, "anyone@other.test")


async def test_management_errors(directory):
    with pytest.raises(NotFound, match=r"domain add nowhere\.test"):
        await directory.add_account("x@nowhere.test", PASSWORD)
    with pytest.raises(StoreError, match="at least 8 characters"):
        await directory.add_account("x@example.test", "short")
    with pytest.raises(StoreError, match="not an address"):
        await directory.add_alias("x@example.test", ["not-an-address"])


async def test_passwords_are_never_stored_in_clear(directory, tmp_path):
    await directory.set_password("carol@example.test", "A very distinctive passphrase 42")
    await directory.store.close()  # flush the WAL into the database file too
    for path in tmp_path.iterdir():
        if path.is_file():
            data = path.read_bytes()
            assert PASSWORD.encode() not in data, path
            assert b"distinctive passphrase" not in data, path
    await directory.store.open()
    assert (
        await directory.login("carol@example.test", "A very distinctive passphrase 42", CLIENT)
    ).address == "carol@example.test"


async def test_login_and_sasl_plain(directory):
    account = await directory.login("BOB@example.test", PASSWORD, CLIENT)
    assert account.address == "bob@example.test"
    with pytest.raises(sasl.AuthFailed):
        await directory.login("bob@example.test", "wrong password", CLIENT)

    async def no_exchange(challenge: bytes) -> bytes:
        raise AssertionError("PLAIN with an initial response needs no challenge")

    initial = b"\0bob@example.test\0" + PASSWORD.encode()
    account = await directory.authenticate("plain", initial, no_exchange, CLIENT)
    assert account.address == "bob@example.test"


async def test_sasl_login_exchange(directory):
    answers = iter([b"carol@example.test", PASSWORD.encode()])
    challenges = []

    async def exchange(challenge: bytes) -> bytes:
        challenges.append(challenge)
        return next(answers)

    account = await directory.authenticate("LOGIN", None, exchange, CLIENT)
    assert account.address == "carol@example.test"
    assert challenges == [b"Username:", b"Password:"]


def scram_client(first_bare: str):
    """The client's side of SCRAM-SHA-256 (RFC 5802 3) with ``PASSWORD``."""
    import hashlib
    import hmac

    async def exchange(challenge: bytes) -> bytes:
        text = challenge.decode()
        if text.startswith("r="):
            fields = dict(part.split("=", 1) for part in text.split(","))
            salt, iterations = base64.b64decode(fields["s"]), int(fields["i"])
            salted = hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), salt, iterations)
            client_key = hmac.new(salted, b"Client Key", "sha256").digest()
            stored_key = hashlib.sha256(client_key).digest()
            without_proof = f"c=biws,r={fields['r']}"
            auth_message = f"{first_bare},{text},{without_proof}".encode()
            signature = hmac.new(stored_key, auth_message, "sha256").digest()
            proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
            return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()
        assert text.startswith("v=")  # the server proves it knew the credentials
        return b""

    return exchange


async def test_scram_sha_256_with_stored_credentials(directory):
    first_bare = "n=bob@example.test,r=fyko+d2lbbFgONRv9qkxdawL"
    account = await directory.authenticate(
        "SCRAM-SHA-256", f"n,,{first_bare}".encode(), scram_client(first_bare), CLIENT
    )
    assert account.address == "bob@example.test"


async def test_scram_is_refused_to_an_account_with_two_factor_sign_in(directory):
    """SCRAM proves the account's own password, which two-factor sign-in takes away from the
    mail protocols, and it has no room for a code (nor are SCRAM keys kept for app passwords)."""
    from stalwart_py import totp

    bob = await directory.store.get_account("bob@example.test")
    enrolment = await directory.two_factor.start(bob.id, bob.address, "mx.example.test")
    await directory.two_factor.confirm(bob.id, totp.code(enrolment.secret, time.time()))
    first_bare = "n=bob@example.test,r=fyko+d2lbbFgONRv9qkxdawL"
    with pytest.raises(sasl.AuthFailed):
        await directory.authenticate(
            "SCRAM-SHA-256", f"n,,{first_bare}".encode(), scram_client(first_bare), CLIENT
        )
    await directory.two_factor.disable(bob.id)
    account = await directory.authenticate(
        "SCRAM-SHA-256", f"n,,{first_bare}".encode(), scram_client(first_bare), CLIENT
    )
    assert account.address == "bob@example.test"


class Clock:
    """The throttle's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_burst_from_one_address_does_not_lock_the_account_elsewhere(directory):
    """The field failure: ten wrong passwords from any address locked the account for
    everyone. Now they block that address (for that account), and only for a while."""
    directory.throttle.clock = clock = Clock()
    outcomes = []
    for _ in range(20):
        try:
            await directory.login("bob@example.test", "nope", CLIENT)
        except AuthThrottled:
            outcomes.append("throttled")
        except sasl.AuthFailed:
            outcomes.append("failed")
    assert outcomes == ["failed"] * 3 + ["throttled"] * 17  # checked 3 times, then refused
    other_client = ipaddress.ip_address("198.51.100.1")
    assert (await directory.login("bob@example.test", PASSWORD, other_client)).address
    with pytest.raises(AuthThrottled) as refused:  # even the right password, from there
        await directory.login("bob@example.test", PASSWORD, CLIENT)
    assert refused.value.retry_after == 1.0  # block-time: the 17 refusals did not extend it
    await directory.login("carol@example.test", PASSWORD, CLIENT)  # 3 failures < 5 per address
    clock.now += 1.0
    assert (await directory.login("bob@example.test", PASSWORD, CLIENT)).address


async def test_the_address_is_blocked_after_failures_for_any_accounts(directory):
    directory.throttle.clock = Clock()
    for name in ("bob", "carol", "dave", "erin", "frank"):
        with pytest.raises(sasl.AuthFailed):
            await directory.login(f"{name}@example.test", "nope", CLIENT)
    with pytest.raises(AuthThrottled):  # 5 failures from this address
        await directory.login("carol@example.test", PASSWORD, CLIENT)
    other_client = ipaddress.ip_address("198.51.100.1")
    assert (await directory.login("carol@example.test", PASSWORD, other_client)).address


async def test_sasl_attempts_refused_as_throttled_do_not_extend_the_block(directory):
    """SMTP AUTH and ManageSieve (SASL) counted a throttled attempt as a failure, so a client
    that kept trying kept itself, and the account, locked."""
    directory.throttle.clock = clock = Clock()

    async def plain(password: str):
        credentials = b"\0bob@example.test\0" + password.encode()
        return await directory.authenticate("PLAIN", credentials, None, CLIENT)

    for _ in range(3):
        with pytest.raises(sasl.AuthFailed) as failed:
            await plain("nope")
        assert not isinstance(failed.value, AuthThrottled)
    for _ in range(10):
        with pytest.raises(AuthThrottled):
            await plain("nope")
    assert directory.throttle.wait(CLIENT, "bob@example.test") == 1.0
    clock.now += 1.0
    assert (await plain(PASSWORD)).address == "bob@example.test"


async def test_first_start_creates_an_administrator(tmp_path):
    store = SqliteStore(tmp_path)
    await store.open()
    directory = Directory(store)
    address, password = await directory.ensure_administrator("mail.example.test")
    assert address == "admin@mail.example.test"
    account = await directory.login(address, password, None)
    assert account.is_admin
    assert await directory.ensure_administrator("mail.example.test") is None  # only once
    await store.close()


async def test_acting_as_another_identity_is_refused(directory):
    async def no_exchange(challenge: bytes) -> bytes:
        raise AssertionError("no challenge expected")

    other = b"carol@example.test\0bob@example.test\0" + PASSWORD.encode()
    with pytest.raises(sasl.AuthFailed, match=r"not authorized to act as carol@example\.test"):
        await directory.authenticate("PLAIN", other, no_exchange, CLIENT)
    itself = b"BOB@example.test\0bob@example.test\0" + PASSWORD.encode()  # naming oneself is fine
    account = await directory.authenticate("PLAIN", itself, no_exchange, CLIENT)
    assert account.address == "bob@example.test"
