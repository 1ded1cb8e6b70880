"""A POP3 session: the loop that reads commands and the commands of each state.

States (RFC 1939 section 3): AUTHORIZATION (USER, PASS, AUTH, STLS, UTF8, CAPA, QUIT),
TRANSACTION once the maildrop is locked (STAT, LIST, RETR, DELE, NOOP, RSET, TOP, UIDL,
CAPA, QUIT) and UPDATE, entered by QUIT from TRANSACTION, where the marked messages are
removed in one store transaction and the lock is released. A session that ends otherwise
(the client leaves, the autologout timer) removes nothing.

Extensions: CAPA (RFC 2449) with response codes (``[IN-USE]``, ``[SYS/TEMP]``, RFC 3206's
``[AUTH]``); STLS (RFC 2595: only in AUTHORIZATION, and pipelined bytes sent before the
handshake are dropped by the connection); AUTH (RFC 5034: the server's SASL mechanisms, an
initial response, ``=`` for an empty one, challenges ``+ base64``, ``*`` cancels; a bare
``AUTH`` lists the mechanisms, as RFC 1734 clients expect); UTF8 (RFC 6856: user names and
passwords are UTF-8, and messages go out as they are stored). PIPELINING: replies to
commands that arrived together are sent together.

Authentication policy (``pop3.auth``, as IMAP's): without TLS and unless ``allow-plaintext``
is set, USER/PASS and the mechanisms that send the password (PLAIN, LOGIN) are refused and
not advertised; failures are slowed and throttled by the directory, and after
``max-failures`` in one session it ends.
"""

from __future__ import annotations

import binascii
import contextlib
import enum
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from protocols.pop3.maildrop import Maildrop, MaildropError, MaildropLock
from protocols.pop3.settings import Pop3Settings
from protocols.pop3.syntax import (
    BadCommand,
    Shape,
    block,
    err,
    message_reply,
    ok,
    parse_command,
    shape,
    stuffed,
    top,
    with_crlf,
)
from stalwart_py.plugin import (
    MAX_SASL_RESPONSE,
    SERVER_VERSION,
    Account,
    AuthAborted,
    AuthFailed,
    AuthThrottled,
    Connection,
    ConnectionClosed,
    LineTooLong,
    LoginDeferred,
    MessageInfo,
    NotFound,
    ReadTimeout,
    SaslError,
    StoreError,
    TwoFactorRequired,
    decode_sasl_response,
)

PLAINTEXT_MECHANISMS = frozenset(("PLAIN", "LOGIN"))
LINE_LIMIT = MAX_SASL_RESPONSE + 64  # an AUTH line with its initial response, at most
FLUSH_AT = 64 * 1024  # pipelined replies are sent together up to this much
READ_BATCH = 8 * 1024 * 1024  # octets of message bodies read at once to learn their sizes
SHAPE_INLINE = 256 * 1024  # bodies measured on the event loop; more in a worker thread

# Bodies' shapes (octets as RETR sends them, dot-led lines), by store and body id: a body
# never changes and its id is never given to another (stalwart_py.store.blobs), so what is
# learnt once holds for later sessions.
_SHAPES: weakref.WeakKeyDictionary[Any, dict[int, Shape]] = weakref.WeakKeyDictionary()
_SHAPES_MAX = 200_000


class State(enum.Enum):
    AUTHORIZATION = "authorization"
    TRANSACTION = "transaction"


@dataclass(frozen=True, slots=True)
class Reply:
    data: bytes
    close: bool = False  # send data, then close (QUIT, too many failures)
    start_tls: bool = False  # send data, then the TLS handshake (STLS)
    bad: bool = False  # malformed or unknown: counts towards max-bad-commands


class Session:
    def __init__(self, conn: Connection, counters: dict[str, Any]) -> None:
        self.conn = conn
        self.settings: Pop3Settings = conn.settings or Pop3Settings()
        self.counters = counters
        self.state = State.AUTHORIZATION
        self.user: str | None = None  # the name USER gave, for PASS
        self.account: Account | None = None
        self.maildrop: Maildrop | None = None
        self.lock: MaildropLock | None = None
        self.utf8 = False
        self.auth_failures = 0
        self.bad_in_a_row = 0
        self.pending: list[bytes] = []
        self.hostname = conn.listener.settings.hostname
        self.lock_directory = Path(conn.server.config.storage.data_dir) / "pop3" / "locks"
        self.shapes = _SHAPES.setdefault(conn.server.store, {})  # looked up once, not per RETR

    # -- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        conn = self.conn
        try:
            # No APOP timestamp in the greeting: APOP is not offered (RFC 1939 section 7).
            await conn.send(ok(f"{self.hostname} stalwart-py POP3 ready"))
            while True:
                if conn.draining and not conn.buffered():
                    await conn.send(err("Server shutting down", "SYS/TEMP"))
                    return
                reply = await self._next_reply()
                self.pending.append(reply.data)
                # PIPELINING: while more commands wait, their replies go out together.
                waiting = conn.buffered() and sum(map(len, self.pending)) < FLUSH_AT
                if reply.close or reply.start_tls or not waiting:
                    await self.flush()
                if reply.close:
                    return
                if reply.start_tls:
                    await conn.start_tls()
                    self.user = None  # RFC 2595 section 4: nothing of before TLS is kept
        except ReadTimeout:
            conn.log.info("autologout: idle timeout in the %s state", self.state.value)
            with contextlib.suppress(ConnectionClosed):
                await conn.send(err("Disconnected for inactivity", "SYS/TEMP"))
        except ConnectionClosed:
            return
        finally:
            if self.lock is not None:
                self.lock.release()

    async def flush(self) -> None:
        if self.pending:
            data = b"".join(self.pending)
            self.pending.clear()
            await self.conn.send(data)

    def _timeout(self) -> float | None:
        """Before login the listener's idle-timeout; then the autologout timer."""
        return None if self.state is State.AUTHORIZATION else self.settings.idle_timeout

    async def _next_reply(self) -> Reply:
        conn = self.conn
        timeout = self._timeout()
        deadline = await conn.begin_command(timeout=timeout)
        try:
            line = await conn.readline(LINE_LIMIT, timeout=timeout, deadline=deadline)
        except LineTooLong:
            reply = Reply(err("line too long"), bad=True)
        else:
            reply = await self.execute(line)
        if not reply.bad:
            self.bad_in_a_row = 0
            return reply
        self.bad_in_a_row += 1
        self.counters["bad"].labels(conn.listener.id).inc()
        conn.log.info("bad command %d: %s", self.bad_in_a_row, reply.data[:200])
        if self.bad_in_a_row >= self.settings.max_bad_commands:
            return Reply(reply.data + err("Too many bad commands, closing"), close=True)
        return reply

    async def execute(self, line: bytes) -> Reply:
        command = parse_command(line)
        if isinstance(command, BadCommand):
            return Reply(err(command.reason), bad=True)
        entry = _COMMANDS.get(command.name)
        if entry is None:
            return Reply(err(f"unknown command {command.name}"), bad=True)
        handler, states = entry
        if self.state not in states:
            return Reply(err(f"{command.name} is not valid in the {self.state.value} state"))
        try:
            return await handler(self, command.args)
        except MaildropError as error:
            return Reply(err(str(error)))

    # -- any state ------------------------------------------------------------------------

    def capabilities(self) -> list[str]:
        """RFC 2449 section 6; what depends on TLS and the state is left out when it does
        not apply (no USER or password mechanisms before TLS, no STLS after it)."""
        caps = ["TOP", "UIDL"]
        if self.state is State.AUTHORIZATION:
            if self._plaintext_allowed():
                caps.append("USER")
            mechanisms = self.mechanisms()
            if mechanisms:
                caps.append("SASL " + " ".join(mechanisms))
            if self.conn.tls is None:
                caps.append("STLS")
        caps += [
            "RESP-CODES",
            "AUTH-RESP-CODE",
            "PIPELINING",
            "EXPIRE NEVER",  # RFC 2449 6.7: messages are never removed by the server itself
            "UTF8 USER",  # RFC 6856 2: and user names and passwords may be UTF-8
            f"IMPLEMENTATION stalwart-py {SERVER_VERSION}",
        ]
        return caps

    async def cmd_capa(self, args: tuple[str, ...]) -> Reply:
        return Reply(block(ok("Capability list follows"), self.capabilities()))

    async def cmd_quit(self, args: tuple[str, ...]) -> Reply:
        if self.state is State.TRANSACTION:
            return await self._update()
        return Reply(ok(f"{self.hostname} POP3 server signing off"), close=True)

    # -- AUTHORIZATION ------------------------------------------------------------------------

    def _plaintext_allowed(self) -> bool:
        return self.conn.tls is not None or self.settings.auth.allow_plaintext

    def mechanisms(self) -> list[str]:
        offered = self.conn.server.directory.mechanisms()
        if self._plaintext_allowed():
            return list(offered)
        return [name for name in offered if name not in PLAINTEXT_MECHANISMS]

    async def cmd_stls(self, args: tuple[str, ...]) -> Reply:
        if self.conn.tls is not None:
            return Reply(err("TLS is already active"))
        return Reply(ok("Begin TLS negotiation now"), start_tls=True)

    async def cmd_utf8(self, args: tuple[str, ...]) -> Reply:
        if args:
            return Reply(err("UTF8 takes no arguments"), bad=True)
        self.utf8 = True
        return Reply(ok("UTF8 enabled"))

    async def cmd_user(self, args: tuple[str, ...]) -> Reply:
        if not self._plaintext_allowed():
            return Reply(err("Plaintext authentication is disabled until STLS", "AUTH"))
        if len(args) != 1:
            return Reply(err("USER takes one argument, the user name"), bad=True)
        self.user = args[0]
        return Reply(ok("Send PASS"))

    async def cmd_pass(self, args: tuple[str, ...]) -> Reply:
        user, self.user = self.user, None
        if user is None:
            return Reply(err("USER comes first"))
        if not args:
            return Reply(err("PASS takes the password"), bad=True)
        conn = self.conn
        try:
            account = await conn.server.directory.login(
                user, args[0], conn.peer.ip, mechanism="USER", log=conn.log, protocol="pop3"
            )
        except AuthFailed as error:
            return self._failed(error)
        return await self._logged_in(account, "USER/PASS")

    async def cmd_auth(self, args: tuple[str, ...]) -> Reply:
        if not args:  # RFC 1734: the list of mechanisms
            return Reply(block(ok("Mechanisms follow"), self.mechanisms()))
        if len(args) > 2:
            return Reply(err("AUTH takes a mechanism and an optional initial response"), bad=True)
        mechanism = args[0].upper()
        if mechanism in PLAINTEXT_MECHANISMS and not self._plaintext_allowed():
            return Reply(err(f"{mechanism} is disabled until STLS", "AUTH"))
        if mechanism not in self.mechanisms():
            return Reply(err(f"Unsupported mechanism {mechanism[:30]}"))
        conn = self.conn
        try:
            initial = None
            if len(args) == 2:
                initial = decode_sasl_response(args[1].encode())
            account = await conn.server.directory.authenticate(
                mechanism, initial, self._exchange, conn.peer.ip, log=conn.log, protocol="pop3"
            )
        except AuthAborted:
            self.counters["logins"].labels(conn.listener.id, "aborted").inc()
            return Reply(err("Authentication cancelled"))
        except SaslError as error:
            self.counters["logins"].labels(conn.listener.id, "error").inc()
            return Reply(err(error.reason))
        except AuthFailed as error:
            return self._failed(error)
        except ValueError:
            return Reply(err(f"Unsupported mechanism {mechanism[:30]}"))
        return await self._logged_in(account, mechanism)

    async def _exchange(self, challenge: bytes) -> bytes:
        """One SASL round (RFC 5034 section 4): ``+ <base64>``, the client's line back."""
        await self.flush()
        await self.conn.send(b"+ " + binascii.b2a_base64(challenge, newline=False) + b"\r\n")
        try:
            line = await self.conn.readline(
                MAX_SASL_RESPONSE + 2, deadline=self.conn.deadline(MAX_SASL_RESPONSE)
            )
        except LineTooLong:
            raise SaslError("SASL response too long") from None
        return decode_sasl_response(line)

    def _failed(self, error: AuthFailed) -> Reply:
        """The reply to a refused login (the directory has logged it); a login deferred
        because the server is busy is not the client's failure."""
        if isinstance(error, LoginDeferred):
            self.counters["logins"].labels(self.conn.listener.id, "deferred").inc()
            return Reply(err("Server busy, try again later", "SYS/TEMP"))
        self.counters["logins"].labels(self.conn.listener.id, "failure").inc()
        self.auth_failures += 1
        if self.auth_failures >= self.settings.auth.max_failures:
            return Reply(err("Too many failed logins, closing", "AUTH"), close=True)
        if isinstance(error, AuthThrottled):
            return Reply(err("Too many failed logins, try again later", "SYS/TEMP"))
        if isinstance(error, TwoFactorRequired):  # the own password, right but not enough
            return Reply(err(str(error), "AUTH"))
        return Reply(err("Authentication failed", "AUTH"))

    async def _logged_in(self, account: Account, how: str) -> Reply:
        """Lock the maildrop and take its snapshot (RFC 1939 section 4)."""
        conn = self.conn
        lock = MaildropLock(self.lock_directory, account.id)
        if not lock.acquire():
            self.counters["logins"].labels(conn.listener.id, "in-use").inc()
            conn.log.info("%s logged in with %s: maildrop in use", account.address, how)
            return Reply(err("Maildrop already locked by another session", "IN-USE"))
        try:
            store = conn.server.store
            inbox = await store.get_mailbox(account.id, "INBOX")
            if inbox is None:
                raise NotFound("the account has no INBOX")
            messages = await store.messages(inbox.id)
        except BaseException:
            lock.release()
            raise
        self.lock = lock
        self.account = account
        self.maildrop = Maildrop.snapshot(inbox.id, inbox.uidvalidity, messages)
        self.state = State.TRANSACTION
        self.counters["logins"].labels(conn.listener.id, "success").inc()
        conn.log.info("%s logged in with %s (%d messages)", account.address, how, len(messages))
        return Reply(ok(f"{account.address} has {len(messages)} messages, maildrop locked"))

    # -- TRANSACTION ------------------------------------------------------------------------

    @property
    def drop(self) -> Maildrop:
        assert self.maildrop is not None
        return self.maildrop

    async def _learn_sizes(self, numbers: list[int]) -> None:
        """Fill ``drop.sizes`` for these messages, reading the bodies not yet measured."""
        drop = self.drop
        store = self.conn.server.store
        known = self.shapes
        unknown = []
        for number in numbers:
            if number in drop.sizes:
                continue
            info = drop.messages[number - 1]
            found = known.get(info.blob_id)
            if found is None:
                unknown.append(number)
            else:
                drop.sizes[number] = found.octets
        while unknown:
            batch, total = [], 0
            while unknown and total < READ_BATCH:
                number = unknown.pop()
                batch.append(number)
                total += drop.messages[number - 1].size
            bodies = await store.read_blobs([drop.messages[n - 1].blob_id for n in batch])
            # Three scans of every body: in a worker thread once they add up to more than a
            # RETR's worth, so that learning a big maildrop's sizes stalls no other session.
            if sum(map(len, bodies.values())) > SHAPE_INLINE:
                shapes = await anyio.to_thread.run_sync(_shapes_of, bodies)
            else:
                shapes = _shapes_of(bodies)
            for number in batch:
                info = drop.messages[number - 1]
                found = shapes.get(info.blob_id)
                # A body gone meanwhile (expunged over IMAP): its stored size stands.
                if found is None:
                    drop.sizes[number] = info.size
                else:
                    drop.sizes[number] = _remember(known, info.blob_id, found).octets

    async def _size_of_live(self) -> tuple[list[int], int]:
        live = self.drop.live()
        await self._learn_sizes(live)
        return live, sum(self.drop.sizes[n] for n in live)

    async def cmd_stat(self, args: tuple[str, ...]) -> Reply:
        if args:
            return Reply(err("STAT takes no arguments"), bad=True)
        live, size = await self._size_of_live()
        return Reply(ok(f"{len(live)} {size}"))

    async def cmd_list(self, args: tuple[str, ...]) -> Reply:
        return await self._listing(args, lambda n: str(self.drop.sizes[n]), sizes=True)

    async def cmd_uidl(self, args: tuple[str, ...]) -> Reply:
        return await self._listing(args, self.drop.unique_id, sizes=False)

    async def _listing(
        self, args: tuple[str, ...], value: Callable[[int], str], *, sizes: bool
    ) -> Reply:
        """LIST and UIDL: one message (``+OK n value``) or all of them (a block)."""
        if len(args) > 1:
            return Reply(err("takes at most one message number"), bad=True)
        if args:
            number, _info = self.drop.message(args[0])
            if sizes:
                await self._learn_sizes([number])
            return Reply(ok(f"{number} {value(number)}"))
        if sizes:
            live, size = await self._size_of_live()
            first = ok(f"{len(live)} messages ({size} octets)")
        else:
            live = self.drop.live()
            first = ok(f"{len(live)} messages")
        return Reply(block(first, (f"{n} {value(n)}" for n in live)))

    async def _body(
        self, args: tuple[str, ...], count: int
    ) -> tuple[int, MessageInfo, bytes] | Reply:
        """The message the first argument names and its body as stored."""
        if len(args) != count:
            return Reply(err("wrong number of arguments"), bad=True)
        number, info = self.drop.message(args[0])
        try:
            data = (await self.conn.server.store.read_blobs([info.blob_id])).get(info.blob_id)
        except StoreError as error:
            self.conn.log.warning("message %d (uid %d) unreadable: %s", number, info.uid, error)
            data = None
        if data is None:
            return Reply(err(f"message {number} was removed by another session", "SYS/TEMP"))
        return number, info, data

    async def cmd_retr(self, args: tuple[str, ...]) -> Reply:
        found = await self._body(args, 1)
        if isinstance(found, Reply):
            return found
        number, info, data = found
        known = self.shapes
        body = known.get(info.blob_id) or _remember(known, info.blob_id, shape(data))
        self.drop.sizes[number] = body.octets
        self.drop.retrieved.add(number)
        return Reply(message_reply(ok(f"{body.octets} octets"), data, body))

    async def cmd_top(self, args: tuple[str, ...]) -> Reply:
        if len(args) == 2 and not (args[1].isascii() and args[1].isdigit()):
            return Reply(err("TOP takes a message number and a number of lines"), bad=True)
        found = await self._body(args, 2)
        if isinstance(found, Reply):
            return found
        _number, _info, data = found
        lines = int(args[1][:10])
        return Reply(ok("top of message follows") + stuffed(top(with_crlf(data), lines)))

    async def cmd_dele(self, args: tuple[str, ...]) -> Reply:
        if len(args) != 1:
            return Reply(err("DELE takes a message number"), bad=True)
        number, _info = self.drop.message(args[0])
        self.drop.deleted.add(number)
        return Reply(ok(f"message {number} deleted"))

    async def cmd_noop(self, args: tuple[str, ...]) -> Reply:
        return Reply(ok("")) if not args else Reply(err("NOOP takes no arguments"), bad=True)

    async def cmd_rset(self, args: tuple[str, ...]) -> Reply:
        if args:
            return Reply(err("RSET takes no arguments"), bad=True)
        self.drop.deleted.clear()
        live, size = await self._size_of_live()
        return Reply(ok(f"maildrop has {len(live)} messages ({size} octets)"))

    # -- UPDATE -----------------------------------------------------------------------------

    async def _update(self) -> Reply:
        """RFC 1939 section 6: remove the marked messages (one store transaction, so all or
        none; IMAP sessions see them expunged), mark what was retrieved \\Seen, unlock."""
        drop, conn = self.drop, self.conn
        store = conn.server.store
        removed: list[int] = []
        try:
            seen = drop.retrieved_uids() if self.settings.mark_seen else []
            if seen:
                await store.update_flags(drop.mailbox_id, seen, "add", frozenset({"\\Seen"}))
            if drop.deleted:
                removed = await store.remove_messages(drop.mailbox_id, drop.deleted_uids())
        except (StoreError, NotFound) as error:
            conn.log.warning("UPDATE failed: %s", error)
            return Reply(err("Deleted messages not removed", "SYS/TEMP"), close=True)
        finally:
            if self.lock is not None:
                self.lock.release()
        self.counters["deleted"].labels(conn.listener.id).inc(len(removed))
        conn.log.info(
            "QUIT: %d retrieved, %d deleted, %d left",
            len(drop.retrieved),
            len(removed),
            len(drop.messages) - len(removed),
        )
        return Reply(
            ok(f"{self.hostname} POP3 server signing off ({len(removed)} messages deleted)"),
            close=True,
        )


def _shapes_of(bodies: dict[int, bytes]) -> dict[int, Shape]:
    return {blob_id: shape(data) for blob_id, data in bodies.items()}


def _remember(known: dict[int, Shape], blob_id: int, found: Shape) -> Shape:
    if len(known) >= _SHAPES_MAX:
        del known[next(iter(known))]  # the oldest
    known[blob_id] = found
    return found


_AUTHORIZATION = frozenset({State.AUTHORIZATION})
_TRANSACTION = frozenset({State.TRANSACTION})
_ANY = frozenset(State)

_COMMANDS: dict[str, tuple[Callable[..., Any], frozenset[State]]] = {
    "CAPA": (Session.cmd_capa, _ANY),
    "QUIT": (Session.cmd_quit, _ANY),
    "STLS": (Session.cmd_stls, _AUTHORIZATION),
    "UTF8": (Session.cmd_utf8, _AUTHORIZATION),
    "USER": (Session.cmd_user, _AUTHORIZATION),
    "PASS": (Session.cmd_pass, _AUTHORIZATION),
    "AUTH": (Session.cmd_auth, _AUTHORIZATION),
    "STAT": (Session.cmd_stat, _TRANSACTION),
    "LIST": (Session.cmd_list, _TRANSACTION),
    "UIDL": (Session.cmd_uidl, _TRANSACTION),
    "RETR": (Session.cmd_retr, _TRANSACTION),
    "TOP": (Session.cmd_top, _TRANSACTION),
    "DELE": (Session.cmd_dele, _TRANSACTION),
    "NOOP": (Session.cmd_noop, _TRANSACTION),
    "RSET": (Session.cmd_rset, _TRANSACTION),
}
