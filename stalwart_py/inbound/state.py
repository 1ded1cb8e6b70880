"""``Inbound``: what the checks of mail from strangers share across sessions."""

from __future__ import annotations

from stalwart_py.inbound.rate import RateLimiter
from stalwart_py.shared_table import SharedTable


class Inbound:
    """One per server (``ServerContext.inbound``): the rate limiters, which must outlive a
    session (and a reload: the counts go on when the configuration changes) and, given the
    server's shared tables, count over every worker process."""

    def __init__(
        self, connections: SharedTable | None = None, messages: SharedTable | None = None
    ) -> None:
        self.connections = RateLimiter(table=connections)
        self.messages = RateLimiter(table=messages)
