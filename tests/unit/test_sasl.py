"""SASL mechanisms: the sans-IO machines directly, and the async driver with a fake directory."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
from collections.abc import Awaitable, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stalwart_py.passwords import ScramCredentials, derive_scram_credentials
from stalwart_py.sasl import (
    MAX_RESPONSE,
    MECHANISMS,
    AuthAborted,
    AuthFailed,
    AuthResult,
    Challenge,
    CheckPassword,
    Credentials,
    FetchScram,
    LoginServer,
    PlainServer,
    SaslError,
    ScramSha256Server,
    Success,
    UnknownMechanism,
    authenticate,
    decode_response,
    escape_saslname,
    new_mechanism,
)

pytestmark = pytest.mark.anyio


class Directory:
    """A CredentialStore over a dict: login name -> (address, password)."""

    def __init__(self, accounts: dict[str, tuple[str, str]]) -> None:
        self.accounts = accounts
        self.scram = {
            name: (address, derive_scram_credentials(password, 4096))
            for name, (address, password) in accounts.items()
        }
        self.asked: list[str] = []

    async def verify_password(self, authcid: str, password: str) -> str | None:
        self.asked.append(authcid)
        entry = self.accounts.get(authcid)
        return entry[0] if entry is not None and entry[1] == password else None

    async def scram_credentials(self, authcid: str) -> tuple[str, ScramCredentials] | None:
        self.asked.append(authcid)
        return self.scram.get(authcid)


def directory() -> Directory:
    return Directory(
        {"user": ("user@example.test", "pencil"), "a,b=c": ("abc@example.test", "secret")}
    )


def scripted(*responses: bytes) -> tuple[Callable[[bytes], Awaitable[bytes]], list[bytes]]:
    """An exchange callback answering from a script; it records the challenges."""
    challenges: list[bytes] = []
    pending = list(responses)

    async def exchange(challenge: bytes) -> bytes:
        challenges.append(challenge)
        return pending.pop(0)

    return exchange, challenges


# --- PLAIN ---------------------------------------------------------------------------------


async def test_plain_with_an_initial_response(anyio_backend):
    exchange, challenges = scripted()
    result = await authenticate("PLAIN", b"\0user\0pencil", exchange, directory())
    assert result == AuthResult("user@example.test", None, "PLAIN")
    assert challenges == []


async def test_plain_without_an_initial_response_sends_an_empty_challenge(anyio_backend):
    exchange, challenges = scripted(b"\0user\0pencil")
    result = await authenticate("plain", None, exchange, directory())
    assert result.address == "user@example.test" and result.mechanism == "PLAIN"
    assert challenges == [b""]


async def test_plain_wrong_password_and_unknown_user_fail_alike(anyio_backend):
    exchange, _ = scripted()
    for message, authcid in ((b"\0user\0wrong", "user"), (b"\0nobody\0pencil", "nobody")):
        with pytest.raises(AuthFailed) as failed:
            await authenticate("PLAIN", message, exchange, directory())
        assert failed.value.authcid == authcid and failed.value.mechanism == "PLAIN"


@pytest.mark.parametrize(
    "message",
    [
        b"",  # AUTH PLAIN =
        b"user\0pencil",
        b"\0user\0pencil\0",
        b"\0\0pencil",
        b"\0user\0",
        b"\0us\xffer\0pencil",
        b"\0user\0" + b"x" * MAX_RESPONSE,
    ],
)
async def test_plain_malformed(anyio_backend, message: bytes):
    exchange, _ = scripted()
    with pytest.raises(SaslError):
        await authenticate("PLAIN", message, exchange, directory())


async def test_plain_authzid_of_someone_else_is_returned_for_the_caller(anyio_backend):
    exchange, _ = scripted()
    result = await authenticate("PLAIN", b"boss@example.test\0user\0pencil", exchange, directory())
    assert result.address == "user@example.test"
    assert result.authzid == "boss@example.test"


@pytest.mark.parametrize("authzid", [b"user", b"USER@example.test", b"user@example.test"])
async def test_plain_authzid_naming_oneself_is_none(anyio_backend, authzid: bytes):
    exchange, _ = scripted()
    result = await authenticate("PLAIN", authzid + b"\0user\0pencil", exchange, directory())
    assert result.authzid is None


def test_plain_machine_is_sans_io():
    server = PlainServer()
    step = server.start(b"\0user\0pencil")
    assert step == CheckPassword(Credentials("user", "", "pencil"))
    assert server.password_checked("user@example.test") == Success("user@example.test", None)
    with pytest.raises(RuntimeError):
        server.receive(b"more")


def test_credentials_do_not_show_the_password():
    assert "pencil" not in repr(Credentials("user", "", "pencil"))


# --- LOGIN ---------------------------------------------------------------------------------


async def test_login_asks_for_username_then_password(anyio_backend):
    exchange, challenges = scripted(b"user", b"pencil")
    result = await authenticate("LOGIN", None, exchange, directory())
    assert result == AuthResult("user@example.test", None, "LOGIN")
    assert challenges == [b"Username:", b"Password:"]
    assert [base64.b64encode(c) for c in challenges] == [b"VXNlcm5hbWU6", b"UGFzc3dvcmQ6"]


async def test_login_initial_response_is_the_username(anyio_backend):
    exchange, challenges = scripted(b"pencil")
    result = await authenticate("LOGIN", b"user", exchange, directory())
    assert result.address == "user@example.test"
    assert challenges == [b"Password:"]


async def test_login_wrong_password(anyio_backend):
    exchange, _ = scripted(b"user", b"wrong")
    with pytest.raises(AuthFailed) as failed:
        await authenticate("LOGIN", None, exchange, directory())
    assert failed.value.authcid == "user"


@pytest.mark.parametrize(("username", "password"), [(b"", b"x"), (b"user", b""), (b"\xff", b"x")])
async def test_login_malformed(anyio_backend, username: bytes, password: bytes):
    exchange, _ = scripted(username, password)
    with pytest.raises(SaslError):
        await authenticate("LOGIN", None, exchange, directory())


# --- aborts, unknown mechanisms, decoding --------------------------------------------------


async def test_abort_from_the_exchange_propagates(anyio_backend):
    async def exchange(challenge: bytes) -> bytes:
        return decode_response(b"*\r\n")

    store = directory()
    for mechanism in MECHANISMS:
        with pytest.raises(AuthAborted):
            await authenticate(mechanism, None, exchange, store)
    assert store.asked == []


async def test_unknown_mechanism_is_a_value_error(anyio_backend):
    exchange, _ = scripted()
    with pytest.raises(ValueError, match="CRAM-MD5"):
        await authenticate("CRAM-MD5", None, exchange, directory())
    with pytest.raises(UnknownMechanism):
        new_mechanism("SCRAM-SHA-256-PLUS")


@pytest.mark.parametrize(
    ("line", "decoded"),
    [
        (b"dXNlcg==\r\n", b"user"),
        (b"dXNlcg==", b"user"),
        (b"dXNlcg==\n", b"user"),
        (b"=\r\n", b""),
        (b"\r\n", b""),
        (b"AHVzZXIAcGVuY2ls", b"\0user\0pencil"),
    ],
)
def test_decode_response(line: bytes, decoded: bytes):
    assert decode_response(line) == decoded


@pytest.mark.parametrize(
    "line",
    [b"dXNlcg\r\n", b"dXN lcg==", b"dXNlcg==\r\n\r\n", b"dXNlcg==AA==", b"*=", b"d!Nlcg==", b"==="],
)
def test_decode_response_is_strict(line: bytes):
    with pytest.raises(SaslError):
        decode_response(line)


def test_decode_response_limits_length():
    with pytest.raises(SaslError, match="too long"):
        decode_response(base64.b64encode(b"x" * (MAX_RESPONSE + 3)))
    assert decode_response(base64.b64encode(b"x" * MAX_RESPONSE)) == b"x" * MAX_RESPONSE


def test_decode_response_aborts_on_star():
    with pytest.raises(AuthAborted):
        decode_response(b"*\r\n")


# --- SCRAM-SHA-256 -------------------------------------------------------------------------

RFC7677_CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
RFC7677_SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC7677_SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
RFC7677_CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
RFC7677_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
RFC7677_CREDS = derive_scram_credentials(
    "pencil", 4096, salt=base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
)


def test_scram_reproduces_rfc7677_section_3():
    server = ScramSha256Server(nonce=RFC7677_SERVER_NONCE)
    assert server.start(RFC7677_CLIENT_FIRST) == FetchScram("user")
    assert server.scram_fetched(("user@example.test", RFC7677_CREDS)) == Challenge(
        RFC7677_SERVER_FIRST
    )
    assert server.receive(RFC7677_CLIENT_FINAL) == Challenge(RFC7677_SERVER_FINAL)
    assert server.receive(b"") == Success("user@example.test", None)


def test_scram_success_data_goes_in_the_result_instead():
    server = ScramSha256Server(nonce=RFC7677_SERVER_NONCE, success_data=True)
    server.start(RFC7677_CLIENT_FIRST)
    server.scram_fetched(("user@example.test", RFC7677_CREDS))
    step = server.receive(RFC7677_CLIENT_FINAL)
    assert step == Success("user@example.test", None, RFC7677_SERVER_FINAL)


def test_scram_rfc7677_with_a_wrong_password_fails_at_the_proof():
    wrong = derive_scram_credentials("pencil2", 4096, salt=RFC7677_CREDS.salt)
    server = ScramSha256Server(nonce=RFC7677_SERVER_NONCE)
    server.start(RFC7677_CLIENT_FIRST)
    server.scram_fetched(("user@example.test", wrong))
    with pytest.raises(AuthFailed):
        server.receive(RFC7677_CLIENT_FINAL)


class ScramClient:
    """A minimal RFC 5802 client, written from the RFC's formulas, for driver tests."""

    def __init__(self, username: str, password: str, gs2: str = "n,,") -> None:
        self.password, self.gs2 = password.encode(), gs2
        self.bare = f"n={escape_saslname(username)},r=clientnonce0123"

    def first(self) -> bytes:
        return (self.gs2 + self.bare).encode()

    def final(self, server_first: bytes) -> bytes:
        attrs = dict(part.split("=", 1) for part in server_first.decode().split(","))
        salted = hashlib.pbkdf2_hmac(
            "sha256", self.password, base64.b64decode(attrs["s"]), int(attrs["i"])
        )
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        without_proof = f"c={base64.b64encode(self.gs2.encode()).decode()},r={attrs['r']}"
        auth = f"{self.bare},{server_first.decode()},{without_proof}".encode()
        signature = hmac.new(hashlib.sha256(client_key).digest(), auth, "sha256").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.new(salted, b"Server Key", "sha256").digest()
        self.expected_final = b"v=" + base64.b64encode(
            hmac.new(server_key, auth, "sha256").digest()
        )
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def exchange(self) -> tuple[Callable[[bytes], Awaitable[bytes]], list[bytes]]:
        challenges: list[bytes] = []

        async def exchange(challenge: bytes) -> bytes:
            challenges.append(challenge)
            if len(challenges) == 1:
                return self.final(challenge)
            assert challenge == self.expected_final
            return b""

        return exchange, challenges


async def test_scram_through_the_driver(anyio_backend):
    client = ScramClient("user", "pencil")
    exchange, challenges = client.exchange()
    result = await authenticate("SCRAM-SHA-256", client.first(), exchange, directory())
    assert result == AuthResult("user@example.test", None, "SCRAM-SHA-256")
    assert len(challenges) == 2


async def test_scram_without_an_initial_response(anyio_backend):
    client = ScramClient("user", "pencil")
    inner, _ = client.exchange()

    async def exchange(challenge: bytes) -> bytes:
        return client.first() if challenge == b"" else await inner(challenge)

    result = await authenticate("scram-sha-256", None, exchange, directory())
    assert result.address == "user@example.test"


async def test_scram_escaped_names_and_authzid(anyio_backend):
    client = ScramClient("a,b=c", "secret", gs2="y,a=boss=2Cx=3Dy,")
    exchange, _ = client.exchange()
    store = directory()
    result = await authenticate("SCRAM-SHA-256", client.first(), exchange, store)
    assert result.address == "abc@example.test"
    assert result.authzid == "boss,x=y"
    assert store.asked == ["a,b=c"]


async def test_scram_wrong_password(anyio_backend):
    client = ScramClient("user", "wrong")
    exchange, _ = client.exchange()
    with pytest.raises(AuthFailed) as failed:
        await authenticate("SCRAM-SHA-256", client.first(), exchange, directory())
    assert failed.value.authcid == "user"


async def test_scram_unknown_user_runs_the_exchange_and_fails_at_the_end(anyio_backend):
    server_firsts: list[bytes] = []
    for _ in range(2):
        client = ScramClient("nobody", "pencil")
        exchange, challenges = client.exchange()
        with pytest.raises(AuthFailed):
            await authenticate("SCRAM-SHA-256", client.first(), exchange, directory())
        server_firsts.append(challenges[0])
    salts = [dict(p.split(b"=", 1) for p in s.split(b","))[b"s"] for s in server_firsts]
    assert salts[0] == salts[1]  # stable, like a real account's
    assert b",i=10000" in server_firsts[0]


def test_scram_fake_salts_differ_per_user_and_process():
    def salt(username: str, secret: bytes) -> bytes:
        server = ScramSha256Server(fake_secret=secret)
        server.start(f"n,,n={username},r=abc".encode())
        first = server.scram_fetched(None)
        assert isinstance(first, Challenge)
        return first.data.split(b",")[1]

    assert salt("alice", b"one") == salt("alice", b"one")
    assert salt("alice", b"one") != salt("bob", b"one")
    assert salt("alice", b"one") != salt("alice", b"two")


@pytest.mark.parametrize(
    ("client_first", "reason"),
    [
        (b"p=tls-unique,,n=user,r=abc", "channel binding"),
        (b"p=tls-server-end-point,,n=user,r=abc", "channel binding"),
        (b"x,,n=user,r=abc", "GS2"),
        (b"n,,m=ext,n=user,r=abc", "mandatory"),
        (b"n,,n=us=2Der,r=abc", "name"),
        (b"n,,n=,r=abc", "n="),
        (b"n,b=x,n=user,r=abc", "a="),
        (b"n,,r=abc,n=user", "n="),
        (b"n,,n=user,r=a\x7fc", "nonce"),
        (b"n,,n=user", "client-first"),
        (b"n,,n=user,r=abc,1=x", "attribute"),
        (b"n,,n=u\0ser,r=abc", "NUL"),
        (b"n,,n=\xffuser,r=abc", "UTF-8"),
        (b"", "client-first"),
    ],
)
def test_scram_client_first_malformed(client_first: bytes, reason: str):
    with pytest.raises(SaslError, match=reason):
        ScramSha256Server().start(client_first)


@pytest.mark.parametrize(
    ("client_final", "reason"),
    [
        (RFC7677_CLIENT_FINAL.replace(b"c=biws", b"c=eSws"), "channel binding"),
        (RFC7677_CLIENT_FINAL.replace(b"c=biws", b"c=bi*s"), "channel binding"),
        (RFC7677_CLIENT_FINAL.replace(b"$k0,", b"$k1,"), "nonce"),
        (RFC7677_CLIENT_FINAL.replace(b"p=dHzb", b"p=dHz"), "proof"),
        (RFC7677_CLIENT_FINAL[:-4] + b"AA==", "proof"),  # valid base64, wrong length
        (b"c=biws,p=abc", "client-final"),
        (b"r=x,c=biws,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", "c="),
    ],
)
def test_scram_client_final_malformed(client_final: bytes, reason: str):
    server = ScramSha256Server(nonce=RFC7677_SERVER_NONCE)
    server.start(RFC7677_CLIENT_FIRST)
    server.scram_fetched(("user@example.test", RFC7677_CREDS))
    with pytest.raises(SaslError, match=reason):
        server.receive(client_final)


def test_scram_client_final_extensions_are_signed_and_accepted():
    # An extension before the proof is part of client-final-without-proof; a proof computed
    # without it must therefore fail: the server signs exactly what it received.
    server = ScramSha256Server(nonce=RFC7677_SERVER_NONCE)
    server.start(RFC7677_CLIENT_FIRST)
    server.scram_fetched(("user@example.test", RFC7677_CREDS))
    tampered = RFC7677_CLIENT_FINAL.replace(b",p=", b",x=ext,p=")
    with pytest.raises(AuthFailed):
        server.receive(tampered)


def test_scram_expects_an_empty_answer_to_the_server_signature():
    server = ScramSha256Server(nonce=RFC7677_SERVER_NONCE)
    server.start(RFC7677_CLIENT_FIRST)
    server.scram_fetched(("user@example.test", RFC7677_CREDS))
    server.receive(RFC7677_CLIENT_FINAL)
    with pytest.raises(SaslError, match="empty"):
        server.receive(b"v=junk")


def test_scram_refuses_an_injected_nonce_with_a_comma():
    with pytest.raises(ValueError):
        ScramSha256Server(nonce="a,b")


def test_out_of_order_calls_are_our_bug():
    server = ScramSha256Server()
    with pytest.raises(RuntimeError):
        server.receive(b"n,,n=user,r=abc")
    server.start(b"n,,n=user,r=abc")
    with pytest.raises(RuntimeError):
        server.password_checked("user@example.test")
    login = LoginServer()
    with pytest.raises(SaslError):
        login.start(b"")
    with pytest.raises(RuntimeError):  # after a failure the machine is finished
        login.receive(b"user")


# --- fuzzing: arbitrary bytes give a step or SaslError/AuthFailed, nothing else --------------


def _feed(step: Callable[[], object]) -> None:
    try:
        result = step()
    except (SaslError, AuthFailed):
        return
    assert isinstance(result, Challenge | CheckPassword | FetchScram | Success)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300), mechanism=st.sampled_from(MECHANISMS))
def test_first_step_takes_arbitrary_bytes(data: bytes, mechanism: str):
    _feed(lambda: new_mechanism(mechanism).start(data))


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet="nyp=a,r:bc2CD3=\x00é", max_size=60))
def test_scram_first_step_takes_arbitrary_near_miss_text(text: str):
    _feed(lambda: ScramSha256Server().start(text.encode()))


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300) | st.text(alphabet="crp=,bB64+/", max_size=80).map(str.encode))
def test_scram_final_step_takes_arbitrary_bytes(data: bytes):
    server = ScramSha256Server(nonce=RFC7677_SERVER_NONCE)
    server.start(RFC7677_CLIENT_FIRST)
    server.scram_fetched(("user@example.test", RFC7677_CREDS))
    _feed(lambda: server.receive(data))


@settings(max_examples=300, deadline=None)
@given(line=st.binary(max_size=200))
def test_decode_response_takes_arbitrary_bytes(line: bytes):
    with contextlib.suppress(SaslError, AuthAborted):
        assert isinstance(decode_response(line), bytes)
