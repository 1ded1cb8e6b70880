"""Point lookups on PostgreSQL without leaving the event loop.

``Engine.lookup`` runs a small function of a connection (``conn.execute(...).fetchone()``):
on SQLite, right on the event loop, where it takes microseconds. On PostgreSQL each statement
is a round trip, which must not block the loop; handing it to a worker thread did not block
it, but cost more than the round trip itself: measured in ``bench/pg_nodes.py`` (one node,
16 SMTP sessions), the four lookups of a delivery through ``anyio.to_thread`` were ~1 ms of
the node's CPU per message of 3.5 ms (the hop, the GIL passing between threads: 94 context
switches per message against 20 without the hop). psycopg's own asyncio connections were no
cheaper (74 us of CPU per statement against 41 us synchronously), so the statements go by
``pg_wire`` (libpq), the event loop waiting on the socket: a point lookup costs ~48 us of
CPU, replay included (85 us through anyio's semaphore and a pipeline for each statement).

So the lookups run on the loop, over connections of their own, and the functions stay
the synchronous ones the mixins share with SQLite, by replay: the function runs against a
connection that records the statement it executes and stops it there (``_Pending``); the
statement goes to the server asynchronously; the function runs again from the start with
the rows of its first statement at hand, and so on until it returns. A lookup function reads
and computes, without side effects, so running its first lines again is only a little CPU
(most run one statement: one pass for the statement, one to return). Each statement sees a
snapshot of its own, as a lookup's did on its worker thread (``PgEngine.lookup``).
"""

from __future__ import annotations

import asyncio
import contextlib
import select
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Sequence
from typing import Any

import anyio
import psycopg

from stalwart_py.store.pg_dialect import IntegrityError, adapt, params_for, translate
from stalwart_py.store.pg_wire import Rows, Wire


class _Pending(BaseException):
    """A statement whose rows the replay does not have yet. A BaseException: a lookup
    function's own ``except Exception`` must not take it for a failure of its query."""

    def __init__(self, sql: str, params: Sequence[Any]) -> None:
        super().__init__(sql)
        self.sql = sql
        self.params = params


class _Replay:
    """A connection that answers the statements already run with their rows, and stops the
    function at the first one not run yet."""

    __slots__ = ("_answers", "_next")

    def __init__(self, answers: list[tuple[list[tuple[Any, ...]], int]]) -> None:
        self._answers = answers
        self._next = 0

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        if self._next == len(self._answers):
            raise _Pending(sql, params)
        rows, rowcount = self._answers[self._next]
        self._next += 1
        return Rows(rows, rowcount)


def _idle(conn: psycopg.AsyncConnection) -> bool:
    return (
        not conn.closed
        and not conn.broken
        and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    )


async def _drive(conn: psycopg.AsyncConnection, exchange: Generator[int, int, Rows]) -> Rows:
    """Run ``exchange`` (``pg_wire``) with the event loop waiting on the socket."""
    loop = asyncio.get_running_loop()
    fd = conn.pgconn.socket
    try:
        wanted = next(exchange)
        while True:
            ready = loop.create_future()
            loop.add_reader(fd, _set, ready, select.POLLIN)
            if wanted & select.POLLOUT:
                loop.add_writer(fd, _set, ready, select.POLLOUT)
            try:
                event = await ready
            finally:
                loop.remove_reader(fd)
                if wanted & select.POLLOUT:
                    loop.remove_writer(fd)
            wanted = exchange.send(event)
    except StopIteration as done:
        return done.value


def _set(future: asyncio.Future[int], event: int) -> None:
    if not future.done():
        future.set_result(event)


class AsyncLookups:
    """Up to ``size`` asyncio connections, each running one lookup's statement at a time."""

    def __init__(self, connect: Callable[[], Awaitable[psycopg.AsyncConnection]], size: int):
        self._connect = connect
        self._idle: list[tuple[psycopg.AsyncConnection, Wire]] = []
        self._all: set[tuple[psycopg.AsyncConnection, Wire]] = set()
        # asyncio's: anyio's yields to the loop on every acquire, even when free.
        self._limiter = asyncio.Semaphore(size)

    async def run(self, func: Callable[[Any], Any]) -> Any:
        answers: list[tuple[list[tuple[Any, ...]], int]] = []
        while True:
            try:
                return func(_Replay(answers))
            except _Pending as pending:
                answers.append(await self._execute(pending.sql, pending.params))

    async def _execute(self, sql: str, params: Sequence[Any]) -> tuple[list[tuple[Any, ...]], int]:
        statement, arrays = translate(sql)
        async with self._limiter, self._connection() as (conn, wire):
            exchange = wire.exchange((), statement, params_for(arrays, params))
            try:
                rows = await _drive(conn, exchange)
            except psycopg.errors.IntegrityError as exc:
                raise IntegrityError(str(exc)) from exc
            return rows.fetchall(), rows.rowcount

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[tuple[psycopg.AsyncConnection, Wire]]:
        pair = self._idle.pop() if self._idle else None
        if pair is not None and not _idle(pair[0]):
            # Lost while idle (a restart, a failover): a new one is the same thing here,
            # where every statement is a unit of work by itself.
            self._all.discard(pair)
            await pair[0].close()
            pair = None
        if pair is None:
            conn = await self._connect()
            adapt(conn)
            pair = (conn, Wire(conn))
            self._all.add(pair)
        try:
            yield pair
        except BaseException as exc:
            if isinstance(exc, psycopg.Error) and _idle(pair[0]):
                self._idle.append(pair)  # the statement's own failure: the connection is fine
                raise
            # Cancelled, or lost, in the middle of a statement: the connection may still
            # owe its answer; nobody else gets it.
            self._all.discard(pair)
            with anyio.CancelScope(shield=True):
                await pair[0].close()
            raise
        else:
            self._idle.append(pair)

    async def close(self) -> None:
        pairs = list(self._all)
        self._all.clear()
        self._idle.clear()
        for conn, _wire in pairs:
            await conn.close()
