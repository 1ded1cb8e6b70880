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

The contract is versioned: :data:`API_VERSION` goes up by one whenever it changes (an addition
included), and a protocol declares the versions it was written for as ``api_versions = (low,
high)``, both included. A server whose version is outside a configured protocol's range refuses
to start (and ``check-config`` and reloads fail) with an error naming both, rather than failing
at the first client.
"""

from __future__ import annotations

import importlib.metadata
import logging
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from stalwart_py import __version__ as SERVER_VERSION
from stalwart_py.config.types import Duration, Range, Size
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

# What a mail-access protocol needs of the core besides the connection (added for POP3, the
# first plugin built on this module alone): the SASL exchange's framing and errors (the
# exchange itself runs in ``conn.server.directory.authenticate``), the directory's refusals,
# the store's records and errors (``conn.server.store``), and the value types a settings
# dataclass annotates its fields with (``Duration``: "30s"; ``Size``: "25M"; ``Range``).
from stalwart_py.hash_pool import LoginDeferred
from stalwart_py.sasl import MAX_ENCODED_RESPONSE as MAX_SASL_RESPONSE
from stalwart_py.sasl import AuthAborted, AuthFailed, SaslError
from stalwart_py.sasl import decode_response as decode_sasl_response
from stalwart_py.store import Account, Mailbox, MessageInfo, NotFound, StoreError
from stalwart_py.throttle import AuthThrottled
from stalwart_py.two_factor import TwoFactorRequired

if TYPE_CHECKING:
    from stalwart_py.config import Config, ListenerSettings
    from stalwart_py.context import ServerContext

__all__ = [
    "API_VERSION",
    "ENTRY_POINT_GROUP",
    "MAX_SASL_RESPONSE",
    "SERVER_VERSION",
    "Account",
    "Address",
    "AuthAborted",
    "AuthFailed",
    "AuthThrottled",
    "Connection",
    "ConnectionClosed",
    "CorruptStream",
    "Duration",
    "LineTooLong",
    "ListenerView",
    "LoginDeferred",
    "Mailbox",
    "MessageInfo",
    "NotFound",
    "Protocol",
    "Range",
    "ReadTimeout",
    "Refusal",
    "SaslError",
    "ServerContext",
    "Size",
    "StoreError",
    "TLSInfo",
    "TwoFactorRequired",
    "api_mismatch",
    "decode_sasl_response",
    "discover_protocols",
]

ENTRY_POINT_GROUP = "stalwart_py.protocols"

# The plugin API's version: one more at every change of what this module exports or promises.
# 1: Protocol (handle, refuse, notices, settings, starttls), Connection, Refusal, ServerContext,
# and the mail-access exports added for POP3 (SASL framing, store records, Duration/Size/Range).
# 2: TwoFactorRequired, the refusal of an account's own password once two-factor sign-in is on.
API_VERSION = 2

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
    # The plugin API versions this protocol works with, both ends included. A plugin that does
    # not say was written before versions existed, against version 1.
    api_versions: ClassVar[tuple[int, int]] = (1, 1)

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


def api_mismatch(cls: type[Protocol]) -> str | None:
    """Why ``cls`` cannot run on this server's plugin API, or None when it can."""
    where = f'protocol plugin "{getattr(cls, "name", cls.__name__)}" ({cls.__module__})'
    versions = getattr(cls, "api_versions", None)
    if not (
        isinstance(versions, tuple)
        and len(versions) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in versions)
        and versions[0] <= versions[1]
    ):
        return (
            f"{where} declares api_versions = {versions!r}; expected (low, high), two integers "
            f"with low <= high (this server provides plugin API version {API_VERSION})"
        )
    low, high = versions
    if low <= API_VERSION <= high:
        return None
    span = f"version {low}" if low == high else f"versions {low} to {high}"
    remedy = (
        "upgrade stalwart-py or install an older release of the plugin"
        if low > API_VERSION
        else "upgrade the plugin or install an older stalwart-py"
    )
    return (
        f"{where} supports plugin API {span}, but this stalwart-py provides plugin API "
        f"version {API_VERSION}: {remedy}"
    )


def require_compatible_plugins(config: Config, classes: dict[str, type[Protocol]]) -> None:
    """Raise ConfigError naming every configured protocol whose ``api_versions`` leave out
    this server's :data:`API_VERSION` (checked at start, by ``check-config`` and at reload)."""
    from stalwart_py.config import ConfigError, ConfigIssue

    issues = []
    for listener in config.listeners.values():
        cls = classes.get(listener.protocol)
        problem = api_mismatch(cls) if cls is not None else None
        if problem is not None:
            path = f"server.listener.{listener.id}.protocol"
            issues.append(ConfigIssue(str(config.file), path, problem))
    if issues:
        raise ConfigError(issues)


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
