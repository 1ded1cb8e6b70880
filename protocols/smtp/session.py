"""The I/O side of an SMTP or LMTP session: reads lines and content, runs the policy and
the SASL exchange, sends replies. The protocol rules live in the sans-IO modules.

Pipelining (RFC 2920): replies are collected and sent when the client has nothing more
buffered (it is then waiting for them), before a reply that makes the client wait (``354``,
``334``, ``220`` to STARTTLS), and when the session ends. So a pipelined MAIL, RCPT, RCPT,
DATA group is answered in one write.

Every read is bounded (a command line is at most ``LINE_LIMIT`` octets, content is counted
against ``max-message-size``) and has a timeout (``timeout.command`` for commands,
``timeout.data`` for content); a client that stalls gets ``421 4.4.2`` and is disconnected.
After ``max-bad-commands`` malformed or out-of-sequence commands the session ends with
``421 4.7.0``. A client that disconnects in the middle of content has nothing delivered:
delivery only starts once the whole content is in.
"""

from __future__ import annotations

import binascii

from protocols.smtp import policy, replies
from protocols.smtp.data import ChunkCollector, DataReader
from protocols.smtp.delivering import SessionFacts, complete
from protocols.smtp.filtering import run_filters
from protocols.smtp.intake import Intake
from protocols.smtp.machine import (
    Auth,
    Bdat,
    Data,
    Event,
    Hello,
    MailFrom,
    RcptTo,
    SessionMachine,
    Simple,
)
from protocols.smtp.replies import Reply, reply
from protocols.smtp.settings import LmtpSettings, SmtpSettings
from protocols.smtp.syntax import AUTH_LIMIT, LINE_LIMIT, CommandError, Mailbox
from stalwart_py import sasl
from stalwart_py.directory import AuthThrottled
from stalwart_py.hash_pool import LoginDeferred
from stalwart_py.logs import client_address
from stalwart_py.plugin import Connection, LineTooLong, ReadTimeout
from stalwart_py.store import Account
from stalwart_py.two_factor import TwoFactorRequired

CHUNK = 65536  # the most read at once from a BDAT chunk
# EHLO replies by their lines: the same few (a listener's, for each client's name) are sent at
# every connection, and making one (checks, framing, encoding) costs more than finding it.
EHLO_CACHE_SIZE = 1024
_EHLO_REPLIES: dict[tuple[str, ...], Reply] = {}


class SessionMetrics:
    """This session's children of the SMTP counters (labelled once, counted often)."""

    def __init__(self, conn: Connection) -> None:
        metrics, listener = conn.server.metrics, conn.listener.id
        self.listener = listener
        self._metrics = metrics
        self.received = metrics.child(
            metrics.counter(
                "stalwart_smtp_messages_received",
                "Messages whose content was received",
                ["listener"],
            ),
            listener,
        )
        self.delivered = metrics.child(
            metrics.counter(
                "stalwart_smtp_messages_delivered",
                "Messages accepted for at least one recipient, durably",
                ["listener"],
            ),
            listener,
        )
        self._rejected = metrics.counter(
            "stalwart_smtp_rejected", "Replies with a 4xx or 5xx code", ["listener", "code"]
        )
        self._auth = metrics.counter(
            "stalwart_smtp_auth", "AUTH attempts by result", ["listener", "result"]
        )

    def rejected(self, code: int) -> None:
        self._metrics.child(self._rejected, self.listener, str(code)).inc()

    def auth(self, result: str) -> None:
        self._auth.labels(self.listener, result).inc()


class Session:
    def __init__(self, conn: Connection, *, lmtp: bool) -> None:
        self.conn = conn
        self.settings: LmtpSettings = conn.settings
        self.lmtp = lmtp
        self.machine = SessionMachine(lmtp=lmtp)
        self.hostname = self.settings.hostname or conn.listener.settings.hostname
        self.account: Account | None = None
        self.metrics = SessionMetrics(conn)
        self._out = bytearray()
        self._may_relay = isinstance(self.settings, SmtpSettings) and policy.is_relay_host(
            self.settings, conn.peer
        )
        # Checks of mail from strangers: MX sessions only (see intake.py).
        self.intake = Intake.for_session(conn, may_relay=self._may_relay, hostname=self.hostname)

    # -- replies ----------------------------------------------------------------------------

    def reply(self, answer: Reply) -> None:
        self._out += answer.wire
        if answer.code >= 400:
            self.metrics.rejected(answer.code)

    async def flush(self) -> None:
        if self._out:
            data = bytes(self._out)
            self._out.clear()
            await self.conn.send(data)

    async def send_now(self, answer: Reply) -> None:
        self.reply(answer)
        await self.flush()

    # -- the command loop -------------------------------------------------------------------

    @property
    def checked(self) -> Intake | None:
        """The intake while this session's mail is checked: a stranger's, not a user's."""
        return self.intake if self.account is None else None

    async def run(self) -> None:
        conn = self.conn
        if self.intake is not None and (refusal := await self.intake.connected()) is not None:
            await self.send_now(refusal)  # in place of the greeting (RFC 5321 3.1)
            return
        await conn.send(f"220 {self.hostname} {self.settings.banner}\r\n".encode())
        try:
            while await self._next_command():
                pass
        except ReadTimeout:
            conn.log.info("client timed out")
            await self.send_now(reply(421, "4.4.2", f"{self.hostname} Timeout, closing"))

    async def _next_command(self) -> bool:
        """Read and answer one command; False when the session is over."""
        conn = self.conn
        if self._out and not conn.buffered():
            await self.flush()
        if conn.draining and self.machine.transaction is None:
            await self.send_now(reply(421, "4.3.2", f"{self.hostname} Server shutting down"))
            return False
        timeout = self.settings.timeout.command
        try:
            deadline = await conn.begin_command(timeout=timeout)
            line = await conn.readline(LINE_LIMIT, timeout=timeout, deadline=deadline)
        except LineTooLong:
            self.machine.count_bad_command()
            return await self._bad_command(replies.LINE_TOO_LONG)
        try:
            event = self.machine.receive(line)
        except CommandError as error:
            return await self._bad_command(error.reply)
        return await self._dispatch(event)

    async def _bad_command(self, answer: Reply) -> bool:
        self.reply(answer)
        self.conn.log.info("bad command from %s: %s", self.conn.peer, answer)
        if self.machine.bad_commands >= self.settings.max_bad_commands:
            self.conn.log.info("too many bad commands, closing")
            await self.send_now(reply(421, "4.7.0", f"{self.hostname} Too many errors"))
            return False
        return True

    async def _dispatch(self, event: Event) -> bool:
        match event:
            case MailFrom():
                await self._mail(event)
            case RcptTo():
                await self._rcpt(event)
            case Data():
                await self._data()
            case Bdat():
                return await self._bdat(event)
            case Hello():
                self._hello(event)
            case Auth():
                await self._auth(event)
            case Simple(verb="QUIT"):
                await self.send_now(replies.BYE)
                return False
            case Simple(verb="STARTTLS"):
                await self._starttls()
            case Simple(verb="RSET"):
                self.machine.reset()
                self.reply(replies.RESET)
            case Simple(verb="NOOP"):
                self.reply(replies.OK)
            case Simple(verb="VRFY"):
                self.reply(replies.VRFY)
            case Simple(verb="HELP"):
                self.reply(replies.HELP)
        return True

    # -- commands ---------------------------------------------------------------------------

    def _hello(self, hello: Hello) -> None:
        self.machine.accept_hello(hello)
        if not hello.extended:
            self.reply(reply(250, None, self.hostname))
            return
        lines = [
            f"{self.hostname} Hello {hello.domain}",
            "PIPELINING",
            f"SIZE {self.settings.max_message_size}",
            "8BITMIME",
            "SMTPUTF8",
            "ENHANCEDSTATUSCODES",
            "CHUNKING",
            "DSN",
        ]
        if self.conn.tls is None:
            lines.append("STARTTLS")
        if mechanisms := self._auth_mechanisms():
            lines.append("AUTH " + " ".join(mechanisms))
        key = tuple(lines)
        answer = _EHLO_REPLIES.get(key)
        if answer is None:
            if len(_EHLO_REPLIES) >= EHLO_CACHE_SIZE:  # clients' names are theirs to choose
                _EHLO_REPLIES.clear()
            answer = _EHLO_REPLIES[key] = reply(250, None, *lines)
        self.reply(answer)

    def _auth_mechanisms(self) -> tuple[str, ...]:
        """What AUTH offers now: nothing for LMTP, after AUTH, or before TLS unless
        ``auth.allow-plaintext`` (RFC 4954 4: no plaintext passwords in the clear)."""
        settings = self.settings
        if not isinstance(settings, SmtpSettings) or self.account is not None:
            return ()
        if self.conn.tls is None and not settings.auth.allow_plaintext:
            return ()
        offered = self.conn.server.directory.mechanisms()
        return tuple(m for m in settings.auth.mechanisms if m in offered)

    async def _mail(self, mail: MailFrom) -> None:
        try:
            refusal = await policy.check_sender(
                self.conn.server.directory,
                self.settings,
                mail,
                account=self.account,
                messages=self.machine.messages,
            )
        except Exception:  # the directory's database: a transient failure, not the client's
            self.conn.log.exception("checking the sender failed")
            refusal = replies.TEMPORARY_FAILURE
        if refusal is None and (intake := self.checked) is not None:
            hello = self.machine.hello
            sender = mail.sender.address if mail.sender is not None else ""
            refusal = await intake.mail(sender, hello.domain if hello is not None else "")
        if refusal is not None:
            self.reply(refusal)
            return
        self.machine.accept_mail(mail)
        self.reply(replies.SENDER_OK)

    async def _rcpt(self, rcpt: RcptTo) -> None:
        bare_postmaster = not rcpt.recipient.domain  # <Postmaster>: ours (RFC 5321 4.5.1)
        if bare_postmaster:
            rcpt = RcptTo(Mailbox("postmaster", self.hostname), rcpt.params)
        transaction = self.machine.transaction
        assert transaction is not None
        try:
            refusal, report_kind, resolution = await policy.check_recipient(
                self.conn.server.directory,
                self.settings,
                transaction,
                rcpt,
                may_relay=self._may_relay or self.account is not None,
                bare_postmaster=bare_postmaster,
            )
        except Exception:
            self.conn.log.exception("checking the recipient failed")
            refusal, report_kind, resolution = replies.TEMPORARY_FAILURE, None, None
        if refusal is not None:
            if refusal is replies.RELAY_DENIED:
                # For people and fail2ban, like the directory's "login failed" line: the
                # address first, then what the client chose.
                self.conn.log.info(
                    "relay denied from %s: sender=<%s> recipient=<%s>",
                    client_address(self.conn.peer.ip),
                    transaction.mail_from,
                    rcpt.recipient.address,
                )
            self.reply(refusal)
            return
        intake = self.checked if report_kind is None else None
        if intake is not None and (refusal := await intake.rcpt()) is not None:
            self.reply(refusal)  # a DNS blocklist (intake.py)
            return
        self.machine.accept_rcpt(rcpt, report_kind, resolution)
        self.reply(replies.RECIPIENT_OK)

    async def _data(self) -> None:
        conn, settings = self.conn, self.settings
        self.reply(replies.START_DATA)
        await self.flush()
        reader = DataReader(
            settings.max_message_size,
            bare_lf=settings.bare_lf,
            bare_cr=settings.bare_cr,
            max_line_length=settings.max_line_length,
        )
        timeout = settings.timeout.data
        # The content's deadline moves on with every byte at min-data-rate: a message of any
        # size may take the time its size needs, a trickle is cut off (Postfix's
        # smtpd_min_data_rate).
        deadline = conn.deadline()
        while not reader.done:
            if not conn.buffered():
                await conn.peek(1, timeout=timeout, deadline=deadline)  # wait for more
            consumed = reader.feed(await conn.peek(conn.buffered()))
            await conn.receive(consumed)
            deadline = conn.allow_for(deadline, consumed)
        await self._finish(reader.message())

    async def _bdat(self, bdat: Bdat) -> bool:
        transaction = self.machine.transaction
        collector = None
        if bdat.refusal is None:
            assert transaction is not None
            if transaction.chunks is None:
                transaction.chunks = ChunkCollector(
                    self.settings.max_message_size,
                    bare_lf=self.settings.bare_lf,
                    bare_cr=self.settings.bare_cr,
                )
            collector = transaction.chunks
        remaining = bdat.size
        deadline = self.conn.deadline(bdat.size)
        while remaining > 0:
            data = await self.conn.receive(
                min(remaining, CHUNK), timeout=self.settings.timeout.data, deadline=deadline
            )
            remaining -= len(data)
            if collector is not None:
                collector.add(data)
        if bdat.refusal is not None or collector is None:
            return await self._bad_command(bdat.refusal or replies.NO_MAIL)
        collector.chunks += 1
        if not bdat.last:
            # Past the size limit, every further chunk of the transaction is refused too;
            # the client then sends RSET (RFC 3030 2).
            self.reply(
                replies.TOO_BIG
                if collector.too_big
                else reply(250, "2.0.0", f"{bdat.size} octets received")
            )
            return True
        await self._finish(collector.message())
        return True

    async def _finish(self, message: bytes | Reply) -> None:
        """The content is in: deliver it (or refuse it) and answer."""
        transaction = self.machine.transaction
        assert transaction is not None
        self.machine.end_transaction()
        if isinstance(message, Reply):
            self.conn.log.info("message refused: %s", message)
            # LMTP owes one reply per accepted recipient (RFC 2033 4.2), refusals included.
            count = len(transaction.recipients) if self.lmtp else 1
            for _ in range(count):
                self.reply(message)
            return
        self.metrics.received.inc()
        quarantine = None
        if (intake := self.checked) is not None:
            outcome = await intake.data(message)
            if isinstance(outcome, Reply):
                self.reply(outcome)
                return
            message, quarantine = outcome.message, outcome.quarantine
        hello = self.machine.hello
        if self.settings.filters:  # smtp.filters: after our checks, before delivery
            accepted = len(transaction.recipients)  # LMTP answers each (RFC 2033 4.2)
            filtered = await run_filters(
                self.conn,
                self.settings.filters,
                transaction,
                message,
                helo=hello.domain if hello is not None else None,
                authenticated=self.account.address if self.account is not None else None,
                hostname=self.hostname,
                quarantine=quarantine,
            )
            if isinstance(filtered, Reply):
                for _ in range(accepted if self.lmtp else 1):
                    self.reply(filtered)
                return
            message, quarantine = filtered.message, filtered.quarantine
        facts = SessionFacts(
            lmtp=self.lmtp,
            extended=hello is not None and hello.extended,
            helo=hello.domain if hello is not None else None,
            authenticated=self.account.address if self.account is not None else None,
            hostname=self.hostname,
            quarantine=quarantine,
        )
        answers = await complete(self.conn, facts, transaction, message)
        if any(answer.code < 300 for answer in answers):
            self.metrics.delivered.inc()
        for answer in answers:
            self.reply(answer)

    async def _starttls(self) -> None:
        if self.conn.tls is not None:
            self.reply(replies.TLS_ACTIVE)
            return
        self.reply(replies.START_TLS)
        await self.flush()
        await self.conn.start_tls()
        self.machine.restart()
        self.account = None
        self.conn.log.debug("TLS started: %s", self.conn.tls)

    # -- AUTH (RFC 4954) --------------------------------------------------------------------

    async def _auth(self, auth: Auth) -> None:
        if self.account is not None:
            self.reply(replies.ALREADY_AUTHENTICATED)
            return
        settings = self.settings
        assert isinstance(settings, SmtpSettings)
        if self.conn.tls is None and not settings.auth.allow_plaintext:
            self.reply(replies.ENCRYPTION_REQUIRED)
            return
        if auth.mechanism not in self._auth_mechanisms():
            self.reply(replies.UNKNOWN_MECHANISM)
            return
        result, answer = await self._authenticate(auth)
        self.metrics.auth(result)
        self.reply(answer)

    async def _authenticate(self, auth: Auth) -> tuple[str, Reply]:
        """Run the exchange; (result label for the metric, the reply)."""
        conn = self.conn
        try:
            initial = None
            if auth.initial_response is not None:
                initial = sasl.decode_response(auth.initial_response.encode())
            account = await conn.server.directory.authenticate(
                auth.mechanism,
                initial,
                self._exchange,
                conn.peer.ip,
                log=conn.log,
                protocol="smtp",
            )
        except LoginDeferred:  # the directory logs deferrals
            return "deferred", replies.AUTH_DEFERRED
        except AuthThrottled:  # the directory logs refusals
            return "throttled", replies.AUTH_THROTTLED
        except TwoFactorRequired as error:  # the own password, right but not enough
            return "failure", reply(535, "5.7.8", str(error))
        except sasl.AuthFailed:
            return "failure", replies.AUTH_FAILED
        except sasl.AuthAborted:
            return "aborted", replies.AUTH_ABORTED
        except sasl.SaslError as error:
            return "error", reply(501, "5.5.2", f"Invalid SASL data: {error.reason}")
        except _ResponseTooLong:
            return "error", reply(500, "5.5.6", "Authentication exchange line is too long")
        except ValueError:
            return "error", replies.UNKNOWN_MECHANISM
        self.account = account
        conn.log.info("authenticated as %s with %s", account.address, auth.mechanism)
        return "success", replies.AUTH_OK

    async def _exchange(self, challenge: bytes) -> bytes:
        """One SASL round trip: ``334 <base64>`` out, the client's base64 line in."""
        encoded = binascii.b2a_base64(challenge, newline=False).decode("ascii")
        await self.send_now(reply(334, None, encoded))
        try:
            line = await self.conn.readline(
                AUTH_LIMIT, timeout=self.settings.timeout.command, deadline=self.conn.deadline()
            )
        except LineTooLong:
            raise _ResponseTooLong from None
        return sasl.decode_response(line)


class _ResponseTooLong(Exception):
    """A SASL response line over the RFC 4954 limit."""
