"""SMTP rate buckets kept in PostgreSQL, so that a sender spread over nodes by a load balancer
gets the limit once, not once per node (``inbound/rate.py`` asks, ``NodesRate``).

On one machine a bucket is a record in shared memory that every worker process takes from.
Nodes share only the database, so there a bucket is a row ``(key, tokens, at, refused)``:
``key`` a digest of the kind of event, the listener and the client (``rate_key``), ``tokens``
what was left at ``at`` (wall-clock seconds; the nodes' clocks, kept by NTP, as the queue's
leases and the login throttle are). Taking a token is one statement: the row is refilled for
the time since ``at``, one token taken if there is one, and whether one was is returned with
what is left; the row lock makes two nodes' takes of one bucket happen one after the other.
A row a minute old is a full bucket again, the same as no row: such rows are deleted now and
then (``SWEEP_EVERY``), so the table holds about a minute of clients.

The statement runs by itself (autocommit, on a reader connection): a bucket is not mail, and
joining the writer's batch would make every connection of a stranger wait for a commit of
deliveries.
"""

from __future__ import annotations

from stalwart_py.store.pg_dialect import PgConnection

WINDOW = 60.0  # the limits are per minute (``inbound/rate.py``)
SWEEP_EVERY = 60.0  # seconds between two deletions of full buckets by one process

_TAKE = """
INSERT INTO rate_buckets AS b (key, tokens, at, refused) VALUES (?, ?, ?, false)
ON CONFLICT (key) DO UPDATE SET
    tokens = least(?, b.tokens + greatest(0, excluded.at - b.at) * ?)
        - CASE WHEN least(?, b.tokens + greatest(0, excluded.at - b.at) * ?) >= 1
          THEN 1 ELSE 0 END,
    refused = least(?, b.tokens + greatest(0, excluded.at - b.at) * ?) < 1,
    at = greatest(b.at, excluded.at)
RETURNING tokens, refused
"""


class RatesMixin:
    """``Store.take_rate_token``, for ``PostgresStore``."""

    shares_rates = True
    _rates_swept = 0.0

    async def take_rate_token(self, key: bytes, limit: int, now: float) -> float:
        rate = limit / WINDOW
        sweep = now - self._rates_swept >= SWEEP_EVERY
        if sweep:
            self._rates_swept = now

        def op(conn: PgConnection) -> float:
            if sweep:
                conn.execute("DELETE FROM rate_buckets WHERE at < ?", (now - WINDOW,))
            row = conn.execute(
                _TAKE, (key, float(limit) - 1.0, now, limit, rate, limit, rate, limit, rate)
            ).fetchone()
            tokens, refused = row
            return (1.0 - tokens) / rate if refused else 0.0

        return await self._engine.lookup(op)  # type: ignore[attr-defined]
