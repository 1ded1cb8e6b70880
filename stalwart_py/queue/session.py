"""One outbound SMTP connection: connect, greeting, EHLO, STARTTLS, AUTH, transactions.

The grammar lives in ``protocol.py``; this module does the I/O (anyio streams) and applies
the rules of a sending client:

* RFC 5321 4.5.3.2 timeouts: every read waits at most ``command_timeout``, the reply to the
  end of DATA at most ``data_timeout``.
* STARTTLS (RFC 3207): ``opportunistic`` encrypts when the server offers it and does not
  check the certificate (RFC 7435: better than plain text); ``starttls`` requires it and
  checks the certificate against the host name; ``implicit`` starts with TLS (RFC 8314).
  After the handshake the client forgets what it knew and says EHLO again.
* AUTH (RFC 4954) with PLAIN, else LOGIN, only once the connection is encrypted.
* PIPELINING (RFC 2920): MAIL, every RCPT and DATA go in one write, then the replies are read.
* One transaction per message for all its recipients at this destination; the connection
  then serves the next message (RSET after a transaction that did not complete).
"""

from __future__ import annotations

import base64
import contextlib
import ssl
from collections.abc import Callable
from dataclasses import dataclass

import anyio
from anyio.abc import ByteStream
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.tls import TLSAttribute, TLSStream

from stalwart_py.config.schema import RouteTLS
from stalwart_py.queue import dane
from stalwart_py.queue.protocol import (
    MAX_LINE,
    Capabilities,
    ProtocolError,
    Reply,
    ReplyReader,
    data_body,
    is_8bit,
    mail_command,
    needs_smtputf8,
    rcpt_command,
)
from stalwart_py.resolver import Tlsa


@dataclass(frozen=True, slots=True)
class Target:
    """One address of one host to try, and how to talk to it."""

    host: str  # the name: TLS verification and SNI, and the DSN's Remote-MTA
    address: str  # the IP address to connect to
    port: int
    tls: RouteTLS
    user: str | None = None
    password: str | None = None
    # TLS required (tls "starttls"/"implicit") but verified by DANE rather than PKIX: the
    # usable TLSA records (empty with pkix=False: encrypted, not authenticated; RFC 7672 2.2).
    dane: tuple[Tlsa, ...] = ()
    pkix: bool = True


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float
    command: float
    data: float


class SessionFailed(Exception):
    """The connection could not be used: ``reply`` is the server's when it gave one."""

    def __init__(
        self, status: str, text: str, reply: Reply | None = None, tls_result: str | None = None
    ) -> None:
        super().__init__(text)
        self.status = status  # RFC 3463
        self.reply = reply
        self.tls_result = tls_result  # a TLS failure's TLS-RPT result type (RFC 8460 4.3)

    @property
    def permanent(self) -> bool:
        return self.status.startswith("5")

    def diagnostic(self) -> str:
        return str(self.reply) if self.reply is not None else str(self)


@dataclass(frozen=True, slots=True)
class Rcpt:
    address: str
    notify: tuple[str, ...] = ()
    orcpt: str | None = None


@dataclass(frozen=True, slots=True)
class Transaction:
    mail_from: str
    recipients: tuple[Rcpt, ...]
    data: bytes
    ret: str | None = None
    envid: str | None = None
    smtputf8: bool = False


TLSContexts = Callable[[bool], ssl.SSLContext]  # verify -> context


class SmtpSession:
    def __init__(self, target: Target, stream: ByteStream, timeouts: Timeouts) -> None:
        self.target = target
        self.timeouts = timeouts
        self.capabilities = Capabilities()
        self.transactions = 0
        self.broken = False  # the connection failed; it cannot carry another message
        self.encrypted = False
        self.dane_match: str | None = None  # the TLSA record the certificate matched
        self._stream = stream
        self._reader = BufferedByteReceiveStream(stream)
        self._replies = ReplyReader()

    # -- opening ----------------------------------------------------------------------------

    @classmethod
    async def open(
        cls, target: Target, helo: str, timeouts: Timeouts, tls_contexts: TLSContexts
    ) -> SmtpSession:
        """Connect, greet and negotiate; raises SessionFailed (the connection is closed)."""
        verify = target.tls in ("starttls", "implicit")  # TLS required
        try:
            with anyio.fail_after(timeouts.connect):
                stream: ByteStream = await anyio.connect_tcp(target.address, target.port)
        except (OSError, TimeoutError) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
            raise SessionFailed("4.4.1", f"cannot connect to {_where(target)}: {reason}") from None
        session = cls(target, stream, timeouts)
        try:
            if target.tls == "implicit":
                await session._wrap_tls(tls_contexts(target.pkix))
            await session._negotiate(helo, tls_contexts, verify)
        except BaseException:
            await session.abort()
            raise
        return session

    async def _negotiate(self, helo: str, tls_contexts: TLSContexts, verify: bool) -> None:
        greeting = await self._read(self.timeouts.command)
        if greeting.code != 220:
            raise SessionFailed(greeting.status(), f"greeting of {self.target.host}", greeting)
        await self._ehlo(helo)
        wants_tls = self.target.tls in ("opportunistic", "starttls")
        if wants_tls and not self.encrypted:
            if not self.capabilities.starttls:
                if verify:
                    raise SessionFailed(
                        "4.7.10",
                        f"TLS is required but {self.target.host} does not offer STARTTLS",
                        tls_result="starttls-not-supported",
                    )
            else:
                reply = await self.command(b"STARTTLS\r\n")
                if reply.code != 220:
                    if verify:
                        raise SessionFailed(
                            "4.7.10", "STARTTLS refused", reply, "starttls-not-supported"
                        )
                else:
                    await self._wrap_tls(tls_contexts(verify and self.target.pkix))
                    await self._ehlo(helo)  # RFC 3207 4.2: forget what was learned before
        if self.target.user is not None:
            await self._authenticate()

    async def _ehlo(self, helo: str) -> None:
        reply = await self.command(f"EHLO {helo}\r\n".encode())
        if reply.code == 250:
            self.capabilities = Capabilities.from_ehlo(reply)
            return
        reply = await self.command(f"HELO {helo}\r\n".encode())  # an RFC 821 server
        if reply.code != 250:
            raise SessionFailed(reply.status(), "HELO refused", reply)
        self.capabilities = Capabilities()

    async def _wrap_tls(self, context: ssl.SSLContext) -> None:
        if self._reader.buffer:
            # Bytes sent before the handshake would be trusted as if they came after it
            # (the STARTTLS injection of CVE-2011-0411).
            raise SessionFailed("4.7.5", f"{self.target.host} sent data before the TLS handshake")
        try:
            with anyio.fail_after(self.timeouts.command):
                self._stream = await TLSStream.wrap(
                    self._stream,
                    hostname=self.target.host,
                    ssl_context=context,
                    standard_compatible=False,
                )
        except (ssl.SSLError, OSError, TimeoutError, anyio.BrokenResourceError) as exc:
            self.broken = True
            detail = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or exc
            raise SessionFailed(
                "4.7.5",
                f"TLS handshake with {self.target.host} failed: {detail}",
                tls_result=_tls_result(exc),
            ) from None
        self._reader = BufferedByteReceiveStream(self._stream)
        self.encrypted = True
        if self.target.dane:
            try:
                matched = dane.verify(
                    self._stream.extra(TLSAttribute.ssl_object), self.target.dane, self.target.host
                )
            except dane.DaneFailure as failure:
                self.broken = True
                raise SessionFailed(
                    "4.7.5", f"DANE: {failure}", tls_result="tlsa-invalid"
                ) from None
            self.dane_match = matched

    async def _authenticate(self) -> None:
        """RFC 4954 with PLAIN (RFC 4616) or LOGIN; never over an unencrypted connection."""
        assert self.target.user is not None
        assert self.target.password is not None
        if not self.encrypted:
            raise SessionFailed("4.7.10", "not sending a password over an unencrypted connection")
        mechanisms = self.capabilities.auth
        user, password = self.target.user.encode(), self.target.password.encode()
        if "PLAIN" in mechanisms:
            token = base64.b64encode(b"\0" + user + b"\0" + password)
            reply = await self.command(b"AUTH PLAIN " + token + b"\r\n")
        elif "LOGIN" in mechanisms:
            reply = await self.command(b"AUTH LOGIN\r\n")
            for secret in (user, password):
                if reply.code != 334:
                    break
                reply = await self.command(base64.b64encode(secret) + b"\r\n")
        else:
            raise SessionFailed(
                "4.7.0",
                f"{self.target.host} offers no AUTH mechanism this server has (PLAIN, LOGIN)",
            )
        if reply.code != 235:
            # A relay that refuses our credentials is a configuration problem: the mail waits.
            raise SessionFailed("4.7.0", "authentication failed", reply)

    # -- transactions ---------------------------------------------------------------------

    async def send(self, transaction: Transaction) -> list[Reply]:
        """One transaction; the reply that decided each recipient, in order. Raises
        SessionFailed when the connection fails (the session is then ``broken``)."""
        self.transactions += 1
        problem = self._check(transaction)
        if problem is not None:
            return [problem] * len(transaction.recipients)
        caps = self.capabilities
        data = transaction.data
        mail = mail_command(
            transaction.mail_from,
            caps,
            size=len(data),
            eightbit=is_8bit(data),
            smtputf8=transaction.smtputf8 or self._needs_utf8(transaction),
            ret=transaction.ret,
            envid=transaction.envid,
        )
        rcpts = [
            rcpt_command(r.address, caps, notify=r.notify, orcpt=r.orcpt)
            for r in transaction.recipients
        ]
        try:
            if caps.pipelining:
                await self._send_bytes(mail + b"".join(rcpts) + b"DATA\r\n")
                mail_reply = await self._read(self.timeouts.command)
                rcpt_replies = [await self._read(self.timeouts.command) for _ in rcpts]
                data_reply = await self._read(self.timeouts.command)
            else:
                mail_reply = await self.command(mail)
                if not mail_reply.ok:
                    await self._reset()
                    return [mail_reply] * len(rcpts)
                rcpt_replies = [await self.command(rcpt) for rcpt in rcpts]
                if not any(r.ok for r in rcpt_replies):
                    await self._reset()
                    return rcpt_replies
                data_reply = await self.command(b"DATA\r\n")
            if not mail_reply.ok:
                await self._finish_refused_data(data_reply)
                return [mail_reply] * len(rcpts)
            accepted = [r.ok for r in rcpt_replies]
            if data_reply.code != 354:
                await self._reset()
                return [
                    reply if not ok else data_reply
                    for reply, ok in zip(rcpt_replies, accepted, strict=True)
                ]
            if not any(accepted):  # RFC 2920 3.1: a 354 anyway; end an empty message
                await self._send_bytes(b".\r\n")
                await self._read(self.timeouts.data)
                await self._reset()
                return rcpt_replies
            await self._send_bytes(data_body(data))
            final = await self._read(self.timeouts.data)
        except SessionFailed:
            self.broken = True
            raise
        return [final if ok else reply for reply, ok in zip(rcpt_replies, accepted, strict=True)]

    def _check(self, transaction: Transaction) -> Reply | None:
        """What would make the server refuse the message, decided before sending it."""
        caps = self.capabilities
        if caps.size and len(transaction.data) > caps.size:
            return _local_reply(
                552,
                "5.3.4",
                f"message of {len(transaction.data)} bytes is over the"
                f" {caps.size} bytes {self.target.host} accepts",
            )
        if (transaction.smtputf8 or self._needs_utf8(transaction)) and not caps.smtputf8:
            return _local_reply(
                553, "5.6.7", f"{self.target.host} does not support SMTPUTF8 (RFC 6531)"
            )
        if is_8bit(transaction.data) and not caps.eightbitmime:
            return _local_reply(
                554, "5.6.3", f"8-bit message, and {self.target.host} does not support 8BITMIME"
            )
        return None

    @staticmethod
    def _needs_utf8(transaction: Transaction) -> bool:
        return needs_smtputf8(transaction.mail_from, (r.address for r in transaction.recipients))

    async def _finish_refused_data(self, data_reply: Reply) -> None:
        if data_reply.code == 354:  # the server went on anyway: give it an empty message
            await self._send_bytes(b".\r\n")
            await self._read(self.timeouts.data)
        await self._reset()

    async def _reset(self) -> None:
        reply = await self.command(b"RSET\r\n")
        if reply.code != 250:
            self.broken = True

    # -- I/O ------------------------------------------------------------------------------

    async def command(self, line: bytes) -> Reply:
        await self._send_bytes(line)
        return await self._read(self.timeouts.command)

    async def _send_bytes(self, data: bytes) -> None:
        try:
            with anyio.fail_after(self.timeouts.data):
                await self._stream.send(data)
        except (OSError, TimeoutError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.broken = True
            raise SessionFailed("4.4.2", f"connection to {self.target.host} lost") from None

    async def _read(self, timeout: float) -> Reply:
        try:
            with anyio.fail_after(timeout):
                while True:
                    line = await self._reader.receive_until(b"\n", MAX_LINE)
                    reply = self._replies.feed(line)
                    if reply is not None:
                        return reply
        except TimeoutError:
            self.broken = True
            raise SessionFailed(
                "4.4.2", f"{self.target.host} did not answer in {timeout:g}s"
            ) from None
        except ProtocolError as exc:
            self.broken = True
            raise SessionFailed("4.5.0", f"{self.target.host}: {exc}") from None
        except anyio.DelimiterNotFound:
            self.broken = True
            raise SessionFailed(
                "4.5.0", f"{self.target.host} sent a line over {MAX_LINE} bytes"
            ) from None
        except (
            OSError,
            anyio.EndOfStream,
            anyio.IncompleteRead,
            anyio.BrokenResourceError,
            ssl.SSLError,
        ):
            self.broken = True
            raise SessionFailed("4.4.2", f"connection to {self.target.host} lost") from None

    async def close(self) -> None:
        """QUIT politely (briefly), then close."""
        if not self.broken:
            with contextlib.suppress(SessionFailed), anyio.move_on_after(5):
                await self.command(b"QUIT\r\n")
        await self.abort()

    async def abort(self) -> None:
        self.broken = True
        with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
            with anyio.move_on_after(1):
                await self._stream.aclose()


def _local_reply(code: int, status: str, text: str) -> Reply:
    return Reply(code, (text,), status, local=True)


# OpenSSL's X509_V_ERR_* codes, by the TLS-RPT result type they are (RFC 8460 4.3.1).
_RESULT_TYPES = {
    62: "certificate-host-mismatch",  # X509_V_ERR_HOSTNAME_MISMATCH
    10: "certificate-expired",  # X509_V_ERR_CERT_HAS_EXPIRED
    18: "certificate-not-trusted",  # X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
    19: "certificate-not-trusted",  # X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN
    20: "certificate-not-trusted",  # X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    21: "certificate-not-trusted",  # X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE
}


def _tls_result(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _RESULT_TYPES.get(exc.verify_code, "validation-failure")
    return "validation-failure"


def _where(target: Target) -> str:
    address = f"[{target.address}]" if ":" in target.address else target.address
    return f"{target.host} ({address}:{target.port})"
