"""SQLite backend: outbound TLS state, the MTA-STS policies of destinations (RFC 8461 5.1: a
sender caches a domain's policy until its max_age runs out, across restarts) and the TLS
results counted for TLS-RPT reports (RFC 8460 4). Migration ``_v9_outbound_tls`` creates the
tables.

Both are bounded: a policy cache of at most ``keep`` domains (the least recently fetched go
first, and expired ones as soon as another is written); results are counted per UTC day,
destination domain, policy and failure (a row per combination, never per message), and a
day's rows are deleted once its reports are sent or when they are older than ``MAX_DAYS``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from stalwart_py.store.engine import Engine, Txn
from stalwart_py.store.model import CachedStsPolicy, TlsResultCount

MAX_DAYS = 7  # results kept at most this many days when no report could be sent


def create_tables(conn: sqlite3.Connection) -> None:
    """The ``mta_sts_policies`` and ``tls_results`` tables (a schema migration)."""
    conn.execute(
        "CREATE TABLE mta_sts_policies ("
        " domain TEXT PRIMARY KEY,"
        " policy_id TEXT NOT NULL,"
        " body TEXT NOT NULL,"
        " fetched REAL NOT NULL,"
        " expires REAL NOT NULL"
        ") WITHOUT ROWID"
    )
    conn.execute(
        "CREATE TABLE tls_results ("
        " day TEXT NOT NULL,"
        " domain TEXT NOT NULL,"
        " policy TEXT NOT NULL,"
        " failure TEXT NOT NULL,"
        " count INTEGER NOT NULL,"
        " PRIMARY KEY (day, domain, policy, failure)"
        ") WITHOUT ROWID"
    )


class OutboundTLSMixin:
    _engine: Engine

    async def get_sts_policy(self, domain: str) -> CachedStsPolicy | None:
        def op(conn: sqlite3.Connection) -> CachedStsPolicy | None:
            row = conn.execute(
                "SELECT domain, policy_id, body, fetched, expires FROM mta_sts_policies"
                " WHERE domain = ?",
                (domain,),
            ).fetchone()
            return CachedStsPolicy(*row) if row else None

        return await self._engine.lookup(op)

    async def put_sts_policy(self, policy: CachedStsPolicy, *, keep: int, now: float) -> None:
        def op(txn: Txn) -> None:
            txn.execute(
                "INSERT INTO mta_sts_policies(domain, policy_id, body, fetched, expires)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT(domain) DO UPDATE SET"
                " policy_id = excluded.policy_id, body = excluded.body,"
                " fetched = excluded.fetched, expires = excluded.expires",
                (policy.domain, policy.policy_id, policy.body, policy.fetched, policy.expires),
            )
            txn.execute("DELETE FROM mta_sts_policies WHERE expires <= ?", (now,))
            txn.execute(
                "DELETE FROM mta_sts_policies WHERE domain NOT IN"
                " (SELECT domain FROM mta_sts_policies ORDER BY fetched DESC LIMIT ?)",
                (keep,),
            )

        await self._engine.write(op)

    async def count_tls_results(self, counts: Sequence[TlsResultCount]) -> None:
        def op(txn: Txn) -> None:
            for c in counts:
                txn.execute(
                    "INSERT INTO tls_results(day, domain, policy, failure, count)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT(day, domain, policy, failure)"
                    " DO UPDATE SET count = count + excluded.count",
                    (c.day, c.domain, c.policy, c.failure, c.count),
                )

        await self._engine.write(op)

    async def tls_results(self, day: str) -> list[TlsResultCount]:
        def op(conn: sqlite3.Connection) -> list[TlsResultCount]:
            rows = conn.execute(
                "SELECT day, domain, policy, failure, count FROM tls_results WHERE day = ?"
                " ORDER BY domain, policy, failure",
                (day,),
            )
            return [TlsResultCount(*row) for row in rows]

        return await self._engine.read(op)

    async def tls_result_days(self) -> list[str]:
        def op(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute("SELECT DISTINCT day FROM tls_results ORDER BY day")
            return [row[0] for row in rows]

        return await self._engine.read(op)

    async def delete_tls_results(self, day: str, domain: str | None = None) -> None:
        def op(txn: Txn) -> None:
            if domain is None:
                txn.execute("DELETE FROM tls_results WHERE day <= ?", (day,))
            else:
                txn.execute("DELETE FROM tls_results WHERE day = ? AND domain = ?", (day, domain))

        await self._engine.write(op)
