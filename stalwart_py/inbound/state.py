"""``Inbound``: what the checks of mail from strangers share across sessions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stalwart_py.inbound.rate import NodesRate, RateLimiter
from stalwart_py.shared_table import SharedTable

if TYPE_CHECKING:
    from stalwart_py.store import Store


class Inbound:
    """One per server (``ServerContext.inbound``): the rate limiters, which must outlive a
    session (and a reload: the counts go on when the configuration changes) and, given the
    server's shared tables, count over every worker process, and given a store that several
    nodes share, over every node."""

    def __init__(
        self,
        connections: SharedTable | None = None,
        messages: SharedTable | None = None,
        store: Store | None = None,
    ) -> None:
        self.connections = NodesRate("connections", RateLimiter(table=connections), store)
        self.messages = NodesRate("messages", RateLimiter(table=messages), store)
