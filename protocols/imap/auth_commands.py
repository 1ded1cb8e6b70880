"""Commands of any state and of the not-authenticated state: CAPABILITY, NOOP, LOGOUT, ID,
STARTTLS, AUTHENTICATE, LOGIN (RFC 9051 sections 6.1 and 6.2), ENABLE (RFC 5161).

Authentication policy (``imap.auth``): without TLS, and unless ``allow-plaintext`` is set,
LOGIN and the mechanisms that send the password (PLAIN, LOGIN) are refused with ``NO
[PRIVACYREQUIRED]`` and the capability list says ``LOGINDISABLED`` (RFC 9051 section
6.2.3); SCRAM-SHA-256 stays available, as it never reveals the password. Failed attempts
are slowed and throttled by the directory; after ``max-failures`` in one session it ends.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from protocols.imap import response
from protocols.imap.commands import Authenticate, Command, Enable, Id, Login
from protocols.imap.replies import ANSWERED, Bad, Logout, No, Ok
from stalwart_py import sasl
from stalwart_py.directory import AuthThrottled
from stalwart_py.hash_pool import LoginDeferred
from stalwart_py.plugin import LineTooLong
from stalwart_py.store import Account
from stalwart_py.two_factor import TwoFactorRequired

if TYPE_CHECKING:
    from protocols.imap.session import Session

PLAINTEXT_MECHANISMS = frozenset(("PLAIN", "LOGIN"))
SERVER_ID = (("name", "stalwart-py"), ("vendor", "stalwart-py"), ("support-url", None))


def plaintext_allowed(session: Session) -> bool:
    return session.conn.tls is not None or session.settings.auth.allow_plaintext


def mechanisms(session: Session) -> list[str]:
    offered = session.conn.server.directory.mechanisms()
    if plaintext_allowed(session):
        return list(offered)
    return [name for name in offered if name not in PLAINTEXT_MECHANISMS]


def capabilities(session: Session) -> list[str]:
    """RFC 9051 section 7.2.2. Before login: STARTTLS, LOGINDISABLED and the SASL
    mechanisms; the extensions are listed in every state, as clients often ask only once."""
    from protocols.imap.session import State

    caps = ["IMAP4rev1", "IMAP4rev2"]
    if session.state is State.NOT_AUTHENTICATED:
        if session.conn.tls is None:
            caps.append("STARTTLS")
        if not plaintext_allowed(session):
            caps.append("LOGINDISABLED")
        caps += [f"AUTH={name}" for name in mechanisms(session)]
    caps += [
        "SASL-IR",
        "LITERAL+",
        "ENABLE",
        "ID",
        "IDLE",
        "NAMESPACE",
        "UIDPLUS",
        "MULTIAPPEND",
        "CATENATE",
        "UTF8=ACCEPT",
        "MOVE",
        "UNSELECT",
        "CHILDREN",
        "LIST-EXTENDED",
        "LIST-STATUS",
        "SPECIAL-USE",
        "CREATE-SPECIAL-USE",
        "CONDSTORE",
        "QRESYNC",
        "ESEARCH",
        "SEARCHRES",
        "BINARY",
        "STATUS=SIZE",
        f"APPENDLIMIT={session.settings.max_literal_size}",
        "QUOTA",
        "QUOTA=RES-STORAGE",
        "QUOTA=RES-MESSAGE",
        "COMPRESS=DEFLATE",
        "NOTIFY",
        # RFC 5256, RFC 5957, RFC 5267
        "SORT",
        "SORT=DISPLAY",
        "THREAD=ORDEREDSUBJECT",
        "THREAD=REFERENCES",
        "ESORT",
        "CONTEXT=SEARCH",
        "CONTEXT=SORT",
        "PARTIAL",  # RFC 9394
    ]
    return caps


def capability_code(session: Session) -> str:
    return "CAPABILITY " + " ".join(capabilities(session))


async def capability(session: Session, command: Command) -> Ok:
    session.write(response.untagged("CAPABILITY " + " ".join(capabilities(session))))
    return Ok()


async def noop(session: Session, command: Command) -> Ok:
    return Ok()  # the dispatcher reports mailbox changes before the tagged OK


async def logout(session: Session, command: Command) -> Ok:
    from protocols.imap.session import State

    session.write(response.status("*", "BYE", "Logging out"))
    session.close_mailbox()
    session.state = State.LOGOUT
    return Ok("LOGOUT completed")


async def id_command(session: Session, command: Command) -> Ok:
    """RFC 2971: the client's identification goes to the log, ours to the client."""
    args: Id = command.args
    if args.fields:
        session.conn.log.info(
            "client id: %s", ", ".join(f"{k}={v}" for k, v in args.fields if v is not None)
        )
    pairs = b" ".join(
        response.string(key) + b" " + response.nstring(value) for key, value in SERVER_ID
    )
    session.write(response.untagged(b"ID (" + pairs + b")"))
    return Ok()


async def starttls(session: Session, command: Command) -> Ok | None:
    """RFC 9051 section 6.2.1: OK, then the handshake; nothing of before is kept (the
    connection drops bytes pipelined before the handshake, CVE-2011-0411)."""
    if session.conn.tls is not None:
        raise Bad("TLS is already active")
    session.write(response.status(command.tag, "OK", "Begin TLS negotiation now"))
    await session.flush()
    await session.conn.start_tls()
    return ANSWERED


async def login(session: Session, command: Command) -> Ok:
    args: Login = command.args
    if not plaintext_allowed(session):
        raise No("Plaintext login is disabled until STARTTLS", "PRIVACYREQUIRED")
    directory = session.conn.server.directory
    try:
        account = await directory.login(
            args.user,
            args.password,
            session.conn.peer.ip,
            log=session.conn.log,
            protocol="imap",
        )
    except sasl.AuthFailed as error:
        raise _failed(session, "LOGIN", error) from None
    return await _logged_in(session, account, "LOGIN")


async def authenticate(session: Session, command: Command) -> Ok:
    """RFC 9051 section 6.2.2 with SASL-IR (RFC 4959): challenges are ``+ base64``, a
    client's ``*`` cancels (BAD), an empty initial response is ``=``."""
    args: Authenticate = command.args
    mechanism = args.mechanism
    if mechanism in PLAINTEXT_MECHANISMS and not plaintext_allowed(session):
        raise No(f"{mechanism} is disabled until STARTTLS", "PRIVACYREQUIRED")
    if mechanism not in mechanisms(session):
        raise No(f"Unsupported mechanism {mechanism}", "CANNOT")
    conn = session.conn

    async def exchange(challenge: bytes) -> bytes:
        session.write(response.continuation(base64.b64encode(challenge)))
        await session.flush()
        try:
            line = await conn.readline(
                sasl.MAX_ENCODED_RESPONSE + 2,
                timeout=session.read_timeout,
                deadline=conn.deadline(),
            )
        except LineTooLong:
            raise sasl.SaslError("SASL response too long") from None
        return sasl.decode_response(line)

    try:
        initial = None
        if args.initial_response is not None:
            initial = sasl.decode_response(args.initial_response)
        account = await conn.server.directory.authenticate(
            mechanism, initial, exchange, conn.peer.ip, log=conn.log, protocol="imap"
        )
    except sasl.AuthAborted:
        raise Bad("Authentication cancelled") from None
    except sasl.SaslError as error:
        raise Bad(error.reason) from None
    except sasl.AuthFailed as error:
        raise _failed(session, mechanism, error) from None
    except ValueError:
        raise No(f"Unsupported mechanism {mechanism}", "CANNOT") from None
    return await _logged_in(session, account, mechanism)


def _failed(session: Session, how: str, error: sasl.AuthFailed) -> No:
    """Count a failure (the directory has logged it); the NO to raise, or Logout after too
    many. A login deferred because the server is busy is not the client's failure."""
    if isinstance(error, LoginDeferred):
        session.metrics["logins"].labels(session.conn.listener.id, "deferred").inc()
        return No("Server busy, try again later", "UNAVAILABLE")
    session.metrics["logins"].labels(session.conn.listener.id, "failure").inc()
    session.auth_failures += 1
    if session.auth_failures >= session.settings.auth.max_failures:
        session.write(response.status("*", "BYE", "Too many failed logins"))
        raise Logout
    if isinstance(error, AuthThrottled):
        return No("Too many failed logins, try again later", "UNAVAILABLE")
    if isinstance(error, TwoFactorRequired):  # the own password, right but not enough
        return No(str(error), "AUTHENTICATIONFAILED")
    return No("Authentication failed", "AUTHENTICATIONFAILED")


async def _logged_in(session: Session, account: Account, how: str) -> Ok:
    from protocols.imap.session import State

    session.account = account
    session.state = State.AUTHENTICATED
    session.metrics["logins"].labels(session.conn.listener.id, "success").inc()
    session.conn.log.info("%s logged in with %s", account.address, how)
    return Ok(f"{account.address} logged in", capability_code(session))


async def enable(session: Session, command: Command) -> Ok:
    """RFC 5161: CONDSTORE, QRESYNC (which implies CONDSTORE, RFC 7162 section 3.2.3),
    IMAP4rev2 (RFC 9051 section 6.3.1) and UTF8=ACCEPT (RFC 6855); other names are ignored,
    as the RFC asks."""
    args: Enable = command.args
    enabled = []
    for name in args.capabilities:
        if name == "CONDSTORE":
            session.enable_condstore()
        elif name == "QRESYNC":
            session.enable_condstore()
            session.options.qresync = True
        elif name == "IMAP4REV2":
            session.utf8 = True
            name = "IMAP4rev2"
        elif name == "UTF8=ACCEPT":
            session.utf8_accept = True  # RFC 6855 section 3
        else:
            continue
        if name not in enabled:
            enabled.append(name)
    session.write(response.untagged("ENABLED" + "".join(f" {name}" for name in enabled)))
    return Ok()
