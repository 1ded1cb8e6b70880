"""Statements sent by libpq directly, with psycopg's adapters: a cursor's cost without one.

A store write or lookup is a handful of point statements; psycopg's cursor machinery (query
conversion, its prepare manager, result bookkeeping) costs ~41 us of CPU per statement here,
against ~13 us for the same statement through ``psycopg.pq`` (libpq) with psycopg's
``Transformer`` (its C adapters) dumping the parameters and loading the rows
(``bench/pg_nodes.py``: one PostgreSQL node is CPU-bound in its own process, ~14 statements
per delivered message). So ``PgConnection`` and the event loop's lookups (``pg_lookup.py``)
run their statements here: prepared on their second use (named ``_sw<n>``, never psycopg's
``_pg3_<n>``), each result read whole (the mixins fetch point rows), errors raised as
psycopg's own exception classes.

Every exchange is one libpq pipeline (a round trip): the statements deferred before (a
savepoint taken or released), the preparation of the statement on its second use, the
statement, then a sync; ``exchange`` is its I/O as a generator (psycopg's own style), which
``run`` drives with ``poll`` in a thread and ``pg_lookup.py`` with the event loop's readers.

What stays with psycopg: connecting (authentication, options), ``executemany``, migrations.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import select
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import pq
from psycopg.adapt import PyFormat, Transformer

# Statements prepared per connection at most; the rest run unnamed (parsed each time).
MAX_PREPARED = 512


# What ``exchange`` waits for: the socket readable, or readable or writable.
READ = select.POLLIN
READ_WRITE = select.POLLIN | select.POLLOUT


@functools.lru_cache(maxsize=1024)
def native(statement: str) -> tuple[bytes, int]:
    """libpq's text of a statement in psycopg's form (``%s`` placeholders, ``%%``), and its
    number of parameters."""
    out: list[str] = []
    count = 0
    position = 0
    while position < len(statement):
        char = statement[position]
        if char == "%" and position + 1 < len(statement):
            follower = statement[position + 1]
            if follower == "s":
                count += 1
                out.append(f"${count}")
                position += 2
                continue
            if follower == "%":
                out.append("%")
                position += 2
                continue
        out.append(char)
        position += 1
    return "".join(out).encode(), count


class Rows:
    """The slice of a cursor the mixins use, over a result read whole."""

    __slots__ = ("_position", "_rows", "rowcount")

    def __init__(self, rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self._rows = rows
        self._position = 0
        self.rowcount = rowcount

    def fetchone(self) -> tuple[Any, ...] | None:
        if self._position >= len(self._rows):
            return None
        self._position += 1
        return self._rows[self._position - 1]

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows = self._rows[self._position :]
        self._position = len(self._rows)
        return rows

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        while (row := self.fetchone()) is not None:
            yield row


@dataclass(slots=True)
class _Plan:
    """A statement with its parameters dumped, and the name it is prepared under (None:
    used once before; ``b""``: never)."""

    key: tuple[bytes, tuple[int, ...]]
    name: bytes | None
    values: Sequence[Any]
    formats: Sequence[pq.Format]


class Wire:
    """One connection's libpq side: what it prepared, and its adapters."""

    def __init__(self, conn: psycopg.Connection | psycopg.AsyncConnection) -> None:
        self.pgconn = conn.pgconn
        self._encoding = conn.info.encoding
        self._tx = Transformer(conn)
        # Statement -> the name it is prepared under (None: used once, not prepared yet).
        self._seen: dict[tuple[bytes, tuple[int, ...]], bytes | None] = {}
        self._names = itertools.count()

    def _plan(self, statement: str, params: Sequence[Any]) -> _Plan:
        query, count = native(statement)
        if len(params) != count:
            raise psycopg.ProgrammingError(
                f"the query has {count} placeholders but {len(params)} parameters were passed"
            )
        tx = self._tx
        values = tx.dump_sequence(params, [PyFormat.AUTO] * count)
        types = tuple(tx.types or ())
        key = (query, types)
        return _Plan(key, self._seen.get(key, b""), values, tx.formats)

    def send(self, plan: _Plan) -> tuple[bytes, tuple[int, ...]] | None:
        """Queue a planned statement in the pipeline, after its preparation on its second
        use; returns the key of a preparation queued (two results to read, the first the
        preparation's), else None (one result)."""
        name = plan.name
        if name:
            self.pgconn.send_query_prepared(name, plan.values, plan.formats)
            return None
        query, types = plan.key
        if name is None:
            # The second use: prepared now, for every use after it.
            name = f"_sw{next(self._names)}".encode()
            self._seen[plan.key] = name
            self.pgconn.send_prepare(name, query, types)
            self.pgconn.send_query_prepared(name, plan.values, plan.formats)
            return plan.key
        if len(self._seen) < MAX_PREPARED:
            self._seen[plan.key] = None
        self.pgconn.send_query_params(query, plan.values, types, plan.formats)
        return None

    def unprepared(self, key: tuple[bytes, tuple[int, ...]]) -> None:
        """The preparation queued for ``key`` failed (an aborted transaction, a bad
        statement): prepared on a later use instead."""
        self._seen[key] = None

    def exchange(
        self, controls: Sequence[str], statement: str | None, params: Sequence[Any]
    ) -> Generator[int, int, Rows]:
        """One pipeline: ``controls`` (no parameters, no rows), then ``statement``; the rows
        of the statement (of the last control without one). The first error is raised once
        the pipeline is read to its end; what followed it was not run."""
        pgconn = self.pgconn
        plan = None if statement is None else self._plan(statement, params)
        if plan is not None and plan.name and not controls:
            # A prepared statement alone (most lookups): no pipeline to enter, sync and leave.
            pgconn.send_query_prepared(plan.name, plan.values, plan.formats)
            while pgconn.flush():
                if (yield READ_WRITE) & select.POLLIN:
                    pgconn.consume_input()
            result = yield from self._next()
            while (yield from self._next()) is not None:
                pass
            return self.rows(result)  # type: ignore[arg-type]
        pgconn.enter_pipeline_mode()
        try:
            for control in controls:
                pgconn.send_query_params(control.encode(), None)
            prepared = None if plan is None else self.send(plan)
            pgconn.pipeline_sync()
            while pgconn.flush():
                if (yield READ_WRITE) & select.POLLIN:
                    pgconn.consume_input()
            expected = len(controls) + (statement is not None) + (prepared is not None)
            results: list[pq.abc.PGresult] = []
            for _ in range(expected):
                results.append((yield from self._next()))
                yield from self._next()  # the None after each command's result
            yield from self._next()  # PIPELINE_SYNC
        except BaseException:
            # Lost, or abandoned by a cancelled caller (who closes the connection): libpq
            # may refuse to leave the pipeline with results unread, which says nothing more.
            if pgconn.status == pq.ConnStatus.OK:
                with contextlib.suppress(psycopg.Error):
                    pgconn.exit_pipeline_mode()
            raise
        pgconn.exit_pipeline_mode()
        if prepared is not None and results[-2].status != pq.ExecStatus.COMMAND_OK:
            self.unprepared(prepared)
        for result in results:
            if result.status not in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
                raise self.error(result)
        return self.rows(results[-1]) if results else Rows([], -1)

    def _next(self) -> Generator[int, int, pq.abc.PGresult | None]:
        pgconn = self.pgconn
        while pgconn.is_busy():
            yield READ
            pgconn.consume_input()
        return pgconn.get_result()

    def rows(self, result: pq.abc.PGresult) -> Rows:
        """The rows of a result, or its error raised."""
        status = result.status
        if status == pq.ExecStatus.TUPLES_OK:
            self._tx.set_pgresult(result)
            return Rows(self._tx.load_rows(0, result.ntuples, tuple), result.ntuples)
        if status == pq.ExecStatus.COMMAND_OK:
            tuples = result.command_tuples
            return Rows([], -1 if tuples is None else tuples)
        raise self.error(result)

    def error(self, result: pq.abc.PGresult) -> psycopg.Error:
        if result.status == pq.ExecStatus.PIPELINE_ABORTED:
            return psycopg.errors.PipelineAborted("pipeline aborted")
        return psycopg.errors.error_from_result(result, encoding=self._encoding)


def run(wire: Wire, exchange: Generator[int, int, Rows]) -> Rows:
    """Drive ``exchange`` in this thread, waiting with ``poll`` (without the GIL)."""
    poller = select.poll()
    fd = wire.pgconn.socket
    try:
        wanted = next(exchange)
        while True:
            poller.register(fd, wanted)
            events = poller.poll()
            poller.unregister(fd)
            ready = 0
            for _fd, event in events:
                ready |= event
            if ready & (select.POLLERR | select.POLLHUP):
                ready |= select.POLLIN  # libpq reads the end of the connection, and says so
            wanted = exchange.send(ready)
    except StopIteration as done:
        return done.value
