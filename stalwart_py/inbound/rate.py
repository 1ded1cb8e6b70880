"""Per-client rate limits for strangers (``smtp.rate.connections-per-ip``, ``messages-per-ip``).

Each limit is a token bucket per listener and client address (an IPv4 address, an IPv6 prefix
of ``ipv6-prefix-length`` bits, as ``max-connections-per-ip`` counts clients): it holds
``limit`` tokens, refills at ``limit`` per minute, and each connection (or message) takes one.
So a client may burst up to the limit and then goes on at the limit's pace; a refused attempt
takes nothing, and the answer says how many seconds until a token is back.

The buckets hold for the whole server: with ``server.workers = N`` they are records of a table
every worker shares (``stalwart_py.shared_table``), so a client's connections and messages count
together whichever worker serves them. With a store that several nodes share (PostgreSQL) they
are rows of the store instead (``NodesRate``, ``store/pg_rates.py``): whichever node a load
balancer sends a client to, one bucket.

Memory is fixed whatever addresses a sender rotates: a full bucket is the same as no entry, so
a record is given up once it would have refilled (a minute after its last use), and the table
holds ``max_tracked`` records, a full bucket of it giving up its least recently used one (an
evicted client starts again with a full bucket: the limit errs on the side of accepting mail).

When the shared store cannot be asked (PostgreSQL down, a connection cut), ``NodesRate.take``
raises ``RatesUnavailable`` rather than counting on this machine alone: the caller answers a
temporary error (``protocols/smtp/intake.py``; docs/inbound.md says why it fails closed).
"""

from __future__ import annotations

import hashlib
import ipaddress
import struct
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from stalwart_py.config.types import IPAddress
from stalwart_py.shared_table import HEADER, SharedTable
from stalwart_py.store.model import database_failure

if TYPE_CHECKING:
    from stalwart_py.store import Store

WINDOW = 60.0  # the limits are per minute
MAX_TRACKED = 100_000
_TOKENS = struct.Struct("<d")


def rate_table(max_tracked: int = MAX_TRACKED) -> SharedTable:
    """A table for ``RateLimiter``: a bucket's tokens per record (its stamp says when)."""
    return SharedTable(_TOKENS.size, max_tracked)


class RateLimiter:
    """One token bucket per client key for one kind of event; ``clock`` is monotonic seconds;
    ``table`` the server's shared one (``rate_table``), or one of this limiter's own."""

    def __init__(
        self,
        max_tracked: int = MAX_TRACKED,
        clock: Callable[[], float] = time.monotonic,
        *,
        table: SharedTable | None = None,
    ) -> None:
        self.clock = clock
        self.table = table if table is not None else rate_table(max_tracked)

    def __len__(self) -> int:
        """Buckets not full again yet (a scan: for tests)."""
        now = self.clock()
        table = self.table
        with table.locked():
            return sum(1 for at in table.records() if now - table.stamp(at) < WINDOW)

    def take(self, key: str | None, limit: int) -> float:
        """Take a token for ``key`` (``rate_key``) under ``limit`` per minute: 0.0 when taken,
        else the seconds until one will be there (nothing is taken). No key (a Unix-socket
        peer: this machine) is never limited."""
        if key is None:
            return 0.0
        now = self.clock()
        rate = limit / WINDOW
        table = self.table
        digest = table.digest(key.encode())
        table.lock()
        try:
            claimed = table.claim(
                digest, now, free=lambda at: now - table.stamp(at) >= WINDOW, evict=True
            )
            assert claimed is not None  # evict=True always finds a record
            at, new = claimed
            if new:
                tokens = float(limit)
            else:
                (tokens,) = _TOKENS.unpack_from(table.map, at + HEADER)
                tokens = min(float(limit), tokens + (now - table.stamp(at)) * rate)
            table.set_stamp(at, now)
            if tokens < 1.0:
                _TOKENS.pack_into(table.map, at + HEADER, tokens)
                return (1.0 - tokens) / rate
            _TOKENS.pack_into(table.map, at + HEADER, tokens - 1.0)
            return 0.0
        finally:
            table.unlock()


class RatesUnavailable(Exception):
    """The store that keeps the buckets failed to answer; the message says how (the store's
    error, whose traceback would say nothing more: it is the database, not a bug here)."""


class NodesRate:
    """One kind of event's buckets for the whole server: this machine's (``RateLimiter``) or,
    on a store several nodes share (``Store.shares_rates``), the store's, under a digest of
    ``kind`` and the client's key. ``clock`` is wall-clock seconds there, the same on every
    node (the machine's limiter keeps its monotonic one)."""

    def __init__(
        self,
        kind: str,
        local: RateLimiter,
        store: Store | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.kind = kind
        self.local = local
        self.store = store
        self.clock = clock

    async def take(self, key: str | None, limit: int) -> float:
        """As ``RateLimiter.take``: 0.0 when a token was taken, else the seconds to wait.
        ``RatesUnavailable`` when the shared store failed (nothing is known to be taken)."""
        store = self.store
        if key is None or store is None or not store.shares_rates:
            return self.local.take(key, limit)
        digest = hashlib.blake2b(
            f"{self.kind} {key}".encode(), digest_size=16, person=b"stalwart-rate"
        ).digest()
        try:
            return await store.take_rate_token(digest, limit, self.clock())
        except Exception as error:
            line = database_failure(error)
            if line is None:  # a bug, not the database: its traceback is wanted
                raise
            raise RatesUnavailable(line) from error


def rate_key(scope: str, ip: IPAddress | None, ipv6_prefix: int = 64) -> str | None:
    """What a client is counted by within ``scope`` (a listener): its IPv4 address (an
    IPv4-mapped one too) or its IPv6 prefix; None for a Unix-socket peer (this machine)."""
    if ip is None:
        return None
    if ip.version == 6:
        mapped = getattr(ip, "ipv4_mapped", None)
        if mapped is None:
            return f"{scope} {ipaddress.IPv6Network((ip, ipv6_prefix), strict=False)}"
        ip = mapped
    return f"{scope} {ip}"


def retry_text(seconds: float) -> str:
    """How an answer says when to come back: whole seconds, at least one."""
    whole = max(1, int(seconds + 0.999))
    return f"try again in {whole} second{'s' if whole != 1 else ''}"
