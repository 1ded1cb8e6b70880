"""The listener registry: bind, accept, limit, dispatch to protocols, and reload.

Ownership (structured concurrency): ``ListenerRegistry.run`` owns two task groups. The outer
one holds every session; the inner one holds one accept loop per bound socket, each in its
own cancel scope so that a single socket can stop accepting on reload while its sessions
finish. Stopping the server cancels the accept loops first, gives sessions the grace period,
then cancels them; each cancelled session is told why (``Protocol.refuse(SHUTDOWN)``).

Per connection: count it against the server, the listener and (once the peer is known) its
peer scope; read a PROXY header if the immediate peer is a trusted proxy; resolve the peer
scope (deny -> refuse); set the per-connection socket options; implicit TLS; then
``protocol.handle`` or ``protocol.refuse``. Counters are released in ``finally``.

Reload binds what is new before closing what is gone, except where a new address overlaps one
of ours that is going away (127.0.0.1:25 -> *:25): that one is closed first and, if the new
bind then fails, bound again, so the switch takes one reload and a failure changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import math
import os
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from stalwart_py import proxy_protocol
from stalwart_py.config import NO_SCOPE, BindAddress, Config, ListenerConfig
from stalwart_py.connection import (
    Address,
    Connection,
    ConnectionClosed,
    LineTooLong,
    ListenerView,
)
from stalwart_py.context import ServerContext
from stalwart_py.plugin import Protocol, Refusal
from stalwart_py.shared import SharedState
from stalwart_py.sockets import (
    BindError,
    apply_connection_options,
    bound_address,
    open_listening_socket,
    overlaps,
    remove_unix_socket,
    unix_socket_identity,
    update_listening_options,
)
from stalwart_py.tls import TLSSetupError
from stalwart_py.transport import ClientStream

log = logging.getLogger("stalwart_py.listeners")
# Session ids name a connection in the logs and in Received headers: unique enough, not
# secret, so a seeded generator rather than a getrandom() system call per connection.
_session_ids = random.Random()
# Worker processes are forked: each must draw its own ids, not its siblings' sequence.
os.register_at_fork(after_in_child=_session_ids.seed)

REFUSE_TIMEOUT = 5.0  # how long a refusal reply may take before the connection is dropped


class ApplyError(Exception):
    """A configuration could not be applied; nothing was changed. One line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(eq=False)
class BoundSocket:
    configured: BindAddress
    sock: Any  # socket.socket until its accept loop takes it over
    actual: BindAddress
    unix_identity: tuple[int, int] | None = None
    scope: anyio.CancelScope | None = None
    closed: anyio.Event = field(default_factory=anyio.Event)

    async def close(self) -> None:
        """Stop accepting and close the socket; returns once it is closed."""
        if self.scope is None:
            self.sock.close()
            self._unlink()
            self.closed.set()
            return
        self.scope.cancel()
        await self.closed.wait()

    def _unlink(self) -> None:
        if self.configured.is_unix:
            remove_unix_socket(self.configured.host, self.unix_identity)


@dataclass(eq=False)
class ListenerRuntime:
    config: ListenerConfig
    sockets: dict[BindAddress, BoundSocket] = field(default_factory=dict)
    open_connections: int = 0
    suspended: bool = False  # disabled at run time: connections are accepted and refused


@dataclass
class ReloadReport:
    """What a reload changed, in words a person reads in a log or an API answer."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    rebound: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    reenabled: list[str] = field(default_factory=list)  # disabled at run time until the reload

    def as_dict(self) -> dict[str, list[str]]:
        return {
            "added": self.added,
            "removed": self.removed,
            "rebound": self.rebound,
            "updated": self.updated,
            "re-enabled": self.reenabled,
        }


class ListenerRegistry:
    """Every listener of the running server. See the module docstring."""

    def __init__(
        self,
        context: ServerContext,
        protocols: dict[str, Protocol],
        *,
        inherited: dict[tuple[str, BindAddress], socket.socket] | None = None,
        shared: SharedState,
    ) -> None:
        """``inherited``: in a worker process (``supervisor.py``), the sockets the supervisor
        bound, by listener id and configured address; the registry then never binds (nor
        unlinks) itself. ``shared``: the workers' common counts and suspended listeners
        (``stalwart_py.shared``), so that limits and run-time control hold server-wide; a
        server of one process has its own, the same code shared with nobody."""
        self.shared = shared
        self.context = context
        self.protocols = protocols
        self.inherited = inherited
        self.listeners: dict[str, ListenerRuntime] = {}
        self.open_connections = 0
        # Open connections per peer scope and per (listener, client address or IPv6 prefix),
        # over every worker process (stalwart_py.shared_table).
        self.counts = context.limits.connections
        self._sessions: TaskGroup | None = None
        self._accepts: TaskGroup | None = None
        self._stop = anyio.Event()
        self._changed = anyio.Event()  # set and replaced whenever a connection ends
        self._lock = anyio.Lock()  # one apply() at a time
        context.listeners = self

    # -- lifecycle ----------------------------------------------------------------------

    async def run(
        self,
        config: Config,
        *,
        on_drain: Callable[[], None] | None = None,
        task_status: TaskStatus[None],
    ) -> None:
        """Bind every enabled listener, report started, and serve until ``stop()``; then
        close every listening socket, call ``on_drain`` and give sessions the grace period."""
        async with anyio.create_task_group() as sessions:
            self._sessions = sessions
            async with anyio.create_task_group() as accepts:
                self._accepts = accepts
                await self.apply(config)
                task_status.started()
                await self._stop.wait()
                accepts.cancel_scope.cancel()
            if on_drain is not None:
                on_drain()
            grace = self.context.config.server.shutdown_timeout
            if self.open_connections:
                log.info("waiting up to %gs for %d open sessions", grace, self.open_connections)
                with anyio.move_on_after(grace):
                    await self.wait_until(lambda: self.open_connections == 0)
            if self.open_connections:
                log.info("closing %d sessions still open", self.open_connections)
            sessions.cancel_scope.cancel()

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition()`` holds; it is checked whenever a connection ends."""
        while not condition():
            await self._changed.wait()

    def stop(self) -> None:
        """Stop accepting; sessions get the grace period (``server.shutdown-timeout``)."""
        self.context.draining.set()
        self._stop.set()

    # -- applying a configuration -------------------------------------------------------

    async def apply(self, config: Config) -> ReloadReport:
        """Make the running listeners match ``config``. Raises ApplyError and changes nothing
        when a certificate is unusable or an address cannot be bound."""
        async with self._lock:
            return await self._apply(config)

    async def _apply(self, config: Config) -> ReloadReport:
        self._check_tls(config)
        wanted = {lid: lsn for lid, lsn in config.listeners.items() if lsn.enable}
        keep = [(lid, address) for lid, lsn in wanted.items() for address in lsn.bind]
        existing = {
            (lid, address): bound
            for lid, runtime in self.listeners.items()
            for address, bound in runtime.sockets.items()
        }
        going = {key: bound for key, bound in existing.items() if key not in keep}
        to_bind = [key for key in keep if key not in existing]
        opened: dict[tuple[str, BindAddress], BoundSocket] = {}
        closed_early: dict[tuple[str, BindAddress], BoundSocket] = {}
        try:
            for key in to_bind:  # first what collides with none of our sockets
                if not any(overlaps(key[1], bound.actual) for bound in going.values()):
                    opened[key] = self._bind(key[1], wanted[key[0]])
            for key in to_bind:  # then what takes the place of a socket of ours
                if key in opened:
                    continue
                for old_key, bound in going.items():
                    if old_key not in closed_early and overlaps(key[1], bound.actual):
                        await bound.close()
                        closed_early[old_key] = bound
                opened[key] = self._bind(key[1], wanted[key[0]])
        except BindError as exc:
            for bound in opened.values():
                await bound.close()
            problems = [str(exc)]
            problems += await self._restore(closed_early)
            raise ApplyError(problems) from None
        return await self._commit(config, wanted, going, opened, closed_early)

    async def _restore(self, closed: dict[tuple[str, BindAddress], BoundSocket]) -> list[str]:
        """Bind again the sockets closed for a switch that failed."""
        problems = []
        for (lid, address), old in closed.items():
            runtime = self.listeners[lid]
            try:
                restored = self._bind(address, runtime.config)
            except BindError as exc:
                runtime.sockets.pop(address, None)
                problems.append(f"listener {lid} lost {address}: {exc}")
                continue
            runtime.sockets[address] = restored
            await self._start_accepting(runtime, restored)
            log.warning("listener %s: bound %s again after a failed reload", lid, old.actual)
        return problems

    async def _commit(
        self,
        config: Config,
        wanted: dict[str, ListenerConfig],
        going: dict[tuple[str, BindAddress], BoundSocket],
        opened: dict[tuple[str, BindAddress], BoundSocket],
        closed_early: dict[tuple[str, BindAddress], BoundSocket],
    ) -> ReloadReport:
        report = ReloadReport()
        self.context.config = config
        for (lid, address), bound in going.items():
            if (lid, address) not in closed_early:
                await bound.close()
            self.listeners[lid].sockets.pop(address, None)
        for lid in [lid for lid in self.listeners if lid not in wanted]:
            del self.listeners[lid]
            report.removed.append(lid)
            log.info("listener %s stopped; its open sessions finish", lid)
        changed_binds = {key[0] for key in [*going, *opened]}
        for lid, listener in wanted.items():
            runtime = self.listeners.get(lid)
            if runtime is None:
                runtime = self.listeners[lid] = ListenerRuntime(listener)
                report.added.append(lid)
                self._log_notices(listener)
            elif lid in changed_binds:
                report.rebound.append(lid)
            elif runtime.config.effective != listener.effective or (
                runtime.config.protocol != listener.protocol
            ):
                report.updated.append(lid)
                self._log_notices(listener)
            runtime.config = listener
            for address, bound in runtime.sockets.items():
                update_listening_options(bound.sock, listener.settings.socket, address)
            for (owner, address), bound in opened.items():
                if owner == lid:
                    runtime.sockets[address] = bound
                    await self._start_accepting(runtime, bound)
                    self._log_bound(listener, bound)
        return report

    def _check_tls(self, config: Config) -> None:
        """Load every certificate a listener will use, before anything changes."""
        problems = []
        for listener in config.listeners.values():
            if not listener.enable:
                continue
            offers_tls = getattr(self.protocols.get(listener.protocol), "starttls", False)
            for settings in listener.effective.values():
                if not (settings.tls.implicit or offers_tls or settings.tls.certificate):
                    continue
                try:
                    self.context.tls.prepare(settings.tls, settings.hostname)
                except TLSSetupError as exc:
                    problems.append(f"server.listener.{listener.id}.tls: {exc}")
        if problems:
            raise ApplyError(sorted(set(problems)))

    def _bind(self, address: BindAddress, listener: ListenerConfig) -> BoundSocket:
        if self.inherited is not None:
            # A copy of the supervisor's socket: closing it here closes only ours.
            if (shared := self.inherited.get((listener.id, address))) is None:
                raise BindError(0, f"cannot bind {address}: the supervisor has not bound it")
            sock = shared.dup()
            sock.setblocking(False)
            return BoundSocket(address, sock, bound_address(sock, address))
        sock = open_listening_socket(address, listener.settings.socket)
        identity = unix_socket_identity(address.host) if address.is_unix else None
        return BoundSocket(address, sock, bound_address(sock, address), identity)

    async def _start_accepting(self, runtime: ListenerRuntime, bound: BoundSocket) -> None:
        assert self._accepts is not None, "run() owns the accept loops"
        await self._accepts.start(self._accept_loop, runtime, bound)

    def _log_notices(self, listener: ListenerConfig) -> None:
        """What the protocol says the operator must know about these settings (any scope)."""
        protocol = self.protocols.get(listener.protocol)
        if protocol is None:
            return
        notices: dict[str, None] = {}
        for settings in listener.effective.values():
            notices.update(dict.fromkeys(protocol.notices(settings)))
        for notice in notices:
            log.warning("listener %s: %s", listener.id, notice)

    def _log_bound(self, listener: ListenerConfig, bound: BoundSocket) -> None:
        tls = "implicit TLS" if listener.settings.tls.implicit else "plain"
        log.info("listener %s (%s) bound %s, %s", listener.id, listener.protocol, bound.actual, tls)

    # -- accepting ----------------------------------------------------------------------

    async def _accept_loop(
        self, runtime: ListenerRuntime, bound: BoundSocket, *, task_status: TaskStatus[None]
    ) -> None:
        """Accept on one socket until cancelled. asyncio's server does the accepting (and,
        out of file descriptors, pauses a second instead of spinning); each connection's
        session is started in the registry's session task group, which owns it."""
        sessions = self._sessions
        assert sessions is not None

        def accepted(stream: ClientStream) -> None:
            sessions.start_soon(self._serve, runtime, stream)

        with anyio.CancelScope() as scope:
            bound.scope = scope
            server = await asyncio.get_running_loop().create_server(
                lambda: ClientStream(accepted),
                sock=bound.sock,
                backlog=runtime.config.settings.socket.backlog,
            )
            task_status.started()
            try:
                await anyio.sleep_forever()
            finally:
                server.close()  # stops accepting; accepted connections go on
                bound._unlink()
                bound.closed.set()

    async def _serve(self, runtime: ListenerRuntime, stream: ClientStream) -> None:
        config = runtime.config  # a reload during the session does not change its settings
        protocol = self.protocols[config.protocol]
        raw = stream.extra("socket")
        try:
            family = raw.family  # a property that makes an enum: read once
            peer = Address.from_sockaddr(family, stream.extra("peername") or "")
            local = Address.from_sockaddr(family, stream.extra("sockname") or "")
        except (OSError, ValueError, TypeError) as exc:  # gone between accept() and here
            log.debug("listener %s: connection gone before it was served: %s", config.id, exc)
            if stream.transport is not None:
                stream.transport.abort()
            return
        session_id = f"{_session_ids.getrandbits(32):08x}"
        slog = logging.LoggerAdapter(log, {"session": session_id})
        server_limit = self.context.config.server.max_connections
        try:
            server_count, listener_count = self.shared.enter(config.id)  # every worker's
        except RuntimeError as exc:  # every shared listener slot busy: drop this one, say why
            slog.error("listener %s: connection dropped: %s", config.id, exc)
            if stream.transport is not None:
                stream.transport.abort()
            return
        self.open_connections += 1
        runtime.open_connections += 1
        peer_key: bytes | None = None
        ip_key: bytes | None = None
        conn: Connection | None = None
        refusal: Refusal | None = None
        served = False
        try:
            if server_limit is not None and server_count > server_limit:
                refusal = Refusal.SERVER_LIMIT
            elif config.settings.max_connections is not None and (
                listener_count > config.settings.max_connections
            ):
                refusal = Refusal.LISTENER_LIMIT
            elif self.is_suspended(config.id):
                refusal = Refusal.DISABLED
            view = ListenerView(config.id, config.protocol, config.settings, ())
            conn = Connection(
                stream,
                raw_socket=raw,
                peer=peer,
                local=local,
                listener=view,
                server=self.context,
                session_id=session_id,
            )
            if peer.ip is not None and any(
                peer.ip in net for net in config.settings.proxy.trusted_networks
            ):
                conn.peer = peer = await self._read_proxy_header(conn, config, slog)
            scope = config.scope_for(peer.ip)
            settings = config.effective[scope]
            conn.listener = ListenerView(
                config.id, config.protocol, settings, self._scope_paths(config, scope)
            )
            apply_connection_options(raw, settings.socket, family)
            if refusal is None and not settings.allow:
                refusal = Refusal.PEER_DENIED
            if refusal is None and (limit := config.peer_limit(scope)) is not None:
                peer_key, count = self._count(b"peer\0" + limit[0].encode(), slog)
                if count > limit[1]:
                    refusal = Refusal.PEER_LIMIT
            if refusal is None and settings.max_connections_per_ip is not None:
                client = _client_key(config.id, peer, settings.ipv6_prefix_length)
                if client is not None:
                    ip_key, count = self._count(client, slog)
                    if count > settings.max_connections_per_ip:
                        refusal = Refusal.IP_LIMIT
            if settings.tls.implicit:
                # What followed a PROXY header in the same segment is the ClientHello.
                await conn.start_tls(keep_buffered=True)
            if refusal is not None:
                self.context.metrics.connections_refused.labels(config.id, refusal).inc()
                slog.info("refused %s on %s: %s", peer, config.id, refusal)
                with anyio.move_on_after(REFUSE_TIMEOUT):
                    await protocol.refuse(conn, refusal)
                return
            served = True
            metrics = self.context.metrics
            metrics.child(metrics.connections_accepted, config.id).inc()
            metrics.child(metrics.connections_open, config.id).inc()
            slog.debug("connection from %s on %s (%s)", peer, config.id, local)
            await protocol.handle(conn)
            slog.debug("connection from %s ended", peer)
        except (ConnectionClosed, TimeoutError) as exc:  # ReadTimeout is a TimeoutError
            slog.debug("connection from %s ended: %s", peer, exc or "timed out")
        except proxy_protocol.ProxyProtocolError as exc:
            slog.warning("listener %s: bad PROXY header from %s: %s", config.id, peer, exc)
        except anyio.get_cancelled_exc_class():
            if conn is not None and served and self._stop.is_set():
                # A goodbye to a client that is already broken is optional.
                with (
                    anyio.CancelScope(shield=True),
                    anyio.move_on_after(REFUSE_TIMEOUT),
                    contextlib.suppress(Exception),
                ):
                    await protocol.refuse(conn, Refusal.SHUTDOWN)
            raise
        except Exception:
            slog.exception("session on %s from %s failed", config.id, peer)
        finally:
            if conn is not None:
                await conn.aclose()
            elif stream.transport is not None:
                stream.transport.close()
            if served:
                metrics = self.context.metrics
                metrics.child(metrics.connections_open, config.id).dec()
            if peer_key is not None:
                self.counts.leave(peer_key)
            if ip_key is not None:
                self.counts.leave(ip_key)
            runtime.open_connections -= 1
            self.shared.leave(config.id)
            self.open_connections -= 1
            self._changed.set()
            self._changed = anyio.Event()

    def _count(
        self, key: bytes, slog: logging.LoggerAdapter[logging.Logger]
    ) -> tuple[bytes | None, int]:
        """Count a connection under ``key`` in every worker's total: (the key to leave with,
        the total). A key the shared table has no room for is not counted (None, 0)."""
        digest = self.counts.key(key)
        total = self.counts.enter(digest)
        if total is None:
            slog.warning("no room to count %r: this connection is not limited", key)
            return None, 0
        return digest, total

    async def _read_proxy_header(
        self, conn: Connection, config: ListenerConfig, slog: logging.LoggerAdapter[logging.Logger]
    ) -> Address:
        timeout = config.settings.proxy.timeout
        with anyio.fail_after(timeout if timeout > 0 else math.inf):
            version = proxy_protocol.version_of(await conn.peek(1))
            if version == 1:
                try:
                    line = await conn.readline(proxy_protocol.V1_MAX_LENGTH)
                except LineTooLong:
                    raise proxy_protocol.ProxyProtocolError("PROXY v1 line too long") from None
                header = proxy_protocol.parse_v1(line)
            else:
                prefix = await conn.receive_exactly(proxy_protocol.V2_HEADER_LENGTH)
                body = await conn.receive_exactly(proxy_protocol.v2_body_length(prefix))
                header = proxy_protocol.parse_v2(prefix, body)
        if header.source is None:
            # A health check from the proxy itself, or a client it cannot describe: not the
            # proxy's address, which may well be loopback and trusted as a relay host.
            slog.info("PROXY header from %s names no client address", conn.peer)
            return Address.unknown()
        slog.debug("PROXY header from %s: client %s", conn.peer, header.source)
        return Address.from_ip(*header.source)

    @staticmethod
    def _scope_paths(config: ListenerConfig, scope: tuple[int, int]) -> tuple[str, ...]:
        if scope == NO_SCOPE:
            return ()
        paths = []
        if scope[0] >= 0:
            paths.append(config.server_scopes[scope[0]].path)
        if scope[1] >= 0:
            paths.append(config.listener_scopes[scope[1]].path)
        return tuple(paths)

    # -- run-time control and status -----------------------------------------------------

    def set_suspended(self, listener_id: str, suspended: bool) -> None:
        """Disable (or enable again) a listener at run time without a restart: its sockets
        stay bound, new connections get the protocol's refusal, open sessions go on."""
        runtime = self.listeners[listener_id]
        self.shared.set_suspended(listener_id, suspended)
        if runtime.suspended != suspended:
            runtime.suspended = suspended
            log.info("listener %s %s", listener_id, "disabled" if suspended else "enabled")

    def status(self) -> list[dict[str, Any]]:
        """Every running listener: protocol, real bound addresses, TLS, load, state."""
        return [
            {
                "id": lid,
                "protocol": runtime.config.protocol,
                "bind": [str(bound.actual) for bound in runtime.sockets.values()],
                "tls": "implicit" if runtime.config.settings.tls.implicit else "none",
                "open-connections": self.shared.open_connections(lid),
                "max-connections": runtime.config.settings.max_connections,
                "enabled": not self.is_suspended(lid),
            }
            for lid, runtime in self.listeners.items()
        ]

    def is_suspended(self, listener_id: str) -> bool:
        """Disabled at run time (in any worker, when there are several)."""
        return self.shared.is_suspended(listener_id)

    def addresses(self, listener_id: str) -> list[BindAddress]:
        """The addresses a listener is bound to, with real ports."""
        return [bound.actual for bound in self.listeners[listener_id].sockets.values()]


def _client_key(listener_id: str, peer: Address, ipv6_prefix: int) -> bytes | None:
    """What ``max-connections-per-ip`` counts a client by, on one listener: its IPv4 address,
    its IPv6 prefix (an IPv4-mapped address as IPv4); None for a Unix socket or an unknown
    client."""
    ip = peer.ip
    if ip is None:
        return None
    if ip.version == 6:
        mapped = ip.ipv4_mapped  # type: ignore[union-attr]
        if mapped is None:
            network = ipaddress.IPv6Network((ip, ipv6_prefix), strict=False)
            return f"ip\0{listener_id}\0{network}".encode()
        ip = mapped
    return f"ip\0{listener_id}\0{ip}".encode()
