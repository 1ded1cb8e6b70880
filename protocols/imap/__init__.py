"""IMAP (RFC 9051 IMAP4rev2, with RFC 3501 IMAP4rev1 compatibility) as a stalwart-py
protocol plugin.

The sans-IO core: ``lexer``, ``framing``, ``commands`` (with ``sequence``,
``search_keys``, ``fetch_items``), ``mailbox_names`` (modified UTF-7), ``response`` and
``structure`` (the serializer), ``sections`` and ``view`` (the selected mailbox and its
untagged updates), ``search_eval``. The I/O around it: ``session`` (the loop and the state),
the command handlers (``auth_commands``, ``mailbox_commands``, ``list_command``,
``message_commands``, ``fetch_command``, ``search_command``, ``idle``) and this class.
"""

from __future__ import annotations

from protocols.imap import response
from protocols.imap.settings import AuthSettings, ImapSettings
from stalwart_py.plugin import Connection, Protocol, Refusal

__all__ = ["AuthSettings", "Imap", "ImapSettings"]


def _session_class() -> type:
    """The session with its command handlers, imported on the first connection rather than
    at start: they are most of IMAP's code, and a start needs none of it to bind (a start
    imports only what binding the listeners needs; bench/startup.py)."""
    from protocols.imap.handlers import HANDLERS
    from protocols.imap.session import Session

    Session.handlers = HANDLERS
    return Session


class Imap(Protocol):
    name = "imap"
    api_versions = (2, 2)
    settings = ImapSettings
    starttls = True

    async def handle(self, conn: Connection) -> None:
        metrics = conn.server.metrics
        counters = {
            "logins": metrics.counter(
                "stalwart_imap_logins",
                "IMAP LOGIN and AUTHENTICATE attempts",
                ["listener", "result"],
            ),
            "bad": metrics.counter(
                "stalwart_imap_bad_commands", "IMAP commands refused as malformed", ["listener"]
            ),
        }
        from protocols.imap.auth_commands import capability_code  # with the session, lazily

        session = _session_class()(conn, counters)
        hostname = conn.listener.settings.hostname
        # written into the session's output, not kept in a local of this frame, which lives
        # as long as the session (a thousand idle sessions would keep half a megabyte of them)
        session.write(
            response.status(
                "*", "OK", f"{hostname} stalwart-py IMAP4rev2 ready", capability_code(session)
            )
        )
        await session.run()

    async def refuse(self, conn: Connection, reason: Refusal) -> None:
        await conn.send(response.status("*", "BYE", reason.text, "UNAVAILABLE"))
