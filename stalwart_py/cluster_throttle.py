"""The login throttle across nodes: failures on node A slow the client down on node B too.

``LoginThrottle`` (``throttle.py``) counts failures in a table in this machine's shared memory,
which every worker process of the node sees. With a store that several nodes share
(``Store.shares_login_failures``: PostgreSQL), a client could otherwise try the limit's worth
of passwords on each node in turn. So there the failures are counted in the store instead
(``store/pg_login_failures.py``), under the throttle's own keys (the address; the pair of
address and account), digested, with the wall-clock time, and every check reads them there:
one count for every node, which a success on any node clears for the pair (a count per
machine beside it would keep blocking on the node that saw the failures after another node
saw the right password). The block's length comes from the same rule
(``LoginThrottle.block``): ``block-time`` doubling with each failure past the limit, at most
``max-block-time``. The cost is a read of the store at each check (an indexed lookup, beside
the account row's) and a write at each failure or success.

On a store of one machine (SQLite) the machine's table is every process's, and used alone.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from stalwart_py.config.types import IPAddress
from stalwart_py.store import Store
from stalwart_py.throttle import AuthThrottled, LoginThrottle

MAX_REMEMBERED = 10_000  # pairs with failures a process keeps in mind (``_failing``)


def digest(key: bytes) -> bytes:
    """What the store keeps of a key: neither an address nor an account name in clear."""
    return hashlib.blake2b(key, digest_size=16, person=b"stalwart-login").digest()


class ClusterThrottle:
    """The store's counts when nodes share it, else the machine's throttle; see the module
    docstring. ``clock`` is wall-clock seconds, the same on every node."""

    def __init__(
        self, store: Store, throttle: LoginThrottle, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.throttle = throttle
        self.clock = clock
        # Pairs whose failures this process saw at their latest check or counted itself: a
        # success clears only these in the store, so the usual login (no failure before it)
        # costs one read and no write. A failure another node counts between a check here
        # and the success stays counted (until the window passes or a later success here).
        self._failing: set[bytes] = set()

    @property
    def enabled(self) -> bool:
        return self.store.shares_login_failures

    def _keys(self, ip: IPAddress | None, account: str | None) -> list[tuple[bytes, int]]:
        return [(digest(key), limit) for key, limit in self.throttle.keys(ip, account)]

    async def check(self, ip: IPAddress | None, account: str | None = None) -> None:
        """Raise AuthThrottled while failures block the client: this machine's (``throttle``)
        or, on a store of several nodes, any node's."""
        if not self.enabled:
            self.throttle.check(ip, account)
            return
        keys = self._keys(ip, account)
        if not keys:
            return
        now = self.clock()
        found = await self.store.login_failures(
            [key for key, _ in keys], now - self.throttle.settings.window
        )
        if account is not None and keys[-1][0] in found:
            self._remember(keys[-1][0])
        longest = 0.0
        for key, limit in keys:
            times = found.get(key)
            if times:
                longest = max(longest, times[-1] + self.throttle.block(len(times), limit) - now)
        if longest > 0:
            raise AuthThrottled("too many failed logins; try again later", retry_after=longest)

    async def failed(self, ip: IPAddress | None, account: str | None) -> None:
        """Count a failed attempt (for every node, when they share the store)."""
        if not self.enabled:
            self.throttle.failed(ip, account)
            return
        keys = self._keys(ip, account)
        if keys:
            now = self.clock()
            horizon = now - self.throttle.settings.window
            await self.store.record_login_failures([key for key, _ in keys], now, horizon)
            if account is not None:
                self._remember(keys[-1][0])

    def _remember(self, pair: bytes) -> None:
        if len(self._failing) >= MAX_REMEMBERED:
            self._failing.clear()  # bounded: forgetting costs a later success its clearing
        self._failing.add(pair)

    async def succeeded(self, ip: IPAddress | None, account: str) -> None:
        """The right password: the pair's failures are forgotten (on every node)."""
        if not self.enabled:
            self.throttle.succeeded(ip, account)
            return
        pair = self._keys(ip, account)[-1][0]
        if pair in self._failing:
            self._failing.discard(pair)
            await self.store.forget_login_failures(pair)
