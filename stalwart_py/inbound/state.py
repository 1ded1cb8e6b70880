"""``Inbound``: what the checks of mail from strangers share across sessions."""

from __future__ import annotations

from stalwart_py.inbound.rate import RateLimiter


class Inbound:
    """One per server (``ServerContext.inbound``): the rate limiters, which must outlive a
    session (and a reload: the counts go on when the configuration changes)."""

    def __init__(self) -> None:
        self.connections = RateLimiter()
        self.messages = RateLimiter()
