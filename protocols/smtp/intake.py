"""The checks of mail from strangers, at each step of an SMTP session (issue 15).

Only MX sessions are checked: an ``smtp`` listener without ``smtp.auth.require`` (that is
submission), a client not in ``relay-hosts``, and until it authenticates (then it is one of
our users submitting mail). LMTP is never checked: it hands over mail that an MTA of ours
(which did the checks, or chose not to) already accepted.

At each step (the checks themselves are core modules, ``stalwart_py/inbound``):

* connection: ``smtp.rate.connections-per-ip`` (``421 4.7.0`` and close);
* MAIL FROM: ``smtp.rate.messages-per-ip`` (``451 4.7.0``), then SPF;
* RCPT TO (once the recipient is accepted): the DNS block- and allowlists;
* end of DATA: DKIM, ARC, iprev, DMARC and the policy; the accepted message gets our
  ``Authentication-Results`` and ``Received-SPF``, and may be quarantined (Junk).

A failure of the checks themselves (a bug, not DNS: DNS failures are results) answers
``451 4.3.0``: the sender tries again later, and nothing is let through unchecked. So does a
rate that cannot be read (the nodes' shared database down: ``RatesUnavailable``), at MAIL
FROM; at connection time ``421 4.3.0`` and close (RFC 5321 3.8: 421 is the one reply that
may close a session, and the sender then retries later or tries its next MX), with one
warning line without a traceback: the database's failure is not a bug to trace here.
"""

from __future__ import annotations

from protocols.smtp import replies
from protocols.smtp.replies import Reply, reply
from protocols.smtp.settings import SmtpSettings
from stalwart_py.inbound.checks import Accepted, Refusal, SessionChecks
from stalwart_py.inbound.rate import NodesRate, RatesUnavailable, rate_key, retry_text
from stalwart_py.plugin import Connection


class Intake:
    """One checked session's view of the checks."""

    def __init__(self, conn: Connection, settings: SmtpSettings, hostname: str) -> None:
        self.conn = conn
        self.settings = settings
        self.hostname = hostname
        self.inbound = conn.server.inbound
        self._rate_key = rate_key(
            conn.listener.id, conn.peer.ip, conn.listener.settings.ipv6_prefix_length
        )
        server, ip = conn.server, conn.peer.ip
        self.checks = (
            SessionChecks(
                server.resolver,
                server.config.auth,
                server.config.spam.dnsbl,
                ip,
                hostname,
                conn.log,
                server.metrics,
            )
            if ip is not None
            else None
        )

    @classmethod
    def for_session(cls, conn: Connection, *, may_relay: bool, hostname: str) -> Intake | None:
        """The intake of a session that is checked, None for one that is not (LMTP's
        settings are not SmtpSettings)."""
        settings = conn.settings
        if not isinstance(settings, SmtpSettings) or settings.auth.require or may_relay:
            return None
        return cls(conn, settings, hostname)

    async def _take(self, rate: NodesRate, limit: int, unavailable: Reply) -> float | Reply:
        """A token of ``rate`` (0.0, else the seconds to wait), or ``unavailable`` when the
        nodes' database cannot count it: one warning line, no traceback (it is the
        database's failure, which the line names, not a bug of ours)."""
        try:
            return await rate.take(self._rate_key, limit)
        except RatesUnavailable as error:
            self.conn.log.warning(
                "%s rate of %s not checked, refused with %d %s: %s",
                rate.kind.removesuffix("s"),
                self.conn.peer,
                unavailable.code,
                unavailable.enhanced,
                error,
            )
            return unavailable

    async def connected(self) -> Reply | None:
        """The connection rate of this client: None, or the 421 to close with."""
        limit = self.settings.rate.connections_per_ip
        if limit is None:
            return None
        unavailable = reply(421, "4.3.0", f"{self.hostname} Service not available, try again later")
        wait = await self._take(self.inbound.connections, limit, unavailable)
        if isinstance(wait, Reply):
            return wait
        if not wait:
            return None
        self.conn.log.info(
            "connection rate limit (%d per minute) reached by %s", limit, self.conn.peer
        )
        return reply(
            421,
            "4.7.0",
            f"{self.hostname} Too many connections from your address, {retry_text(wait)}",
        )

    async def mail(self, sender: str, helo: str) -> Reply | None:
        """MAIL FROM: None, or the refusal."""
        limit = self.settings.rate.messages_per_ip
        if limit is not None:
            wait = await self._take(self.inbound.messages, limit, replies.TEMPORARY_FAILURE)
            if isinstance(wait, Reply):
                return wait
            if wait:
                self.conn.log.info(
                    "message rate limit (%d per minute) reached by %s", limit, self.conn.peer
                )
                return reply(
                    451, "4.7.0", f"Too many messages from your address, {retry_text(wait)}"
                )
        if self.checks is None:
            return None
        try:
            return _reply(await self.checks.mail(sender, helo))
        except Exception:
            self.conn.log.exception("checking the sender failed")
            return replies.TEMPORARY_FAILURE

    async def rcpt(self) -> Reply | None:
        """An accepted RCPT TO: None, or the DNSBL refusal."""
        if self.checks is None:
            return None
        try:
            return _reply(await self.checks.rcpt())
        except Exception:
            self.conn.log.exception("checking the DNS lists failed")
            return replies.TEMPORARY_FAILURE

    async def data(self, message: bytes) -> Reply | Accepted:
        """The content: the refusal, or the message to deliver (and whether to Junk)."""
        if self.checks is None:
            return Accepted(message)
        try:
            outcome = await self.checks.data(message)
        except Exception:
            self.conn.log.exception("checking the message failed")
            return replies.TEMPORARY_FAILURE
        if isinstance(outcome, Refusal):
            self.conn.log.info("message refused: %d %s", outcome.code, outcome.text)
            return reply(outcome.code, outcome.enhanced, outcome.text)
        return outcome


def _reply(refusal: Refusal | None) -> Reply | None:
    return None if refusal is None else reply(refusal.code, refusal.enhanced, refusal.text)
