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

Memory is bounded whatever an attacker rotates: at most ``max-tracked`` keys, the ones whose
latest failure is oldest evicted first (and forgotten anyway once out of the window); a key
keeps at most as many failure times as can still lengthen its block; an account name is kept
as a 12-byte digest, whatever its length.

Known limit: the check and the count are not one step, since a password is checked in a
worker thread in between; a client with N connections gets N attempts in before the first
failure counts. Each of them counts, though, so the block grows N doublings at once, and the
listener's ``max-connections`` (overall and per peer scope) bounds N.
"""

from __future__ import annotations

import hashlib
import math
import time
from array import array
from collections import OrderedDict
from collections.abc import Callable

from stalwart_py import sasl
from stalwart_py.config import ThrottleSettings
from stalwart_py.config.types import IPAddress


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
    docstring. ``clock`` is monotonic seconds (tests give a fake one)."""

    def __init__(
        self, settings: ThrottleSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self.clock = clock
        # key -> failure times within the window, oldest first; keys ordered by latest failure.
        self._failures: OrderedDict[bytes, array[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._failures)

    def _keys(self, ip: IPAddress | None, account: str | None) -> list[tuple[bytes, int]]:
        """(key, limit) for the address and, when the account is known, the pair. A Unix-socket
        peer has no address key: everyone behind a local reverse proxy would share it, and one
        of them could then block all the others."""
        settings = self.settings
        client = client_key(ip)
        keys = []
        if client is not None:
            keys.append((b"a" + client, settings.max_failures_per_address))
        if account is not None:
            digest = hashlib.blake2b(
                account.encode("utf-8", "surrogatepass"), digest_size=12
            ).digest()
            pair = b"p" + (client or b"local") + digest
            keys.append((pair, settings.max_failures_per_address_and_account))
        return keys

    def _recent(self, key: bytes, now: float) -> array[float] | None:
        """The key's failures still within the window (the older ones dropped)."""
        times = self._failures.get(key)
        if times is None:
            return None
        horizon = now - self.settings.window
        stale = 0
        while stale < len(times) and times[stale] <= horizon:
            stale += 1
        if stale == len(times):
            del self._failures[key]
            return None
        if stale:
            del times[:stale]
        return times

    def _block(self, failures: int, limit: int) -> float:
        """How long a key with ``failures`` is blocked after its latest one."""
        if failures < limit:
            return 0.0
        settings = self.settings
        return min(settings.block_time * 2.0 ** min(failures - limit, 64), settings.max_block_time)

    def _kept(self, limit: int) -> int:
        """Failure times worth keeping per key: past these the block is at its cap."""
        settings = self.settings
        if settings.block_time <= 0 or settings.max_block_time <= settings.block_time:
            return limit
        return limit + math.ceil(math.log2(settings.max_block_time / settings.block_time))

    def wait(self, ip: IPAddress | None, account: str | None = None) -> float:
        """Seconds before an attempt from ``ip`` (for ``account``, once known) may be checked;
        0.0 when it may be now."""
        now = self.clock()
        longest = 0.0
        for key, limit in self._keys(ip, account):
            times = self._recent(key, now)
            if times is not None:
                longest = max(longest, times[-1] + self._block(len(times), limit) - now)
        return longest

    def check(self, ip: IPAddress | None, account: str | None = None) -> None:
        """Raise AuthThrottled while ``wait`` says to wait."""
        seconds = self.wait(ip, account)
        if seconds > 0:
            raise AuthThrottled("too many failed logins; try again later", retry_after=seconds)

    def failed(self, ip: IPAddress | None, account: str | None) -> None:
        """Count a failed attempt (one that was checked, not one refused by ``check``)."""
        now = self.clock()
        for key, limit in self._keys(ip, account):
            times = self._recent(key, now)
            if times is None:
                times = self._failures[key] = array("d")
            times.append(now)
            excess = len(times) - self._kept(limit)
            if excess > 0:
                del times[:excess]
            self._failures.move_to_end(key)
        self._forget(now)

    def succeeded(self, ip: IPAddress | None, account: str) -> None:
        """The right password: the pair's failures are forgotten, the address's are not."""
        for key, _ in self._keys(ip, account):
            if key.startswith(b"p"):
                self._failures.pop(key, None)

    def _forget(self, now: float) -> None:
        """Drop keys whose latest failure left the window (they are at the front, as keys are
        ordered by latest failure), then the oldest keys beyond ``max-tracked``."""
        horizon = now - self.settings.window
        failures = self._failures
        while failures:
            times = next(iter(failures.values()))
            if times[-1] > horizon and len(failures) <= self.settings.max_tracked:
                break
            failures.popitem(last=False)
