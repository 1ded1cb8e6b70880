"""The hash pool: where every password check of every protocol spends its scrypt.

Checking a password against its scrypt hash (``stalwart_py.passwords``) costs tens of
milliseconds of CPU and 32 MiB of memory. Run on the event loop, one check stalls every
session of the process for that long; run on an unbounded number of threads, fifty logins at
once take 1.6 GB and leave each other no CPU. So a check runs here:

* in a worker thread (``anyio.to_thread``), never on the event loop;
* at most ``[directory] max-concurrent-hashes`` at once (default: the number of CPUs, as more
  threads than cores only share the same cores and multiply the memory);
* the others wait their turn in arrival order (``anyio.CapacityLimiter`` wakes its waiters
  first come, first served), each at most ``max-hash-wait``. A login whose wait runs out is
  *deferred*, not refused: :class:`LoginDeferred` is an ``AuthThrottled``, so every protocol
  answers it as "try again later" (IMAP ``NO [UNAVAILABLE]``, SMTP ``454 4.7.0``, ManageSieve
  ``NO (TRYLATER)``, HTTP ``429`` with ``Retry-After``), the directory logs it as a WARNING
  ``login deferred from <address>`` (not as a failed login: fail2ban must not ban clients for
  the server being busy), and the login throttle does not count it.

The authentication cache (``stalwart_py.auth_cache``) answers most logins before they get
here; this bounds what the rest cost. New passwords (accounts made or changed by the CLI or the
API) are hashed here too, so that they share the same bound; they wait as long as it takes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

from stalwart_py.throttle import AuthThrottled

T = TypeVar("T")

RETRY_AFTER = 1.0  # seconds a deferred client is told to wait (HTTP Retry-After)


class LoginDeferred(AuthThrottled):
    """No hash worker came free within ``max-hash-wait``: the server is busy, try later.
    The password was not checked, so this is not a failed login."""

    def __init__(self) -> None:
        super().__init__("server busy; try again later", retry_after=RETRY_AFTER)


def default_size() -> int:
    """The number of CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class HashPool:
    """At most ``size`` password hashes at once, in worker threads; see the module docstring.

    The limiters are made on first use, on the event loop that uses them (a pool can be built
    outside one: the CLI and the server context make theirs before the loop's first hash).
    """

    def __init__(self, size: int | None = None, max_wait: float = 10.0) -> None:
        self.size = size or default_size()
        self.max_wait = max_wait
        self._turns: anyio.CapacityLimiter | None = None  # who may hash now; others queue here
        self._threads: anyio.CapacityLimiter | None = None  # the threads the turns run on

    def configure(self, size: int | None, max_wait: float) -> None:
        """New limits (on reload): a larger size lets waiters in at once; a smaller one
        lets hashes already running finish."""
        self.size = size or default_size()
        self.max_wait = max_wait
        for limiter in (self._turns, self._threads):
            if limiter is not None:
                limiter.total_tokens = self.size

    @property
    def running(self) -> int:
        return int(self._turns.borrowed_tokens) if self._turns is not None else 0

    @property
    def waiting(self) -> int:
        return self._turns.statistics().tasks_waiting if self._turns is not None else 0

    async def run(self, func: Callable[..., T], *args: object, may_defer: bool = True) -> T:
        """``func(*args)`` in a worker thread when its turn comes; LoginDeferred when it does
        not come within ``max_wait``, unless not ``may_defer`` (hashing a new password for the
        CLI or the API: it waits its turn however long, and is bounded all the same). A
        running hash is not abandoned on cancellation (its thread could not be stopped anyway,
        and it still holds its turn)."""
        if self._turns is None or self._threads is None:
            self._turns = anyio.CapacityLimiter(self.size)
            # A limiter of its own for the threads, as large as the turns: never waited on,
            # and never shared with other to_thread users (whose default limiter is 40).
            self._threads = anyio.CapacityLimiter(self.size)
        turns = self._turns
        try:
            turns.acquire_nowait()  # a free worker: no wait at all, even with max_wait 0
        except anyio.WouldBlock:
            acquired = False
            with anyio.move_on_after(self.max_wait if may_defer else math.inf):
                await turns.acquire()
                acquired = True
            if not acquired:
                raise LoginDeferred() from None
        try:
            return await anyio.to_thread.run_sync(func, *args, limiter=self._threads)
        finally:
            turns.release()
