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


class LoopConnection:
    """An asyncio connection whose statements go by ``pg_wire``, the event loop waiting on
    its socket.

    The socket stays registered with the loop for as long as the connection is used: adding
    and removing a reader around every wait (two ``epoll_ctl`` calls and the selector's
    bookkeeping, ~9 waits per delivered message) was a tenth of a node's CPU. Data that
    arrives while no statement waits (a notice, the server's goodbye) is read into libpq's
    buffer, so that the loop is not called for it again and again. libpq closes the socket
    itself when it finds the connection lost: the loop forgets the descriptor right then,
    before another socket can be given its number (``_unwatch``); the connection is not
    ``idle`` any more, and its owner makes a new one."""

    __slots__ = ("_fd", "_loop", "_waiter", "conn", "wire")

    def __init__(self, conn: psycopg.AsyncConnection) -> None:
        adapt(conn)
        self.conn = conn
        self.wire = Wire(conn)
        self._loop = asyncio.get_running_loop()
        self._fd = -1  # registered with the loop (-1: not now)
        self._waiter: asyncio.Future[int] | None = None

    def idle(self) -> bool:
        """Open, and in no transaction: fit to begin a unit of work."""
        conn = self.conn
        return (
            not conn.closed
            and not conn.broken
            and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        )

    async def run(self, exchange: Generator[int, int, Rows]) -> Rows:
        """Run ``exchange`` (``pg_wire``) to its end."""
        try:
            wanted = next(exchange)
            while True:
                wanted = exchange.send(await self._wait(wanted))
        except StopIteration as done:
            return done.value
        except BaseException:
            self._unwatch()  # lost, maybe (the socket closed already); watched again if not
            raise

    async def _wait(self, wanted: int) -> int:
        loop = self._loop
        if self._fd < 0:
            self._fd = self.conn.pgconn.socket
            loop.add_reader(self._fd, self._readable)
        ready = loop.create_future()
        self._waiter = ready
        if wanted & select.POLLOUT:
            loop.add_writer(self._fd, _set, ready, select.POLLOUT)
        try:
            return await ready
        finally:
            self._waiter = None
            if wanted & select.POLLOUT:
                loop.remove_writer(self._fd)

    def _readable(self) -> None:
        if self._waiter is not None:
            _set(self._waiter, select.POLLIN)
            return
        try:
            self.conn.pgconn.consume_input()
        except psycopg.Error:
            self._unwatch()

    def _unwatch(self) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            self._fd = -1

    async def close(self) -> None:
        self._unwatch()
        await self.conn.close()


def _set(future: asyncio.Future[int], event: int) -> None:
    if not future.done():
        future.set_result(event)


class AsyncLookups:
    """Up to ``size`` asyncio connections, each running one lookup's statement at a time."""

    def __init__(self, connect: Callable[[], Awaitable[psycopg.AsyncConnection]], size: int):
        self._connect = connect
        self._idle: list[LoopConnection] = []
        self._all: set[LoopConnection] = set()
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
        async with self._limiter, self._connection() as conn:
            exchange = conn.wire.exchange((), statement, params_for(arrays, params))
            try:
                rows = await conn.run(exchange)
            except psycopg.errors.IntegrityError as exc:
                raise IntegrityError(str(exc)) from exc
            return rows.fetchall(), rows.rowcount

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[LoopConnection]:
        conn = self._idle.pop() if self._idle else None
        if conn is not None and not conn.idle():
            # Lost while idle (a restart, a failover): a new one is the same thing here,
            # where every statement is a unit of work by itself.
            self._all.discard(conn)
            await conn.close()
            conn = None
        if conn is None:
            conn = LoopConnection(await self._connect())
            self._all.add(conn)
        try:
            yield conn
        except BaseException as exc:
            if isinstance(exc, psycopg.Error) and conn.idle():
                self._idle.append(conn)  # the statement's own failure: the connection is fine
                raise
            # Cancelled, or lost, in the middle of a statement: the connection may still
            # owe its answer; nobody else gets it.
            self._all.discard(conn)
            with anyio.CancelScope(shield=True):
                await conn.close()
            raise
        else:
            self._idle.append(conn)

    async def close(self) -> None:
        conns = list(self._all)
        self._all.clear()
        self._idle.clear()
        for conn in conns:
            await conn.close()
