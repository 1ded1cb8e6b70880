"""The public plugin API: what a protocol plugin implements and what it is given.

A protocol is a class registered under the entry-point group ``stalwart_py.protocols``::

    class Echo(Protocol):
        name = "echo"

        async def handle(self, conn: Connection) -> None:
            while True:
                line = await conn.readline(1000)
                await conn.send(line)

The core accepts a connection, counts it against the server, listener and peer-scope limits,
resolves its peer scope, reads a PROXY header from a trusted proxy, performs implicit TLS when
the listener asks for it, and then awaits ``handle(conn)``. When the connection must not be
served (a limit, a denied peer, shutdown) it awaits ``refuse(conn, reason)`` instead, which
answers in the protocol's own words (SMTP ``421``, IMAP ``* BYE``, HTTP ``503``). Either way
the core closes the connection and releases its counters afterwards, on every exit path.

A protocol may declare ``settings``, a frozen dataclass for its ``<name>.*`` table; the core
validates it and merges it per listener and peer scope exactly like the core keys, and gives
the result to each connection as ``conn.settings``.
"""

from __future__ import annotations

import importlib.metadata
import logging
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from stalwart_py.connection import (
    Address,
    Connection,
    ConnectionClosed,
    CorruptStream,
    LineTooLong,
    ListenerView,
    ReadTimeout,
    TLSInfo,
)

if TYPE_CHECKING:
    from stalwart_py.config import ListenerSettings
    from stalwart_py.context import ServerContext

__all__ = [
    "ENTRY_POINT_GROUP",
    "Address",
    "Connection",
    "ConnectionClosed",
    "CorruptStream",
    "LineTooLong",
    "ListenerView",
    "Protocol",
    "ReadTimeout",
    "Refusal",
    "ServerContext",
    "TLSInfo",
    "discover_protocols",
]

ENTRY_POINT_GROUP = "stalwart_py.protocols"

log = logging.getLogger("stalwart_py.plugin")


class Refusal(StrEnum):
    """Why a connection is refused instead of served."""

    SERVER_LIMIT = "server-limit"  # server.max-connections reached
    LISTENER_LIMIT = "listener-limit"  # the listener's max-connections reached
    PEER_LIMIT = "peer-limit"  # the peer scope's max-connections reached
    IP_LIMIT = "ip-limit"  # max-connections-per-ip reached for the client's address
    PEER_DENIED = "peer-denied"  # a peer scope says allow = false
    DISABLED = "disabled"  # the listener was disabled at run time
    SHUTDOWN = "shutdown"  # the server is stopping and the grace period is over

    @property
    def text(self) -> str:
        """A short human sentence, for a protocol's refusal reply."""
        return {
            Refusal.SERVER_LIMIT: "Too many connections, try again later",
            Refusal.LISTENER_LIMIT: "Too many connections, try again later",
            Refusal.PEER_LIMIT: "Too many connections from your network, try again later",
            Refusal.IP_LIMIT: "Too many connections from your address, try again later",
            Refusal.PEER_DENIED: "Access denied",
            Refusal.DISABLED: "Service temporarily unavailable",
            Refusal.SHUTDOWN: "Server shutting down",
        }[self]


class Protocol:
    """Base class of a protocol plugin. One instance serves every listener of the protocol."""

    name: ClassVar[str]
    settings: ClassVar[type | None] = None  # a dataclass for the ``<name>.*`` table

    async def handle(self, conn: Connection) -> None:
        """Serve one connection until it ends; the core closes it afterwards."""
        raise NotImplementedError

    async def refuse(self, conn: Connection, reason: Refusal) -> None:
        """Tell the client politely why it is not served; the core closes it afterwards.
        The default says nothing."""

    def notices(self, settings: ListenerSettings) -> list[str]:
        """What the operator must hear about a listener with these settings (an option that
        trades safety for speed, say). The core logs each as a warning when the listener
        starts and when a reload changes its settings. The default has nothing to say."""
        return []


def discover_protocols() -> dict[str, type[Protocol]]:
    """Load every protocol registered under ``stalwart_py.protocols``.

    A plugin that fails to import is logged and left out; a configuration naming it then
    fails with the list of the protocols that are installed.
    """
    found: dict[str, type[Protocol]] = {}
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls: Any = entry.load()
        except Exception:
            log.exception("protocol plugin %s (%s) failed to load", entry.name, entry.value)
            continue
        if not (isinstance(cls, type) and issubclass(cls, Protocol)):
            log.error("protocol plugin %s (%s) is not a Protocol subclass", entry.name, entry.value)
            continue
        name = getattr(cls, "name", entry.name)
        if name != entry.name:
            log.warning("protocol plugin %s declares name %r; using %r", entry.value, name, name)
        found[name] = cls
    return found


def __getattr__(name: str) -> Any:
    # ServerContext lives with the server internals; re-exported lazily to avoid a cycle.
    if name == "ServerContext":
        from stalwart_py.context import ServerContext

        return ServerContext
    raise AttributeError(name)
