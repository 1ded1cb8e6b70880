"""SQLite under an event loop: one writer thread with group commit, a pool of readers.

Writes. Every write is a function of a ``Txn`` run by the single writer thread. The writer
takes every write waiting in its queue (up to ``MAX_BATCH``), runs each in its own SAVEPOINT
(so one failing write does not undo the others) inside one transaction, and commits once:
one fsync (WAL, ``synchronous=FULL``) makes the whole batch durable. Only then is each caller
woken with its result. While a batch commits the next one gathers, so concurrent deliveries
share fsyncs instead of queueing behind one fsync each.

Reads. A read is a function of a connection run in a worker thread (at most ``readers`` at a
time), inside BEGIN/COMMIT so that all its statements see one snapshot. WAL lets reads run
while the writer writes.

Change notification. After a batch commits, the ``ChangeHub`` (``change_hub.py``) wakes the
watches on the mailboxes it touched, here and (``change_bus.py``) in every other process.

The engine runs on anyio's asyncio backend (the writer wakes callers by
``loop.call_soon_threadsafe``). Small writes on SQLite run their statements on the event loop
(``write(..., inline=True)``, e.g. a delivery of a message under ``blobs.INLINE_LIMIT``); only
the COMMIT, whose fsync takes milliseconds, goes to the writer thread. A statement of the
sqlite3 module lets go of the GIL and takes it back, so a delivery's dozen statements in the
writer thread meant a dozen GIL hand-offs with the event loop (futex calls, context switches,
cold caches on both sides) per message; batched this way a batch costs two hops (to the thread
for the commit, back by ``call_soon_threadsafe``) whatever its size. The batches are formed on
the loop (``_start``): while one commits, the next gathers, as before. A batch with any other
write runs in the writer thread as a whole, as does a PostgreSQL batch of other writes (its
small writes run on the loop too, by replay over an asyncio connection: ``pg_batch.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio

from stalwart_py.files import create_private_file, private_dir
from stalwart_py.store.account_watch import mailbox_owners
from stalwart_py.store.change_bus import ChangeBus, ChangeSet, DatagramBus
from stalwart_py.store.change_hub import ChangeHub
from stalwart_py.store.schema import migrate

log = logging.getLogger("stalwart_py.store")

T = TypeVar("T")
MAX_BATCH = 512
MAX_ATTEMPTS = 3  # runs of a write that keeps failing for a transient reason (_transient)
_STOP = object()
RUN_DIR = "run"  # beside the database: the processes' change-notification sockets
# Waiting for another process's writer to finish its batch (see ``_write_turn``): how often
# the turn is tried, and how long before the wait is left to SQLite's own busy handler. A
# commit (its fsync) takes a few ms here; polled every 1 ms, the turn sat idle for half a
# poll on average after each, and a writer that had just released it often took it again
# first: two workers' writers then alternated worse and committed smaller batches.
TURN_POLL = 0.00025
TURN_WAIT = 30.0
BUSY_TIMEOUT_MS = 30_000  # SQLite's busy handler: how long a statement waits for a lock


@dataclass
class Txn:
    """What a write function gets: the connection (inside a transaction), the time of the
    batch, the set of mailboxes it changed and the set of accounts whose mailbox list or
    subscriptions it changed (for the change hub)."""

    conn: sqlite3.Connection
    now: float
    touched: set[int] = field(default_factory=set)
    listings: set[int] = field(default_factory=set)  # account ids
    # The database has sequences (PostgreSQL): a counter shared by writers on several nodes
    # is one, which hands out values without a lock held to the commit (``blobs``).
    sequences: bool = False

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)


@dataclass(eq=False)
class _Job:
    func: Callable[[Txn], Any]
    done: asyncio.Future[None]
    result: Any = None
    error: BaseException | None = None
    inline: bool = False  # small enough to run on the event loop (see the module docstring)


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
    )
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = FULL")
    if readonly:
        conn.execute("PRAGMA query_only = ON")
    return conn


class Engine:
    def __init__(self, path: Path, *, readers: int = 8) -> None:
        self.path = path
        self.changes = ChangeHub()
        # The time a write batch runs at (``Txn.now``), and what expiring rows are read
        # against; tests set a fake one to age rows without waiting.
        self.clock: Callable[[], float] = time.time
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._limiter = anyio.CapacityLimiter(readers)
        self._readers: list[sqlite3.Connection] = []
        self._lookup_conn: sqlite3.Connection | None = None
        self._idle_readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self.bus: ChangeBus | None = None
        self.sequences = False  # see Txn.sequences
        self._turn: int | None = None  # the flock file of ``_write_turn`` (writer thread)
        self.batches = 0  # commits made, for tests and metrics
        self.writes = 0
        # SQLite: batches are formed on the event loop (``_start``). ``_pending`` holds the
        # writes waiting for the writer connection, ``_running`` says a batch has it (from its
        # turn through its commit); both are touched on the loop thread only.
        self._scheduled = False
        self._pending: list[_Job] = []
        self._running = False
        self._conn: Any = None  # the writer connection (used by one thread at a time)
        self._idle: asyncio.Event | None = None  # set when no batch runs (close)

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        await anyio.to_thread.run_sync(self._prepare)
        ready = threading.Event()
        self._writer = threading.Thread(
            target=self._write_loop, args=(ready,), name="store-writer", daemon=True
        )
        self._writer.start()
        await anyio.to_thread.run_sync(ready.wait)
        bus = self._bus()
        try:
            bus.start(self.changes.deliver)
        except OSError as exc:  # the store works; only other processes' changes go unseen
            log.warning("no change notification across processes: %s", exc)
            bus.close()
        else:
            self.bus = bus
            self.changes.publish = bus.publish

    def _in_transaction(self, conn: Any, changes: ChangeSet) -> None:
        """What the batch's transaction carries of its change set (PostgreSQL: a NOTIFY to
        other nodes); SQLite's other processes hear it after the commit (``ChangeBus``)."""

    def _bus(self) -> ChangeBus:
        return DatagramBus(self.path.parent / RUN_DIR)

    def _connect(self, *, readonly: bool = False) -> Any:
        """A connection for the writer (``readonly=False``) or a reader."""
        return connect(self.path, readonly=readonly)

    def _prepare(self) -> None:
        # It holds all mail and the password verifiers: 0600 before SQLite first opens it
        # (SQLite would make it 0644 under the usual umask, and its -wal and -shm files
        # take the database's mode).
        private_dir(self.path.parent)
        create_private_file(self.path)
        conn = connect(self.path)
        try:
            (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if mode != "wal":
                raise RuntimeError(f"cannot put {self.path} in WAL mode (got {mode})")
            migrate(conn)
        finally:
            conn.close()

    async def close(self) -> None:
        if self._writer is not None:
            while self._running:  # the loop's batches first (``_queue`` holds none of them)
                self._idle = asyncio.Event()
                await self._idle.wait()
            self._queue.put(_STOP)
            await anyio.to_thread.run_sync(self._writer.join)
            self._writer = None
        if self._turn is not None:
            os.close(self._turn)
            self._turn = None
        if self.bus is not None:
            self.changes.publish = None
            self.bus.close()
            self.bus = None
        if self._lookup_conn is not None:
            self._lookup_conn.close()
            self._lookup_conn = None
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
            self._idle_readers.clear()

    # -- writing ------------------------------------------------------------------------

    async def write(self, func: Callable[[Txn], T], *, inline: bool = False) -> T:
        """Run ``func`` in a write batch; returns once its batch is durable. ``inline``: it
        runs in microseconds (a few indexed statements, no large values), so on SQLite it may
        run on the event loop (see the module docstring)."""
        if self._writer is None:
            raise RuntimeError("the store is not open")
        assert self._loop is not None
        job = _Job(func, self._loop.create_future(), inline=inline)
        if self._scheduled:
            self._pending.append(job)
            if not self._running:
                self._running = True
                # Called soon, not now: the writes that come in this pass of the loop (other
                # sessions' DATA) join the batch.
                self._loop.call_soon(self._start)
        else:
            self._queue.put(job)
        # A caller cancelled while waiting acknowledges nothing; the write still happens.
        await job.done
        if job.error is not None:
            raise job.error
        return job.result

    def _write_loop(self, ready: threading.Event) -> None:
        try:
            conn = self._connect()
        finally:
            ready.set()  # open() goes on, and the first write finds no writer if this failed
        self._conn = conn
        self._scheduled = isinstance(conn, sqlite3.Connection)
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                if not isinstance(first, _Job):  # a step of a batch formed on the loop
                    try:
                        first(conn)
                    except Exception:  # a bug: the thread goes on serving the others
                        log.exception("store: a write step failed")
                    continue
                batch = [first]
                self._gather(batch)
                self._run_batch(conn, batch)
        finally:
            conn.close()

    # -- batches formed on the event loop (SQLite) --------------------------------------

    def _start(self) -> None:
        """(loop) Writes are pending and no batch runs: take the turn, then run them. The
        turn is tried right here; when another process has it, the writer thread waits for
        it (``_wait_turn``), and what arrives meanwhile joins the batch."""
        turn = self._try_turn()
        if turn:
            self._run_pending(True)
        else:
            self._queue.put(self._wait_turn)

    def _wait_turn(self, conn: sqlite3.Connection) -> None:
        """(writer thread) Until the turn is ours, or ``TURN_WAIT`` is over."""
        held = self._acquire_turn()
        self._call_loop(self._run_pending, held)

    def _run_pending(self, turn: bool) -> None:
        """(loop) Run the pending writes as one batch, this process holding the write turn
        (``turn``) or not (it waited ``TURN_WAIT`` in vain)."""
        batch = self._pending[:MAX_BATCH]
        del self._pending[:MAX_BATCH]
        conn = self._conn
        try:
            inline = turn and all(job.inline for job in batch) and self._begin_now(conn)
        except Exception as exc:  # the PRAGMA failed: the connection is unusable
            self._fail(conn, batch, exc)
            self._release_turn()
            self._batch_done(batch, set(), {}, set())
            return
        if inline:
            changes = self._run_jobs(conn, batch)
            if changes is None:  # the transaction failed before its commit
                self._release_turn()
                self._batch_done(batch, set(), {}, set())
                return
            self._queue.put(lambda conn: self._commit_now(conn, batch, changes))
            return
        self._queue.put(lambda conn: self._batch_in_thread(conn, batch, turn))

    def _begin_now(self, conn: sqlite3.Connection) -> bool:
        """(loop) BEGIN IMMEDIATE if it needs no wait: with the turn held, only a writer that
        takes no turn (another program on the database) can have the lock, and the loop
        must not sleep in SQLite's busy handler; False leaves the batch to the thread."""
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return False
        finally:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        return True

    def _run_jobs(
        self, conn: sqlite3.Connection, batch: list[_Job]
    ) -> tuple[set[int], dict[int, set[int]], set[int]] | None:
        """(loop) Each write of ``batch`` in its savepoint, inside the transaction begun; the
        change set, or None when the transaction failed (then rolled back, every write
        given the error)."""
        touched: set[int] = set()
        listings: set[int] = set()
        try:
            now = self.clock()
            for job in batch:
                self._run_job(conn, job, now, touched, listings)
            owners = mailbox_owners(conn, touched)
        except Exception as exc:
            self._fail(conn, batch, exc)
            return None
        return touched, owners, listings

    def _run_job(
        self, conn: sqlite3.Connection, job: _Job, now: float, touched: set[int], listings: set[int]
    ) -> None:
        txn = Txn(conn, now, sequences=self.sequences)
        conn.execute("SAVEPOINT job")
        try:
            job.result = job.func(txn)
        except Exception as exc:
            conn.execute("ROLLBACK TO job")
            job.error = exc
        else:
            touched |= txn.touched
            listings |= txn.listings
        conn.execute("RELEASE job")

    def _fail(self, conn: Any, batch: list[_Job], exc: Exception) -> None:
        log.error("store commit failed, %d writes refused: %s", len(batch), exc)
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        for job in batch:
            job.result, job.error = None, exc

    def _commit_now(
        self,
        conn: sqlite3.Connection,
        batch: list[_Job],
        changes: tuple[set[int], dict[int, set[int]], set[int]],
    ) -> None:
        """(writer thread) COMMIT the batch the loop ran, give the turn back, wake the loop."""
        touched, owners, listings = changes
        try:
            conn.execute("COMMIT")
        except Exception as exc:
            self._fail(conn, batch, exc)
            touched, owners, listings = set(), {}, set()
        finally:
            self._release_turn()
        if (touched or listings) and self.bus is not None:
            self.bus.publish(ChangeSet(touched, owners, listings))
        self._call_loop(self._batch_done, batch, touched, owners, listings)

    def _batch_in_thread(self, conn: sqlite3.Connection, batch: list[_Job], turn: bool) -> None:
        """(writer thread) A batch the loop does not run: all of it here, as ``_commit``."""
        try:
            touched, owners, listings = self._commit(conn, batch)
        finally:
            if turn:
                self._release_turn()
        self._call_loop(self._batch_done, batch, touched, owners, listings)

    def _batch_done(
        self,
        batch: list[_Job],
        touched: set[int],
        owners: dict[int, set[int]],
        listings: set[int],
    ) -> None:
        """(loop) Wake the batch's callers, and start the next batch if writes are waiting."""
        self.batches += 1
        self.writes += len(batch)
        self._finish(batch, touched, owners, listings)
        if self._pending:
            self._start()
        else:
            self._running = False
            if self._idle is not None:
                self._idle.set()

    def _call_loop(self, func: Callable[..., object], *args: Any) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
            self._loop.call_soon_threadsafe(func, *args)

    def _gather(self, batch: list[_Job]) -> None:
        """Add the writes waiting in the queue to ``batch``, up to ``MAX_BATCH``."""
        with contextlib.suppress(queue.Empty):
            while len(batch) < MAX_BATCH:
                job = self._queue.get_nowait()
                if job is _STOP:
                    self._queue.put(_STOP)
                    return
                batch.append(job)

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        """Run and commit ``batch``, then wake its callers. A write that failed for a reason
        that goes away by itself (``_transient``: PostgreSQL chose it as a deadlock's victim)
        runs again in a transaction of its own, after this one released its locks."""
        for attempt in range(MAX_ATTEMPTS):
            touched, owners, listings = self._transaction(conn, batch)
            again = self._again(batch, attempt + 1)
            finished = [job for job in batch if job not in again]
            self.batches += 1
            self.writes += len(finished)
            assert self._loop is not None
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
                self._loop.call_soon_threadsafe(self._finish, finished, touched, owners, listings)
            if not again:
                return
            batch = again

    def _again(self, batch: list[_Job], runs: int) -> list[_Job]:
        """Of ``batch`` (run ``runs`` times), the writes to run again (``_transient``), reset."""
        again = [j for j in batch if runs < MAX_ATTEMPTS and j.error and self._transient(j.error)]
        if again:
            log.info("store: %d writes run again after %s", len(again), again[0].error)
        for job in again:
            job.result, job.error = None, None
        return again

    def _transient(self, error: BaseException) -> bool:
        """Whether a write that failed so succeeds if run again (SQLite: never)."""
        return False

    def _turn_fd(self) -> int:
        if self._turn is None:
            turn_path = self.path.with_name(self.path.name + "-turn")
            create_private_file(turn_path)
            self._turn = os.open(turn_path, os.O_RDWR | os.O_CLOEXEC)
        return self._turn

    def _try_turn(self) -> bool:
        """The write turn (``_write_turn``) if no other process has it; never waits."""
        try:
            fcntl.flock(self._turn_fd(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _acquire_turn(self) -> bool:
        """(writer thread) The write turn, tried every ``TURN_POLL`` seconds; False (with a
        warning) after ``TURN_WAIT`` seconds without it."""
        deadline = time.monotonic() + TURN_WAIT
        while not self._try_turn():
            if time.monotonic() >= deadline:
                log.warning("store: no write turn after %.0f s; writing without it", TURN_WAIT)
                return False
            time.sleep(TURN_POLL)  # ok: the other process's batch is committing
        return True

    def _release_turn(self) -> None:
        if self._turn is not None:
            fcntl.flock(self._turn, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _write_turn(self, conn: Any) -> Iterator[bool]:
        """This process's turn to write, among the processes writing the database.

        SQLite lets one writer at a time into a database (``BEGIN IMMEDIATE``); one that
        finds the write lock taken waits in SQLite's busy handler, which sleeps 1, 2, 5, 10,
        ... up to 100 ms between tries. With two worker processes delivering, a writer
        would sleep well past the other's commit, and the tail latency of intake with it. So
        the writers take turns on an ``flock`` beside the database first, tried every
        ``TURN_POLL`` seconds: the next writer starts within that of the last commit. After
        ``TURN_WAIT`` seconds without the turn (a writer that hangs) the batch goes on without
        it and SQLite's own locking, which stays the guard of correctness, decides.
        PostgreSQL locks rows, not the database: its writers take no turn.

        Yields whether the turn had to be waited for: the writes that reached the queue
        meanwhile then join the batch (``_transaction``), so that one commit, one fsync,
        makes them durable too. With two workers, each writer's commits alternate with the
        other's, and the longer the other's commit, the more each batch carries."""
        if not isinstance(conn, sqlite3.Connection):
            yield False
            return
        if self._try_turn():
            waited = False
        elif not self._acquire_turn():
            yield True
            return
        else:
            waited = True
        try:
            yield waited
        finally:
            self._release_turn()

    def _transaction(
        self, conn: sqlite3.Connection, batch: list[_Job]
    ) -> tuple[set[int], dict[int, set[int]], set[int]]:
        with self._write_turn(conn) as waited:
            if waited:
                self._gather(batch)
            return self._commit(conn, batch)

    def _commit(
        self, conn: sqlite3.Connection, batch: list[_Job]
    ) -> tuple[set[int], dict[int, set[int]], set[int]]:
        touched: set[int] = set()
        listings: set[int] = set()
        owners: dict[int, set[int]] = {}
        try:
            conn.execute("BEGIN IMMEDIATE")
            now = self.clock()
            for job in batch:
                self._run_job(conn, job, now, touched, listings)
            # Whose mailboxes these are, for account-wide watches (NOTIFY). A mailbox this
            # batch deleted is not found, but its account is in ``listings``.
            owners = mailbox_owners(conn, touched)
            if touched or listings:
                self._in_transaction(conn, ChangeSet(touched, owners, listings))
            conn.execute("COMMIT")
            if (touched or listings) and self.bus is not None:
                self.bus.publish(ChangeSet(touched, owners, listings))
        except Exception as exc:
            self._fail(conn, batch, exc)
            touched, listings, owners = set(), set(), {}
        return touched, owners, listings

    def _finish(
        self,
        batch: list[_Job],
        touched: set[int],
        owners: dict[int, set[int]] | None = None,
        listings: set[int] | None = None,
    ) -> None:
        if touched or listings:
            self.changes.notify(touched, owners, listings or set())
        for job in batch:
            if not job.done.done():  # not cancelled by its caller
                job.done.set_result(None)

    # -- reading ------------------------------------------------------------------------

    async def read(self, func: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``func`` in a reader thread, on one snapshot of the database."""
        return await anyio.to_thread.run_sync(self._read, func, limiter=self._limiter)

    async def lookup(self, func: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``func`` right here, on the event loop thread, for an indexed point lookup.

        Such a query takes microseconds, less than the hop to a worker thread and back; WAL
        readers do not wait for the writer. So does a small body read by incremental blob I/O
        (``blobs.read_small_blobs``, which learns the size before reading). Anything that scans
        (a mailbox listing) or reads much (large bodies) goes through ``read`` instead.
        ``func`` runs one statement (or one blob read), which in autocommit mode reads one
        consistent snapshot by itself (no BEGIN/COMMIT around it: they cost more than the
        lookup). In the rare moments a WAL reader must wait after all (another
        process recovering the database after a crash), the connection here does not wait:
        the lookup goes to a reader thread, which may, so that the loop never blocks on a lock.
        """
        if self._lookup_conn is None:
            self._lookup_conn = connect(self.path, readonly=True)
            self._lookup_conn.execute("PRAGMA busy_timeout = 0")
        try:
            return func(self._lookup_conn)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise
        return await self.read(func)

    def _read(self, func: Callable[[sqlite3.Connection], T]) -> T:
        # A pool rather than one connection per thread: anyio retires idle worker threads,
        # and the limiter bounds how many connections the pool can ever hold.
        with self._readers_lock:
            conn = self._idle_readers.pop() if self._idle_readers else None
        if conn is None:
            conn = self._connect(readonly=True)
            with self._readers_lock:
                self._readers.append(conn)
        try:
            with self.snapshot(conn):
                return func(conn)
        finally:
            with self._readers_lock:
                self._idle_readers.append(conn)

    @staticmethod
    @contextlib.contextmanager
    def snapshot(conn: sqlite3.Connection) -> Iterator[None]:
        conn.execute("BEGIN")
        try:
            yield
        finally:
            conn.execute("COMMIT")
