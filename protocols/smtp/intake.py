"""The checks of mail from strangers, at each step of an SMTP session (issue 15).

Only MX sessions are checked: an ``smtp`` listener without ``smtp.auth.require`` (that is
submission), a client not in ``relay-hosts``, and until it authenticates (then it is one of
our users submitting mail). LMTP is never checked: it hands over mail that an MTA of ours
(which did the checks, or chose not to) already accepted.

At each step (the checks themselves are core modules, ``stalwart_py/inbound``):

* connection: ``smtp.rate.connections-per-ip`` (``421 4.7.0`` and close);
* MAIL FROM: ``smtp.rate.messages-per-ip`` (``451 4.7.0``).
"""

from __future__ import annotations

from protocols.smtp.replies import Reply, reply
from protocols.smtp.settings import SmtpSettings
from stalwart_py.inbound.rate import rate_key, retry_text
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

    @classmethod
    def for_session(cls, conn: Connection, *, may_relay: bool, hostname: str) -> Intake | None:
        """The intake of a session that is checked, None for one that is not (LMTP's
        settings are not SmtpSettings)."""
        settings = conn.settings
        if not isinstance(settings, SmtpSettings) or settings.auth.require or may_relay:
            return None
        return cls(conn, settings, hostname)

    def connected(self) -> Reply | None:
        """The connection rate of this client: None, or the 421 to close with."""
        limit = self.settings.rate.connections_per_ip
        if limit is None:
            return None
        wait = self.inbound.connections.take(self._rate_key, limit)
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

    def mail(self) -> Reply | None:
        """The message rate of this client, at MAIL FROM: None, or the 451."""
        limit = self.settings.rate.messages_per_ip
        if limit is None:
            return None
        wait = self.inbound.messages.take(self._rate_key, limit)
        if not wait:
            return None
        self.conn.log.info(
            "message rate limit (%d per minute) reached by %s", limit, self.conn.peer
        )
        return reply(451, "4.7.0", f"Too many messages from your address, {retry_text(wait)}")
