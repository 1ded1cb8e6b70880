"""Per-client rate limits for strangers (``smtp.rate.connections-per-ip``, ``messages-per-ip``).

Each limit is a token bucket per listener and client address (an IPv4 address, an IPv6 prefix
of ``ipv6-prefix-length`` bits, as ``max-connections-per-ip`` counts clients): it holds
``limit`` tokens, refills at ``limit`` per minute, and each connection (or message) takes one.
So a client may burst up to the limit and then goes on at the limit's pace; a refused attempt
takes nothing, and the answer says how many seconds until a token is back.

Memory is bounded whatever addresses a sender rotates: a full bucket is the same as no entry,
so entries are dropped once they would have refilled (at most a minute after their last use),
and at most ``max_tracked`` keys are kept, the least recently used evicted first (an evicted
client starts again with a full bucket: the limit errs on the side of accepting mail).
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable

from stalwart_py.config.types import IPAddress

WINDOW = 60.0  # the limits are per minute
MAX_TRACKED = 100_000


class RateLimiter:
    """One token bucket per client key for one kind of event; ``clock`` is monotonic seconds."""

    def __init__(
        self, max_tracked: int = MAX_TRACKED, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_tracked = max_tracked
        self.clock = clock
        # key -> (tokens left, when they were counted); least recently used first.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str | None, limit: int) -> float:
        """Take a token for ``key`` (``rate_key``) under ``limit`` per minute: 0.0 when taken,
        else the seconds until one will be there (nothing is taken). No key (a Unix-socket
        peer: this machine) is never limited."""
        if key is None:
            return 0.0
        now = self.clock()
        rate = limit / WINDOW
        tokens, then = self._buckets.get(key, (float(limit), now))
        tokens = min(float(limit), tokens + (now - then) * rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            self._buckets.move_to_end(key)
            return (1.0 - tokens) / rate
        self._buckets[key] = (tokens - 1.0, now)
        self._buckets.move_to_end(key)
        self._forget(now)
        return 0.0

    def _forget(self, now: float) -> None:
        """Drop the least recently used entries that have refilled (a minute unused is always
        full again) and any beyond ``max_tracked``."""
        buckets = self._buckets
        while buckets:
            _tokens, then = next(iter(buckets.values()))
            if now - then < WINDOW and len(buckets) <= self.max_tracked:
                break
            buckets.popitem(last=False)


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
