"""The SQL of the store's mixins, spoken to PostgreSQL.

The mixins (``sqlite_*.py``) are written once, against the slice of ``sqlite3.Connection``
they use: ``execute(sql, params)`` and ``executemany`` returning a cursor (``fetchone``,
``fetchall``, iteration, ``rowcount``), ``in_transaction``, and ``sqlite3.IntegrityError``
for a broken constraint. ``PgConnection`` offers that slice over a psycopg 3 connection, so
the same functions run on either backend; where the two SQL dialects differ, the statement is
rewritten here, once per distinct text (cached):

- ``?`` placeholders become ``%s`` (and a literal ``%`` becomes ``%%``, psycopg's escape);
- ``x IN (SELECT value FROM json_each(?))``, SQLite's way of passing a list as one JSON
  parameter, becomes ``x = ANY(%s)`` with the JSON decoded into a Python list (an array);
- ``max(0, e)`` (SQLite's two-argument max) becomes ``greatest(0, e)``;
- ``LIKE`` becomes ``ILIKE``: SQLite's LIKE ignores the case of ASCII letters;
- ``json_group_array(e)`` becomes ``json_agg(e)::text`` (the callers decode the JSON text);
- ``LIMIT -1 OFFSET n`` (SQLite has no OFFSET without a LIMIT) becomes ``OFFSET n``;
- ``BEGIN IMMEDIATE`` (take SQLite's write lock at once) becomes ``BEGIN``: PostgreSQL locks
  rows as they are written, and the writer serialises on the rows it updates.

Everything else (``ON CONFLICT ... DO UPDATE``/``DO NOTHING``, ``RETURNING``, ``SAVEPOINT``,
``coalesce``, ``substr``) is the same in both. Statements that would need more than these
rewrites are written in the portable form in the mixins instead (``INSERT ... ON CONFLICT``
rather than ``INSERT OR REPLACE``).
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import psycopg
from psycopg import pq
from psycopg.types.numeric import Int8Dumper, NumericLoader

from stalwart_py.store.pg_wire import Rows, Wire, run

_JSON_LIST = "IN (SELECT value FROM json_each(?))"
_REWRITES = (
    (re.compile(r"\bmax\(0, "), "greatest(0, "),
    (re.compile(r"\bLIKE\b"), "ILIKE"),
    (re.compile(r"\bjson_group_array\(([^()]*)\)"), r"json_agg(\1)::text"),
    (re.compile(r"^BEGIN IMMEDIATE$"), "BEGIN"),
    (re.compile(r"\bLIMIT -1 OFFSET\b"), "OFFSET"),
)


class IntegrityError(sqlite3.IntegrityError):
    """A constraint PostgreSQL refused (unique key, foreign key, not null), raised as the
    ``sqlite3.IntegrityError`` the mixins catch; the psycopg error is its ``__cause__``."""


@functools.lru_cache(maxsize=1024)
def translate(sql: str) -> tuple[str, tuple[int, ...]]:
    """PostgreSQL's text of ``sql``, and the positions of the parameters that arrive as JSON
    lists and go as arrays."""
    for pattern, replacement in _REWRITES:
        sql = pattern.sub(replacement, sql)
    out: list[str] = []
    arrays: list[int] = []
    index = 0
    position = 0
    quote: str | None = None
    while position < len(sql):
        char = sql[position]
        if quote is not None:
            if char == quote:
                quote = None
            out.append("%%" if char == "%" else char)
        elif char in "'\"":
            quote = char
            out.append(char)
        elif sql.startswith(_JSON_LIST, position):
            out.append("= ANY(%s)")
            arrays.append(index)
            index += 1
            position += len(_JSON_LIST)
            continue
        elif char == "?":
            out.append("%s")
            index += 1
        elif char == "%":
            out.append("%%")
        else:
            out.append(char)
        position += 1
    return "".join(out), tuple(arrays)


def params_for(arrays: tuple[int, ...], params: Sequence[Any]) -> Sequence[Any]:
    if not arrays:
        return params
    converted = list(params)
    for index in arrays:
        converted[index] = json.loads(converted[index])
    return converted


class _BoolAsInt(Int8Dumper):
    """Flags are integer columns (0/1), as in SQLite, which takes True for 1."""

    def dump(self, obj: Any) -> bytes:
        return super().dump(int(obj))


class _NumericAsNumber(NumericLoader):
    """``sum()`` of a bigint column is a numeric, which psycopg loads as a Decimal; SQLite's
    is an int, and the callers count with ints."""

    def load(self, data: Any) -> Any:
        value = super().load(data)
        return int(value) if value == value.to_integral_value() else float(value)


def adapt(conn: psycopg.Connection | psycopg.AsyncConnection) -> None:
    """Python values as the mixins expect them from SQLite (booleans, sums)."""
    conn.adapters.register_dumper(bool, _BoolAsInt)
    conn.adapters.register_loader("numeric", _NumericAsNumber)


class PgConnection:
    """A psycopg connection in autocommit mode (transactions are the callers' explicit
    ``BEGIN``/``COMMIT``, as with SQLite's ``isolation_level=None``) behind the
    ``sqlite3.Connection`` slice the mixins use."""

    def __init__(self, connect: Callable[[], psycopg.Connection]) -> None:
        self._connect = connect
        self.raw = self._open()
        self._wire = Wire(self.raw)
        self._explicit = False  # within a BEGIN ... COMMIT of ours
        self._deferred: list[str] = []  # RELEASE statements not sent yet

    def _open(self) -> psycopg.Connection:
        conn = self._connect()
        adapt(conn)
        return conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows | None:
        statement, arrays = translate(sql)
        if self.broken and (statement.startswith("BEGIN") or not self._explicit):
            # The connection was lost (a restart, a failover, a network cut). Only at the
            # start of a unit of work is a new one the same thing: within a transaction, the
            # statements before would be lost without a word.
            self.raw.close()
            self.raw = self._open()
            self._wire = Wire(self.raw)
            self._deferred.clear()
        if not params and statement.startswith(("RELEASE ", "SAVEPOINT ", "BEGIN")):
            # Beginning a transaction, taking or releasing a savepoint returns nothing and
            # does not fail: it travels with the next statement instead of costing a round
            # trip of its own (four per delivery: the batch's and the recipient's savepoints,
            # taken and released; one per batch or read).
            self._deferred.append(statement)
            self._track(statement, None)
            return None
        deferred, self._deferred = self._deferred, []
        # One pipeline, one round trip: the deferred savepoints, then the statement; an
        # error can only be the statement's (or the transaction's, aborted before).
        exchange = self._wire.exchange(deferred, statement, params_for(arrays, params))
        try:
            rows = run(self._wire, exchange)
        except psycopg.errors.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc
        return self._track(statement, rows)

    def _track(self, statement: str, cursor: Rows | None) -> Rows | None:
        """Note whether a transaction of ours is open, for a reconnection's sake."""
        if statement.startswith("BEGIN"):
            self._explicit = True
        elif statement in ("COMMIT", "ROLLBACK"):
            self._explicit = False
        return cursor

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> psycopg.Cursor:
        statement, arrays = translate(sql)
        if self._deferred:
            deferred, self._deferred = self._deferred, []
            run(self._wire, self._wire.exchange(deferred, None, ()))
        cursor = self.raw.cursor()
        try:
            cursor.executemany(statement, [params_for(arrays, p) for p in seq])  # type: ignore[arg-type]
        except psycopg.errors.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc
        return cursor

    @property
    def in_transaction(self) -> bool:
        """Within a transaction that a ROLLBACK can end (a lost connection ended its own)."""
        if self.broken:
            self._explicit = False  # whoever asks is ending it: the next statement reconnects
            return False
        if any(statement.startswith("BEGIN") for statement in self._deferred):
            return True  # begun, and not sent yet: the COMMIT or ROLLBACK takes it along
        return self.raw.info.transaction_status in (
            psycopg.pq.TransactionStatus.INTRANS,
            psycopg.pq.TransactionStatus.INERROR,
        )

    @property
    def broken(self) -> bool:
        # psycopg's own flag, or libpq's: statements sent by ``pg_wire`` bypass psycopg.
        return self.raw.closed or self.raw.broken or self.raw.pgconn.status == pq.ConnStatus.BAD

    def close(self) -> None:
        self.raw.close()
