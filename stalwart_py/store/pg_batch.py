"""PostgreSQL write batches of small writes on the event loop, without the writer thread.

A delivery's write is four statements, and its batch's owners query, NOTIFY and COMMIT three
more: each a round trip, for which the writer thread let go of the GIL and took it back
while the event loop thread was busy with the SMTP sessions (a GIL hand-off each, futex
calls, context switches, cold caches on both sides). On SQLite the small writes already run
their statements on the loop (``Engine._run_pending``); on PostgreSQL they run here, over an
asyncio connection of their own (``pg_lookup.LoopConnection``).

The write functions stay the synchronous ones the mixins share with SQLite, by replay, as the
lookups do (``pg_lookup.py``): a function runs against a connection (``_Replay``) that answers
the statements already run with their rows (or raises their error again), and stops it at
the first one not run yet; the statement goes to the server, and the function runs again from
its start. Only writes marked ``inline`` (a delivery, an APPEND, a queue entry of one small
body) come here: their functions compute from their arguments and their statements' rows, and
change nothing but the ``Txn`` (made anew for each run), so running their first lines again is
only a little CPU. ``executemany`` runs a statement per row. A function that asks for more
(a connection attribute), runs other statements on a second run than on the first, or more
than ``MAX_REPLAYED``, is undone to its savepoint and handed to the writer thread instead.

What the writer thread guarantees holds here the same way: each write in its SAVEPOINT, one
transaction per batch, the change set's NOTIFY inside it, every caller woken only after
COMMIT returned, and a write that was a deadlock's victim run again in a transaction of its
own (``MAX_ATTEMPTS``). Batches of this loop and of the writer thread may run at once, as two
nodes' batches do: row locks order them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import psycopg

from stalwart_py.store.account_watch import mailbox_owners
from stalwart_py.store.change_bus import ChangeSet
from stalwart_py.store.engine import MAX_ATTEMPTS, MAX_BATCH, Txn, _Job
from stalwart_py.store.pg_dialect import IntegrityError, params_for, translate
from stalwart_py.store.pg_lookup import LoopConnection, _Pending
from stalwart_py.store.pg_notify import notify_in_transaction
from stalwart_py.store.pg_wire import Rows

if TYPE_CHECKING:
    from stalwart_py.store.postgresql import PgEngine

log = logging.getLogger("stalwart_py.store")

_DEFERRED = ("RELEASE ", "SAVEPOINT ", "BEGIN")
# Statements (savepoints included) a write may run here before it goes to the writer thread:
# each runs its function again from the start, so a write of many statements (a delivery to
# dozens of mailboxes) would cost the loop their square; ~12 copies of a delivery fit.
MAX_REPLAYED = 64


class _Unsupported(BaseException):
    """The function asked the connection for more than ``execute``: it goes to the thread."""


class _Replay:
    """A transaction's connection, as a write function sees it, for one run of it: the
    statements it ran before are answered from ``answers``; a savepoint taken or released
    joins ``controls`` (sent with the next statement, as ``PgConnection`` does); the first
    statement not run yet stops the run (``_Pending``), and so does every one after it, in
    case the function caught the first."""

    __slots__ = ("_answers", "_controls", "_next", "pending")

    def __init__(self, answers: list[Any], controls: list[str]) -> None:
        self._answers = answers
        self._controls = controls
        self._next = 0
        self.pending: _Pending | None = None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows | None:
        if self.pending is not None:
            raise self.pending
        index = self._next
        self._next += 1
        if index < len(self._answers):
            ran, answer = self._answers[index]
            if ran != sql:  # not the function it was: it cannot go on here
                raise _Unsupported(sql)
            if isinstance(answer, BaseException):
                raise answer.with_traceback(None)
            return None if answer is None else Rows(*answer)
        statement, _arrays = translate(sql)
        if not params and statement.startswith(_DEFERRED):
            self._answers.append((sql, None))
            self._controls.append(statement)
            return None
        self.pending = _Pending(sql, params)
        raise self.pending

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> Rows:
        """One statement per row (a queue entry's few recipients): its rows' count."""
        count = 0
        for params in seq:
            rows = self.execute(sql, params)
            count += 0 if rows is None else max(rows.rowcount, 0)
        return Rows([], count)

    def __getattr__(self, name: str) -> Any:
        raise _Unsupported(name)


class LoopBatches:
    """The inline writes of a ``PgEngine``, batched and run on the event loop."""

    def __init__(self, engine: PgEngine) -> None:
        self._engine = engine
        self._pending: list[_Job] = []
        self._task: asyncio.Task[None] | None = None
        self._conn: LoopConnection | None = None
        self._controls: list[str] = []  # savepoints to send with the next statement

    async def write(self, func: Callable[[Txn], Any]) -> Any:
        job = _Job(func, asyncio.get_running_loop().create_future(), inline=True)
        self._pending.append(job)
        if self._task is None:
            # A task starts on the loop's next pass: the writes of this pass (other
            # sessions' DATA) join its first batch; later ones gather while it commits.
            self._task = asyncio.get_running_loop().create_task(self._drain())
        await job.done
        if job.error is not None:
            raise job.error
        return job.result

    async def close(self) -> None:
        if self._task is not None:
            with contextlib.suppress(Exception):  # its callers were told
                await asyncio.shield(self._task)
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
                try:
                    await self._run_batch(batch)
                except BaseException as exc:  # cancelled with the loop: nobody hangs
                    self._abandon(batch + self._pending, exc)
                    raise
        finally:
            self._task = None

    def _abandon(self, jobs: list[_Job], exc: BaseException) -> None:
        self._pending.clear()
        error = exc if isinstance(exc, Exception) else RuntimeError("the store is closing")
        jobs = [job for job in jobs if not job.done.done()]  # not those told already
        for job in jobs:
            job.result, job.error = None, error
        self._engine._finish(jobs, set())

    async def _run_batch(self, batch: list[_Job]) -> None:
        """``Engine._run_batch``: commit, wake, and run a deadlock's victims again."""
        engine = self._engine
        for attempt in range(MAX_ATTEMPTS):
            touched, owners, listings, moved = await self._transaction(batch)
            again = engine._again(batch, attempt + 1)
            finished = [job for job in batch if job not in again and job not in moved]
            engine.batches += 1
            engine.writes += len(finished)
            engine._finish(finished, touched, owners, listings)
            for job in moved:
                engine._queue.put(job)
            if not again:
                return
            batch = again

    async def _connection(self) -> LoopConnection:
        if self._conn is not None and not self._conn.idle():
            # Lost (a restart, a failover), or left inside a transaction that failed: a new
            # one is the same thing at the start of a batch.
            with contextlib.suppress(psycopg.Error):
                await self._conn.close()
            self._conn = None
        if self._conn is None:
            self._conn = LoopConnection(await self._engine._new_async_connection())
        return self._conn

    async def _execute(self, sql: str, params: Sequence[Any]) -> Any:
        """One round trip: the savepoints waiting, then ``sql``; its (rows, rowcount), or
        the error it raised (as ``PgConnection`` raises it)."""
        conn = self._conn
        assert conn is not None
        statement, arrays = translate(sql)
        controls, self._controls = self._controls, []
        try:
            exchange = conn.wire.exchange(controls, statement, params_for(arrays, params))
            rows = await conn.run(exchange)
        except psycopg.errors.IntegrityError as exc:
            error = IntegrityError(str(exc))
            error.__cause__ = exc
            return error
        except psycopg.Error as exc:
            return exc
        return rows.fetchall(), rows.rowcount

    async def _replay(self, func: Callable[[Any], Any]) -> Any:
        """Run ``func`` to its end, its statements sent one round trip at a time."""
        answers: list[Any] = []
        while True:
            replay = _Replay(answers, self._controls)
            try:
                result = func(replay)
            except BaseException:
                if replay.pending is None:  # the function's own end, not a statement's wait
                    raise
            else:
                if replay.pending is None:
                    return result
            pending = replay.pending
            if len(answers) >= MAX_REPLAYED:
                raise _Unsupported(pending.sql)
            answers.append((pending.sql, await self._execute(pending.sql, pending.params)))

    async def _statement(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        answer = await self._execute(sql, params)
        if isinstance(answer, BaseException):
            raise answer
        return Rows(answer[0], answer[1])

    async def _transaction(
        self, batch: list[_Job]
    ) -> tuple[set[int], dict[int, set[int]], set[int], list[_Job]]:
        """``Engine._commit`` on the loop; also the writes handed to the thread."""
        engine = self._engine
        touched: set[int] = set()
        listings: set[int] = set()
        moved: list[_Job] = []
        try:
            await self._connection()
            self._controls = ["BEGIN"]
            now = engine.clock()
            for job in batch:
                self._controls.append("SAVEPOINT job")
                txn: Txn | None = None

                def run(conn: Any, job: _Job = job) -> Any:
                    nonlocal txn
                    txn = Txn(conn, now, sequences=True)
                    return job.func(txn)

                try:
                    job.result = await self._replay(run)
                except _Unsupported:
                    moved.append(job)
                    await self._statement("ROLLBACK TO job")
                except Exception as exc:
                    job.error = exc
                    await self._statement("ROLLBACK TO job")
                else:
                    assert txn is not None
                    touched |= txn.touched
                    listings |= txn.listings
                self._controls.append("RELEASE job")
            owners = await self._replay(lambda conn: mailbox_owners(conn, touched))
            if touched or listings:
                changes = ChangeSet(touched, owners, listings)
                await self._replay(
                    lambda conn: notify_in_transaction(conn.execute, engine.node, changes)
                )
            await self._statement("COMMIT")
            if (touched or listings) and engine.bus is not None:
                engine.bus.publish(ChangeSet(touched, owners, listings))
        except Exception as exc:
            log.error("store commit failed, %d writes refused: %s", len(batch), exc)
            self._controls = []
            if self._conn is not None and not self._conn.idle():
                with contextlib.suppress(psycopg.Error):
                    await self._statement("ROLLBACK")
            for job in batch:
                job.result, job.error = None, exc
            return set(), {}, set(), []
        return touched, owners, listings, moved
