"""SASL server mechanisms (RFC 4422) shared by SMTP, IMAP, ManageSieve and HTTP. Sans-IO.

A SASL exchange is a short dialogue inside a protocol's own framing. The client names a
mechanism, optionally with an *initial response*; the server answers with *challenges* and
the client with *responses*, each base64-encoded on the wire; it ends in success or failure::

    SMTP (RFC 4954)          IMAP (RFC 9051, 4959)          ManageSieve (RFC 5804)
    C: AUTH PLAIN AGpv...    C: a1 AUTHENTICATE PLAIN       C: AUTHENTICATE "PLAIN" "AGpv..."
    S: 235 2.7.0 ...         S: +                           S: OK
                             C: AGpv...
                             S: a1 OK ...

An empty initial response is sent as ``=``; a client cancels with ``*``. The protocol owns
that framing: it base64-decodes what the client sent with :func:`decode_response` (which
also turns ``*`` into :class:`AuthAborted`) and encodes our challenges. Everything else,
including credential checks, lives here.

Mechanisms (:data:`MECHANISMS`):

``PLAIN`` (RFC 4616)
    One message ``[authzid] NUL authcid NUL password`` in UTF-8. Without an initial response
    the server first sends an empty challenge.
``LOGIN`` (draft-murchison-sasl-login, what Outlook and old Thunderbirds speak)
    The server asks ``Username:`` and then ``Password:``; the client answers each. An
    initial response, when given, is the username.
``SCRAM-SHA-256`` (RFC 5802, RFC 7677)
    Challenge-response; the password never crosses the wire and the client also proves the
    server knows its credentials::

        C: n,,n=user,r=<client nonce>                       client-first (GS2 header "n,,")
        S: r=<client nonce><server nonce>,s=<salt>,i=4096   server-first
        C: c=biws,r=<both nonces>,p=<ClientProof>           client-final
        S: v=<ServerSignature>                              server-final
        C: (empty)

    The GS2 header is ``n`` (no channel binding) or ``y`` (the client could bind but thinks
    we cannot), optionally with ``a=<authzid>``; ``p=`` (channel binding) is refused, as we
    offer no ``-PLUS`` variant. In names, ``,`` and ``=`` travel as ``=2C`` and ``=3D``. The
    server-final message goes out as one more challenge answered by an empty response, which
    every protocol allows; a protocol that can carry "additional data with success" in its
    success reply (ManageSieve's ``OK (SASL "...")``) passes ``success_data=True`` and sends
    :attr:`AuthResult.success_data` itself. An unknown user still gets a server-first message,
    with a salt derived from the name and a per-process secret (the same each time, like a
    real one), and fails only at the proof: SCRAM does not reveal which accounts exist.

Each mechanism is a small state machine (:class:`PlainServer`, :class:`LoginServer`,
:class:`ScramSha256Server`) that takes bytes and returns the next :data:`Step`: a
:class:`Challenge` to send, a :class:`CheckPassword` or :class:`FetchScram` for the
directory, or :class:`Success`. It does no I/O. :func:`authenticate` is the one async
function; it drives a machine with the protocol's ``exchange`` callback and the directory's
:class:`CredentialStore`.

Errors: :class:`SaslError` is the client's malformed data (SMTP ``501``, IMAP ``BAD``);
:class:`AuthFailed` is wrong credentials (``535 5.7.8``, ``NO [AUTHENTICATIONFAILED]``);
:class:`AuthAborted` is the client's ``*``. Every message is limited to
:data:`MAX_RESPONSE` bytes.

Authorization identity: PLAIN and SCRAM let a client ask to act as someone else (``authzid``).
:attr:`AuthResult.authzid` is None when none was asked, or when it names the authenticated
user themself (by login name or canonical address, case-insensitively); otherwise it is the
requested identity, *not yet authorized*: the caller must check that ``address`` may act as
it (an admin, a shared mailbox) or fail the login. Ignoring it would log the client in as
itself while it believes it acts as someone else.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from stalwart_py.passwords import SCRAM_ITERATIONS, ScramCredentials

MECHANISMS: tuple[str, ...] = ("PLAIN", "LOGIN", "SCRAM-SHA-256")
MAX_RESPONSE = 8192  # bytes of one decoded client message
MAX_ENCODED_RESPONSE = 4 * -(-MAX_RESPONSE // 3)  # its base64 form

# A per-process secret for the fake SCRAM salts of unknown users.
_FAKE_SECRET = secrets.token_bytes(32)
_NONCE_RE = re.compile(r"[\x21-\x2b\x2d-\x7e]+")  # printable ASCII except ","
_SASLNAME_RE = re.compile(r"(?:[^=,\x00]|=2C|=3D)+")
_EXTENSION_RE = re.compile(r"[A-Za-z]=[^,\x00]+")


# --- errors and results --------------------------------------------------------------------


class SaslError(Exception):
    """The client sent malformed SASL data. ``reason`` is short and safe to show it."""

    def __init__(self, reason: str = "malformed SASL data") -> None:
        super().__init__(reason)
        self.reason = reason


class AuthFailed(Exception):
    """Wrong credentials or an unknown user, alike. ``authcid`` is for logs and throttling."""

    def __init__(
        self,
        message: str = "authentication failed",
        *,
        mechanism: str | None = None,
        authcid: str | None = None,
    ) -> None:
        super().__init__(message)
        self.mechanism = mechanism
        self.authcid = authcid


class AuthAborted(Exception):
    """The client cancelled the exchange with ``*`` (RFC 4954 section 4, RFC 9051 6.2.2)."""


class UnknownMechanism(ValueError):
    """The client named a mechanism we do not offer."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """A login name and password as PLAIN or LOGIN received them (authzid "" when none)."""

    authcid: str
    authzid: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class AuthResult:
    """A successful exchange. See the module docstring about ``authzid``."""

    address: str  # the canonical account address, from the directory
    authzid: str | None  # a requested *other* identity, for the caller to authorize
    mechanism: str
    success_data: bytes | None = None  # only with success_data=True: the caller sends it


class CredentialStore(Protocol):
    """What the directory provides. Unknown users and wrong passwords both answer None.

    Names arrive as the client sent them (SCRAM's ``=2C``/``=3D`` already unescaped); the
    directory canonicalizes them. ``verify_password`` hashes in a worker thread and spends
    the same time on an unknown user (:func:`stalwart_py.passwords.dummy_verify`).
    """

    async def verify_password(self, authcid: str, password: str) -> str | None:
        """The canonical address when ``password`` is right for ``authcid``, else None."""
        ...

    async def scram_credentials(self, authcid: str) -> tuple[str, ScramCredentials] | None:
        """(canonical address, SCRAM-SHA-256 credentials), or None if there are none."""
        ...


# --- steps: what a mechanism asks its driver to do next ------------------------------------


@dataclass(frozen=True, slots=True)
class Challenge:
    """Send ``data`` to the client; feed its decoded answer to ``receive``."""

    data: bytes


@dataclass(frozen=True, slots=True)
class CheckPassword:
    """Ask the directory; feed its answer (address or None) to ``password_checked``."""

    credentials: Credentials


@dataclass(frozen=True, slots=True)
class FetchScram:
    """Ask the directory; feed its answer to ``scram_fetched``."""

    authcid: str


@dataclass(frozen=True, slots=True)
class Success:
    """The exchange succeeded; ``success_data`` as in :class:`AuthResult`."""

    address: str
    authzid: str | None
    success_data: bytes | None = None


Step = Challenge | CheckPassword | FetchScram | Success
_WAITING_FOR = {Challenge: "response", CheckPassword: "password", FetchScram: "scram"}


# --- the mechanisms ------------------------------------------------------------------------


class ServerMechanism:
    """The common shape: ``start``, then whichever input the last :data:`Step` asked for.

    Calling a method the machine is not waiting for (after a failure, or twice) is our bug,
    not the client's, and raises RuntimeError.
    """

    name: ClassVar[str]

    def __init__(self, *, success_data: bool = False) -> None:
        self._waiting: str | None = "start"
        self._success_data = success_data  # only SCRAM has additional data with success

    def start(self, initial_response: bytes | None) -> Step:
        """Begin, with the decoded initial response (None when the client sent none)."""
        self._expect("start")
        if initial_response is None:
            return self._emit(self._initial_challenge())
        return self._emit(self._respond(_bounded(initial_response)))

    def receive(self, response: bytes) -> Step:
        """The client's decoded answer to the last :class:`Challenge`."""
        self._expect("response")
        return self._emit(self._respond(_bounded(response)))

    def password_checked(self, address: str | None) -> Step:
        """The directory's answer to :class:`CheckPassword`."""
        self._expect("password")
        return self._emit(self._checked(address))

    def scram_fetched(self, entry: tuple[str, ScramCredentials] | None) -> Step:
        """The directory's answer to :class:`FetchScram`."""
        self._expect("scram")
        return self._emit(self._fetched(entry))

    def _initial_challenge(self) -> Step:
        return Challenge(b"")

    def _respond(self, data: bytes) -> Step:
        raise NotImplementedError

    def _checked(self, address: str | None) -> Step:
        raise NotImplementedError

    def _fetched(self, entry: tuple[str, ScramCredentials] | None) -> Step:
        raise NotImplementedError

    def _expect(self, what: str) -> None:
        if self._waiting != what:
            raise RuntimeError(f"{self.name}: called with {what} while waiting for {self._waiting}")
        self._waiting = None  # until the next step; stays None after an exception

    def _emit(self, step: Step) -> Step:
        self._waiting = _WAITING_FOR.get(type(step), "nothing")
        return step


class PlainServer(ServerMechanism):
    """PLAIN (RFC 4616): ``[authzid] NUL authcid NUL password``."""

    name = "PLAIN"

    def _respond(self, data: bytes) -> Step:
        parts = data.split(b"\0")
        if len(parts) != 3:
            raise SaslError("PLAIN expects authzid NUL authcid NUL password")
        authzid, authcid, password = (_utf8(part, "PLAIN message") for part in parts)
        if not authcid or not password:
            raise SaslError("PLAIN needs a user name and a password")
        self._credentials = Credentials(authcid, authzid, password)
        return CheckPassword(self._credentials)

    def _checked(self, address: str | None) -> Step:
        creds = self._credentials
        if address is None:
            raise AuthFailed(mechanism=self.name, authcid=creds.authcid)
        return Success(address, _other_identity(creds.authzid, creds.authcid, address))


class LoginServer(ServerMechanism):
    """LOGIN: ``Username:`` then ``Password:``; an initial response is the username."""

    name = "LOGIN"

    def __init__(self, *, success_data: bool = False) -> None:
        super().__init__(success_data=success_data)
        self._username: str | None = None

    def _initial_challenge(self) -> Step:
        return Challenge(b"Username:")

    def _respond(self, data: bytes) -> Step:
        if self._username is None:
            self._username = _utf8(data, "LOGIN username")
            if not self._username or "\0" in self._username:
                raise SaslError("LOGIN needs a user name")
            return Challenge(b"Password:")
        password = _utf8(data, "LOGIN password")
        if not password or "\0" in password:
            raise SaslError("LOGIN needs a password")
        return CheckPassword(Credentials(self._username, "", password))

    def _checked(self, address: str | None) -> Step:
        if address is None:
            raise AuthFailed(mechanism=self.name, authcid=self._username)
        return Success(address, None)


@dataclass(frozen=True, slots=True)
class ClientFirst:
    """A parsed SCRAM client-first message (RFC 5802 section 7)."""

    gs2_header: str  # "n,," or "y,a=someone," exactly as sent: client-final echoes it
    authzid: str | None
    username: str
    nonce: str
    bare: str  # client-first-message-bare, part of the AuthMessage


@dataclass(frozen=True, slots=True)
class ClientFinal:
    """A parsed SCRAM client-final message."""

    channel_binding: bytes
    nonce: str
    proof: bytes
    without_proof: str  # client-final-message-without-proof, part of the AuthMessage


class ScramSha256Server(ServerMechanism):
    """SCRAM-SHA-256 (RFC 5802, RFC 7677) without channel binding.

    ``nonce`` (the server's part) and ``fake_secret`` are injectable for tests; by default
    the nonce is 144 random bits and the secret is per process.
    """

    name = "SCRAM-SHA-256"

    def __init__(
        self,
        *,
        nonce: str | None = None,
        success_data: bool = False,
        fake_secret: bytes = _FAKE_SECRET,
    ) -> None:
        super().__init__(success_data=success_data)
        self._server_nonce = secrets.token_urlsafe(18) if nonce is None else nonce
        if not _NONCE_RE.fullmatch(self._server_nonce):
            raise ValueError("a SCRAM nonce is printable ASCII without ','")
        self._fake_secret = fake_secret
        self._phase = "client-first"
        self._address: str | None = None

    def _respond(self, data: bytes) -> Step:
        if self._phase == "client-first":
            self._first = parse_client_first(data)
            self._phase = "fetch"
            return FetchScram(self._first.username)
        if self._phase == "client-final":
            return self._final(parse_client_final(data))
        if data:  # the client's answer to our server-final message is empty
            raise SaslError("SCRAM expects an empty response after the server signature")
        return Success(self._require_address(), self._authzid())

    def _fetched(self, entry: tuple[str, ScramCredentials] | None) -> Step:
        if entry is None:
            self._address, self._creds = None, self._fake_credentials(self._first.username)
        else:
            self._address, self._creds = entry
        self._server_first = (
            f"r={self._first.nonce}{self._server_nonce}"
            f",s={_b64(self._creds.salt)},i={self._creds.iterations}"
        )
        self._phase = "client-final"
        return Challenge(self._server_first.encode("ascii"))

    def _final(self, final: ClientFinal) -> Step:
        if not hmac.compare_digest(final.channel_binding, self._first.gs2_header.encode()):
            raise SaslError("SCRAM channel binding data does not match the GS2 header")
        if final.nonce != self._first.nonce + self._server_nonce:
            raise SaslError("SCRAM nonce does not match")
        parts = (self._first.bare, self._server_first, final.without_proof)
        auth_message = ",".join(parts).encode("utf-8")
        signature = hmac.digest(self._creds.stored_key, auth_message, "sha256")
        client_key = bytes(a ^ b for a, b in zip(final.proof, signature, strict=True))
        valid = hmac.compare_digest(hashlib.sha256(client_key).digest(), self._creds.stored_key)
        if not valid or self._address is None:
            raise AuthFailed(mechanism=self.name, authcid=self._first.username)
        server_signature = hmac.digest(self._creds.server_key, auth_message, "sha256")
        server_final = b"v=" + _b64(server_signature).encode("ascii")
        if self._success_data:
            return Success(self._address, self._authzid(), server_final)
        self._phase = "ack"
        return Challenge(server_final)

    def _fake_credentials(self, username: str) -> ScramCredentials:
        """Plausible credentials for an unknown user: stable salt, keys that never match."""
        seed = hmac.digest(self._fake_secret, username.encode("utf-8"), "sha256")
        stored = hmac.digest(self._fake_secret, b"stored-key\0" + seed, "sha256")
        return ScramCredentials(seed[:16], SCRAM_ITERATIONS, stored, secrets.token_bytes(32))

    def _require_address(self) -> str:
        if self._address is None:  # unreachable: an unknown user fails at the proof
            raise RuntimeError("SCRAM succeeded without an account")
        return self._address

    def _authzid(self) -> str | None:
        address = self._require_address()
        return _other_identity(self._first.authzid or "", self._first.username, address)


_MECHANISM_CLASSES: dict[str, type[ServerMechanism]] = {
    "PLAIN": PlainServer,
    "LOGIN": LoginServer,
    "SCRAM-SHA-256": ScramSha256Server,
}


def new_mechanism(name: str, *, success_data: bool = False) -> ServerMechanism:
    """A fresh server state machine for ``name`` (case-insensitive); UnknownMechanism if none."""
    cls = _MECHANISM_CLASSES.get(name.upper())
    if cls is None:
        raise UnknownMechanism(f"unsupported SASL mechanism {name[:40]!r}")
    return cls(success_data=success_data)


# --- SCRAM message parsing -----------------------------------------------------------------


def parse_client_first(data: bytes) -> ClientFirst:
    """Parse ``gs2-header client-first-message-bare``; SaslError if malformed or unsupported."""
    parts = _scram_text(data).split(",")
    if len(parts) < 4:
        raise SaslError("malformed SCRAM client-first message")
    flag, authz, bare_parts = parts[0], parts[1], parts[2:]
    if flag.startswith("p="):
        raise SaslError("channel binding is not supported (no -PLUS mechanism is offered)")
    if flag not in ("n", "y"):  # "y" is fine while we offer no -PLUS; refuse it if we do
        raise SaslError("malformed SCRAM GS2 header")
    authzid = _saslname(_attribute(authz, "a")) if authz else None
    if bare_parts[0].startswith("m="):
        raise SaslError("SCRAM mandatory extensions are not supported")
    username = _saslname(_attribute(bare_parts[0], "n"))
    nonce = _attribute(bare_parts[1], "r")
    if not _NONCE_RE.fullmatch(nonce):
        raise SaslError("malformed SCRAM nonce")
    _check_extensions(bare_parts[2:])
    return ClientFirst(f"{flag},{authz},", authzid, username, nonce, ",".join(bare_parts))


def parse_client_final(data: bytes) -> ClientFinal:
    """Parse ``c=...,r=...[,extensions],p=...``; SaslError if malformed."""
    parts = _scram_text(data).split(",")
    if len(parts) < 3:
        raise SaslError("malformed SCRAM client-final message")
    binding = _b64_decode(_attribute(parts[0], "c"), "SCRAM channel binding")
    nonce = _attribute(parts[1], "r")
    _check_extensions(parts[2:-1])
    proof = _b64_decode(_attribute(parts[-1], "p"), "SCRAM proof")
    if len(proof) != hashlib.sha256().digest_size:
        raise SaslError("SCRAM proof has the wrong length")
    return ClientFinal(binding, nonce, proof, ",".join(parts[:-1]))


def _scram_text(data: bytes) -> str:
    text = _utf8(data, "SCRAM message")
    if "\0" in text:
        raise SaslError("SCRAM message contains NUL")
    return text


def _attribute(part: str, name: str) -> str:
    if not part.startswith(name + "=") or len(part) == 2:
        raise SaslError(f"SCRAM message lacks the {name}= attribute where expected")
    return part[2:]


def _check_extensions(parts: list[str]) -> None:
    for part in parts:
        if not _EXTENSION_RE.fullmatch(part):
            raise SaslError("malformed SCRAM attribute")


def _saslname(text: str) -> str:
    """Unescape a saslname: ``=2C`` is ``,`` and ``=3D`` is ``=`` (any other ``=`` is bad)."""
    if not _SASLNAME_RE.fullmatch(text):
        raise SaslError("malformed SCRAM name")
    return text.replace("=2C", ",").replace("=3D", "=")


def escape_saslname(name: str) -> str:
    """The inverse of the unescaping above (for clients and tests)."""
    return name.replace("=", "=3D").replace(",", "=2C")


# --- the driver and helpers ----------------------------------------------------------------


async def authenticate(
    mechanism: str,
    initial_response: bytes | None,
    exchange: Callable[[bytes], Awaitable[bytes]],
    credentials: CredentialStore,
    *,
    success_data: bool = False,
) -> AuthResult:
    """Run one SASL exchange to its end.

    ``initial_response`` is already base64-decoded (None: the client sent none; b"": it
    sent ``=``). ``exchange`` sends a raw challenge in the protocol's framing and returns the
    client's decoded answer, raising AuthAborted on ``*``. Raises AuthFailed, SaslError,
    AuthAborted, or UnknownMechanism (a ValueError).
    """
    server = new_mechanism(mechanism, success_data=success_data)
    step = server.start(initial_response)
    while True:
        match step:
            case Challenge(data=data):
                step = server.receive(await exchange(data))
            case CheckPassword(credentials=creds):
                address = await credentials.verify_password(creds.authcid, creds.password)
                step = server.password_checked(address)
            case FetchScram(authcid=authcid):
                step = server.scram_fetched(await credentials.scram_credentials(authcid))
            case Success(address=address, authzid=authzid, success_data=final):
                return AuthResult(address, authzid, server.name, final)
            case _:  # pragma: no cover - a new Step type without a case here
                raise TypeError(f"unexpected SASL step {step!r}")


def decode_response(line: bytes) -> bytes:
    """A client's SASL line as bytes: ``*`` raises AuthAborted, ``=`` is empty, else base64.

    The line may end in CRLF. Strict base64 (no spaces, correct padding); SaslError if not.
    """
    if line.endswith(b"\r\n"):
        line = line[:-2]
    elif line.endswith(b"\n"):
        line = line[:-1]
    if line == b"*":
        raise AuthAborted()
    if line == b"=":
        return b""
    if len(line) > MAX_ENCODED_RESPONSE:
        raise SaslError("SASL response too long")
    try:
        return binascii.a2b_base64(line, strict_mode=True)
    except binascii.Error:
        raise SaslError("SASL response is not valid base64") from None


def _bounded(data: bytes) -> bytes:
    if len(data) > MAX_RESPONSE:
        raise SaslError("SASL response too long")
    return data


def _utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SaslError(f"{what} is not UTF-8") from None


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _b64_decode(text: str, what: str) -> bytes:
    try:
        return binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        raise SaslError(f"{what} is not valid base64") from None


def _other_identity(authzid: str, authcid: str, address: str) -> str | None:
    """The requested authzid, or None when absent or naming the authenticated user."""
    if not authzid or authzid.casefold() in (authcid.casefold(), address.casefold()):
        return None
    return authzid
