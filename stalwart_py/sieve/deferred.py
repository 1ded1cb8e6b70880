"""The delivery pipeline's Sieve filter, made on the first delivery rather than at start.

``SieveFilter`` brings the whole interpreter with it (every extension, the validator, the
vacation and notify builders): a third of what a start imported. A server binds its
listeners without any of it, so ``ServerContext`` holds this stand-in, which imports and
builds the real filter when the first message is evaluated (bench/startup.py measures the
start; issue 21 asks for under one second on a fresh machine).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stalwart_py.delivery import Disposition, Envelope
    from stalwart_py.sieve.filter import SieveFilter
    from stalwart_py.store import Account


class DeferredSieveFilter:
    """A ``MessageFilter`` (stalwart_py.delivery) that is a ``SieveFilter`` built with the
    given arguments on first use."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._arguments = (args, kwargs)
        self._filter: SieveFilter | None = None

    @property
    def filter(self) -> SieveFilter:
        if self._filter is None:
            from stalwart_py.sieve.filter import SieveFilter  # the deferred import itself

            args, kwargs = self._arguments
            self._filter = SieveFilter(*args, **kwargs)
        return self._filter

    async def evaluate(
        self, account: Account, envelope: Envelope, recipient: str, message: bytes
    ) -> Disposition:
        return await self.filter.evaluate(account, envelope, recipient, message)
