"""SMTP (RFC 5321) and LMTP (RFC 2033): the ``smtp`` and ``lmtp`` protocols.

One sans-IO core serves both: ``syntax`` (command lines, paths, ESMTP parameters),
``replies`` (reply codes with enhanced status codes), ``data`` (DATA and BDAT content),
``machine`` (the session state machine) and ``reports`` (DSN and ARF summaries). The I/O
side is ``session`` (the command loop, AUTH, STARTTLS, content reading), with ``policy``
(who may send what to whom) and ``delivering`` (the delivery pipeline and the replies).

``smtp`` listeners serve MX (25), submission (587, STARTTLS) and submissions (465, implicit
TLS); ``lmtp`` takes final delivery from another MTA, often over a Unix socket.
"""

from __future__ import annotations

from typing import ClassVar

from protocols.smtp.settings import LmtpSettings, SmtpSettings
from stalwart_py.config import ListenerSettings
from stalwart_py.plugin import Connection, Protocol, Refusal

DEFERRED_SPOOL_NOTICE = (
    "smtp.deferred-spool is on: mail for remote recipients is kept only in memory until its"
    " first transient failure; a crash or kill loses it after the client was told 250"
)

__all__ = ["Lmtp", "LmtpSettings", "Smtp", "SmtpSettings"]


class Smtp(Protocol):
    name = "smtp"
    api_versions = (2, 2)
    settings = SmtpSettings
    starttls = True  # certificates are checked (or the self-signed one made) at start
    lmtp: ClassVar[bool] = False

    async def handle(self, conn: Connection) -> None:
        # The session (and the delivery side it imports) loads on the first connection, not
        # at start: a start imports only what binding the listeners needs (bench/startup.py).
        from protocols.smtp.session import Session

        await Session(conn, lmtp=self.lmtp).run()

    def notices(self, settings: ListenerSettings) -> list[str]:
        options = settings.protocol
        if isinstance(options, SmtpSettings) and options.deferred_spool:
            return [DEFERRED_SPOOL_NOTICE]
        return []

    async def refuse(self, conn: Connection, reason: Refusal) -> None:
        # In place of the greeting: 421 and the server's name (RFC 5321 3.1, 4.2.3).
        from protocols.smtp.session import SessionMetrics  # loaded lazily, as in handle()

        hostname = conn.settings.hostname or conn.listener.settings.hostname
        SessionMetrics(conn).rejected(421)
        await conn.send(f"421 {hostname} {reason.text}\r\n".encode())


class Lmtp(Smtp):
    name = "lmtp"
    settings = LmtpSettings
    lmtp = True
