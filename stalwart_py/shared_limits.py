"""``SharedLimits``: every table of per-key counts the worker processes share (see
``stalwart_py.shared_table``), made in one place before the workers are forked.

The supervisor makes them (``create``) and every worker it forks inherits them, so a client's
connections, failed logins and SMTP rates count together whichever worker serves it; a
server with ``workers = 1`` makes them itself and is the only process using them. What each
table holds and how it forgets: ``ConnectionCounts`` (open connections per client address and
per peer scope, per worker, a dead worker's cleared by the supervisor), the login throttle's
failure times (``stalwart_py.throttle``: they outlive the worker that counted them) and the
SMTP rate buckets (``stalwart_py.inbound.rate``). Tables are sized at start: a reload does not
resize them (``directory.throttle.max-tracked`` takes effect at the next start).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stalwart_py.config import Config
from stalwart_py.inbound.rate import rate_table
from stalwart_py.shared_table import ConnectionCounts, SharedTable
from stalwart_py.throttle import failure_table

_TABLES = ("login_failures", "connection_rates", "message_rates")  # the plain SharedTables


@dataclass(eq=False)
class SharedLimits:
    connections: ConnectionCounts  # per-IP and peer-scope max-connections
    login_failures: SharedTable  # the login throttle's records
    connection_rates: SharedTable  # smtp.rate.connections-per-ip
    message_rates: SharedTable  # smtp.rate.messages-per-ip

    @classmethod
    def create(cls, config: Config, workers: int = 1) -> SharedLimits:
        return cls(
            ConnectionCounts(workers),
            failure_table(config.directory.throttle.max_tracked),
            rate_table(),
            rate_table(),
        )

    def shared(self) -> dict[str, Any]:
        """The tables as another process attaches to them (``attach``) when it was not forked
        from this one: the test kit's sibling workers (``stalwart_py.testing.workers``). The
        descriptors (``descriptors``) must be passed to that process."""
        return {
            "workers": self.connections.workers,
            **{name: getattr(self, name).shared() for name in _TABLES},
            "connections": self.connections.table.shared(),
        }

    def descriptors(self) -> list[int]:
        return [self.connections.table.shared()["fd"]] + [  # type: ignore[list-item]
            getattr(self, name).shared()["fd"] for name in _TABLES
        ]

    @classmethod
    def attach(cls, shared: dict[str, Any]) -> SharedLimits:
        """The tables ``shared()`` described, in the process they were passed to."""

        def table(description: dict[str, Any]) -> SharedTable:
            return SharedTable(**{**description, "secret": bytes.fromhex(description["secret"])})

        counts = shared["connections"]
        return cls(
            ConnectionCounts(shared["workers"], table=table(counts)),
            **{name: table(shared[name]) for name in _TABLES},
        )

    def for_worker(self, index: int) -> SharedLimits:
        """This process is worker ``index``: its connections are counted in its own cells."""
        self.connections.worker = index
        return self
