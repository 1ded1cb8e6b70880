"""The login throttle: failed logins slow down the client that makes them, never the account.

Password guessing is slowed the way Dovecot's auth penalty and fail2ban do it, per client and
not per account, since a lock per account lets anyone lock anyone out (ten wrong passwords from
any address used to lock an account for everyone for five minutes):

* Failures are counted in a sliding ``window`` under two keys: the client address (an IPv6
  client by its /64, which one subscriber usually has whole; an IPv4 client of a dual-stack
  socket as IPv4) whatever the accounts, and the pair (client address, account).
* A key with ``limit`` failures or more in the window (``max-failures-per-address``,
  ``max-failures-per-address-and-account``) is blocked from its latest failure for
  ``block-time * 2 ** (failures - limit)``, at most ``max-block-time``: each further failure
  doubles the block.
* An attempt while a key is blocked is refused without checking the password
  (:class:`AuthThrottled`, with the seconds left) and is not counted, so that a client that
  keeps trying does not keep itself blocked; one that waits gets its next try.
* A success forgets the pair's failures (the user found the password), not the address's (one
  valid account must not hide guesses at others from the same address).
* So from an address with no failures, the right password always works.

The counts hold for the whole server: with ``server.workers = N`` they are records of a
table every worker shares (``stalwart_py.shared_table``), so failures spread over the workers
count together, and they outlive the worker that counted them (the table is the supervisor's).
A key's record keeps its latest ``TIMES`` failure times, as many as can still lengthen its
block; so the limits are at most ``TIMES``, and past ``TIMES`` failures a block stops doubling.
With a store several nodes share (PostgreSQL), the counts are the database's instead, one for
every node (``stalwart_py.cluster_throttle``); this class then gives the keys and the rule.

Memory is fixed whatever an attacker rotates: ``max-tracked`` records (read at start), a key
whose latest failure left the window gives its record up, and a full bucket of the table gives
up its least recently failed key; an account name is kept in a 16-byte digest, whatever its
length.

Known limit: the check and the count are not one step, since a password is checked in a
worker thread in between; a client with N connections gets N attempts in before the first
failure counts. Each of them counts, though, so the block grows N doublings at once, and the
listener's ``max-connections`` (overall and per peer scope) bounds N.
"""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Callable

from stalwart_py import sasl
from stalwart_py.config import ThrottleSettings
from stalwart_py.config.types import IPAddress
from stalwart_py.shared_table import HEADER, SharedTable

TIMES = 64  # failure times a key's record holds; the limits are at most this
_COUNT = struct.Struct("<i")


def failure_table(max_tracked: int) -> SharedTable:
    """A table for ``LoginThrottle``: ``max_tracked`` records of up to ``TIMES`` failures."""
    return SharedTable(8 + 8 * TIMES, max_tracked)


class AuthThrottled(sasl.AuthFailed):
    """Too many recent failures from this client (for this account): not even checked."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds until the block ends


def client_key(ip: IPAddress | None) -> bytes | None:
    """What one client is, for counting: an IPv4 address, an IPv6 /64; None for a Unix-socket
    peer (this machine: not blocked as an address, see ``LoginThrottle._keys``)."""
    if ip is None:
        return None
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        ip = mapped
    return b"4" + ip.packed if ip.version == 4 else b"6" + ip.packed[:8]


class LoginThrottle:
    """Failure counts per client address and per (client address, account); see the module
    docstring. ``clock`` is monotonic seconds (tests give a fake one); ``table`` is the
    server's shared one (``failure_table``), or a table of this throttle's own."""

    def __init__(
        self,
        settings: ThrottleSettings,
        clock: Callable[[], float] = time.monotonic,
        *,
        table: SharedTable | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.table = table if table is not None else failure_table(settings.max_tracked)

    def __len__(self) -> int:
        """Keys with a failure still in the window (a scan: for tests)."""
        horizon = self.clock() - self.settings.window
        table = self.table
        with table.locked():
            return sum(1 for at in table.records() if table.stamp(at) > horizon)

    def keys(self, ip: IPAddress | None, account: str | None) -> list[tuple[bytes, int]]:
        """(key, its limit) for the address and, when the account is known, the pair (last).
        A Unix-socket peer has no address key: everyone behind a local reverse proxy would
        share it, and one of them could then block all the others."""
        settings = self.settings
        client = client_key(ip)
        keys = []
        if client is not None:
            keys.append((b"a" + client, settings.max_failures_per_address))
        if account is not None:
            pair = b"p" + (client or b"local") + b"\0" + account.encode("utf-8", "surrogatepass")
            keys.append((pair, settings.max_failures_per_address_and_account))
        return keys

    def _keys(self, ip: IPAddress | None, account: str | None) -> list[tuple[bytes, int]]:
        """``keys`` by the table's digests."""
        digest = self.table.digest
        return [(digest(key), limit) for key, limit in self.keys(ip, account)]

    def _times(self, at: int) -> list[float]:
        table = self.table
        (count,) = _COUNT.unpack_from(table.map, at + HEADER)
        return list(struct.unpack_from(f"<{count}d", table.map, at + HEADER + 8))

    def _store(self, at: int, times: list[float]) -> None:
        table = self.table
        struct.pack_into(f"<i4x{len(times)}d", table.map, at + HEADER, len(times), *times)
        table.set_stamp(at, times[-1])

    def _recent(self, at: int, now: float) -> list[float]:
        """The record's failures still within the window, oldest first."""
        horizon = now - self.settings.window
        return [moment for moment in self._times(at) if moment > horizon]

    def block(self, failures: int, limit: int) -> float:
        """How long a key with ``failures`` is blocked after its latest one."""
        if failures < limit:
            return 0.0
        settings = self.settings
        return min(settings.block_time * 2.0 ** min(failures - limit, 64), settings.max_block_time)

    def kept(self, limit: int) -> int:
        """Failure times worth keeping per key: past these the block is at its cap."""
        settings = self.settings
        if settings.block_time <= 0 or settings.max_block_time <= settings.block_time:
            kept = limit
        else:
            kept = limit + math.ceil(math.log2(settings.max_block_time / settings.block_time))
        return min(kept, TIMES)

    def wait(self, ip: IPAddress | None, account: str | None = None) -> float:
        """Seconds before an attempt from ``ip`` (for ``account``, once known) may be checked;
        0.0 when it may be now."""
        now = self.clock()
        longest = 0.0
        table = self.table
        keys = self._keys(ip, account)
        table.lock()
        try:
            for digest, limit in keys:
                at = table.find(digest)
                if at is None:
                    continue
                times = self._recent(at, now)
                if not times:
                    table.release(at)
                    continue
                longest = max(longest, times[-1] + self.block(len(times), limit) - now)
        finally:
            table.unlock()
        return longest

    def check(self, ip: IPAddress | None, account: str | None = None) -> None:
        """Raise AuthThrottled while ``wait`` says to wait."""
        seconds = self.wait(ip, account)
        if seconds > 0:
            raise AuthThrottled("too many failed logins; try again later", retry_after=seconds)

    def failed(self, ip: IPAddress | None, account: str | None) -> None:
        """Count a failed attempt (one that was checked, not one refused by ``check``)."""
        now = self.clock()
        table = self.table
        horizon = now - self.settings.window
        keys = self._keys(ip, account)
        table.lock()
        try:
            for digest, limit in keys:
                claimed = table.claim(
                    digest, now, free=lambda at: table.stamp(at) <= horizon, evict=True
                )
                assert claimed is not None  # evict=True always finds a record
                at, new = claimed
                times = [] if new else self._recent(at, now)
                times.append(now)
                self._store(at, times[-self.kept(limit) :])
        finally:
            table.unlock()

    def succeeded(self, ip: IPAddress | None, account: str) -> None:
        """The right password: the pair's failures are forgotten, the address's are not."""
        table = self.table
        pair = self._keys(ip, account)[-1][0]  # the account is known: the pair comes last
        with table.locked():
            if (at := table.find(pair)) is not None:
                table.release(at)
