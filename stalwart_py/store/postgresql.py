"""The PostgreSQL store: one database shared by any number of nodes.

The client is psycopg 3, synchronous, one connection per thread: the engine's model (one
writer thread committing batches, reader threads on snapshots; ``engine.py``) is the same as
for SQLite, so the SQL mixins are shared through ``pg_dialect.PgConnection`` rather than
written twice (an asyncio driver such as asyncpg would have needed every mixin rewritten for
``await`` and ``$n`` placeholders). psycopg's binary wheel brings its own libpq; the store's
statements go through it directly (``pg_wire.py``: a cursor's Python cost, three times the
statement's own, was most of a node's CPU), prepared on their second use; point lookups run
on the event loop (``pg_lookup.py``), not in a worker thread, and so do the batches of small
writes (``pg_batch.py``).

What SQLite got from being the only writer, PostgreSQL gets from row locks, whichever node
writes: a UID is taken by ``UPDATE mailboxes SET uidnext = uidnext + n ... RETURNING`` (the
row stays locked until the batch commits, so two nodes never hand out the same UID, and a
UID is never visible before the ones below it commit), quotas are checked and charged under
the account row's lock in the same way, and a write is acknowledged after its batch's COMMIT
returned, i.e. once the server flushed it to its WAL (``synchronous_commit`` as the server is
configured; ``on`` by default). Reads run in REPEATABLE READ READ ONLY transactions: every
statement of one read sees one snapshot, as SQLite's BEGIN/COMMIT around a read.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, TypeVar

import anyio
import psycopg

from stalwart_py.files import private_dir
from stalwart_py.store.blobstore import BlobBackend
from stalwart_py.store.blobstore.bodies import ExternalBodies
from stalwart_py.store.change_bus import ChangeBus, ChangeSet, DatagramBus
from stalwart_py.store.engine import RUN_DIR, Engine
from stalwart_py.store.model import StoreError
from stalwart_py.store.pg_batch import LoopBatches
from stalwart_py.store.pg_dialect import PgConnection
from stalwart_py.store.pg_lease import AdvisoryLease
from stalwart_py.store.pg_login_failures import LoginFailuresMixin
from stalwart_py.store.pg_lookup import AsyncLookups
from stalwart_py.store.pg_notify import NotifyListener, node_id, notify_in_transaction
from stalwart_py.store.pg_rates import RatesMixin
from stalwart_py.store.pg_schema import migrate
from stalwart_py.store.sql import SqlStore

log = logging.getLogger("stalwart_py.store")
T = TypeVar("T")
CONNECT_TIMEOUT = 10  # seconds to reach the server before a connection attempt fails


class PgEngine(Engine):
    """``Engine`` with PostgreSQL connections: the writer's batches and the readers'
    snapshots are the same; what differs is how a connection is made and a read begins."""

    def __init__(
        self,
        url: str,
        data_dir: Path,
        *,
        password: str | None = None,
        readers: int = 8,
        statement_timeout: float = 30.0,
    ) -> None:
        super().__init__(data_dir / "postgresql", readers=readers)
        self.url = url
        self._data_dir = data_dir
        self._password = password
        self._statement_timeout_ms = max(1, round(statement_timeout * 1000))
        self.sequences = True
        self.node = node_id(data_dir)
        self.listener: NotifyListener | None = None
        self._lookups = AsyncLookups(self._new_async_connection, readers)
        self._batches = LoopBatches(self)

    async def open(self) -> None:
        await super().open()
        listener = NotifyListener(self._new_connection, self.node)
        listener.start(self.changes.deliver)
        self.listener = listener

    async def close(self) -> None:
        if self.listener is not None:
            await anyio.to_thread.run_sync(self.listener.close)
            self.listener = None
        await self._lookups.close()
        await self._batches.close()
        await super().close()

    async def write(self, func: Any, *, inline: bool = False) -> Any:
        # Small writes in batches on the event loop (``pg_batch.py`` says why and how).
        if inline and self._writer is not None:
            return await self._batches.write(func)
        return await super().write(func, inline=inline)

    def _connect_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"autocommit": True, "application_name": "stalwart-py"}
        if self._password is not None:
            kwargs["password"] = self._password
        kwargs["connect_timeout"] = CONNECT_TIMEOUT
        return kwargs

    def _new_connection(self) -> psycopg.Connection:
        conn = psycopg.connect(self.url, **self._connect_kwargs())
        # SET rather than the URL's options=, which a user's URL may carry for other settings.
        conn.execute(f"SET statement_timeout = {self._statement_timeout_ms}")
        return conn

    async def _new_async_connection(self) -> psycopg.AsyncConnection:
        conn = await psycopg.AsyncConnection.connect(self.url, **self._connect_kwargs())
        await conn.execute(f"SET statement_timeout = {self._statement_timeout_ms}")
        return conn

    def _connect(self, *, readonly: bool = False) -> PgConnection:
        return PgConnection(self._new_connection)

    def _bus(self) -> ChangeBus:
        # The other processes of this node (and what they announce of the data directory);
        # other nodes hear the batches by NOTIFY (``_in_transaction``, ``pg_notify.py``).
        return DatagramBus(self._data_dir / RUN_DIR)

    def _transient(self, error: BaseException) -> bool:
        # Two nodes' batches locking rows in opposite orders: PostgreSQL aborts one statement
        # (40P01); with everything this batch locked released, the write goes through.
        return isinstance(
            error, (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
        )

    def _in_transaction(self, conn: PgConnection, changes: ChangeSet) -> None:
        notify_in_transaction(conn.execute, self.node, changes)

    def _prepare(self) -> None:
        try:
            conn = self._connect()
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {exc}".strip()) from None
        try:
            migrate(conn)
        finally:
            conn.close()

    async def lookup(self, func: Any) -> Any:
        # On the event loop, by asyncio connections (``pg_lookup.py`` says why and how).
        # ``func`` runs one statement, which sees one snapshot by itself: no BEGIN and COMMIT
        # around it (two more round trips, on the path of every delivery and login).
        return await self._lookups.run(func)

    def _read(self, func: Any) -> Any:
        with self._readers_lock:
            conn = self._idle_readers.pop() if self._idle_readers else None
        if conn is None:
            conn = self._connect(readonly=True)
            with self._readers_lock:
                self._readers.append(conn)
        try:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                return func(conn)
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")
        finally:
            with self._readers_lock:
                self._idle_readers.append(conn)


class PostgresStore(LoginFailuresMixin, RatesMixin, SqlStore):
    shared_queue = True  # every node runs its queue; leases keep them apart
    _SKIP_LOCKED = " FOR UPDATE SKIP LOCKED"

    def cluster_lease(self, name: str) -> AdvisoryLease:
        return AdvisoryLease(self._engine._new_connection, name)

    def __init__(
        self,
        url: str,
        data_dir: Path,
        *,
        password: str | None = None,
        readers: int = 8,
        statement_timeout: float = 30.0,
        blob_backend: BlobBackend | None = None,
        blob_cache_size: int = 32 * 1024 * 1024,
    ) -> None:
        """``blob_backend``: where new bodies go (None: into the database)."""
        self.url = url
        self._bodies = (
            None if blob_backend is None else ExternalBodies(blob_backend, blob_cache_size)
        )
        self._engine = PgEngine(
            url,
            data_dir,
            password=password,
            readers=readers,
            statement_timeout=statement_timeout,
        )
        self.changes = self._engine.changes

    async def open(self) -> None:
        if self._bodies is not None:
            await self._bodies.backend.open()
        await self._engine.open()

    async def close(self) -> None:
        await self._engine.close()
        if self._bodies is not None:
            await self._bodies.backend.close()

    async def disk_usage(self) -> int:
        return await self._engine.read(
            lambda conn: conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        )

    async def backup(self, directory: Path) -> list[Path]:
        """One consistent snapshot as a SQLite store (``pg_backup``): the backup format of
        both backends; ``stalwart-py migrate --to`` run on it restores it."""
        from stalwart_py.store.pg_backup import snapshot_to_sqlite
        from stalwart_py.store.sqlite import BACKUP_BLOBS, DATABASE_FILE

        target = directory / DATABASE_FILE

        def copy() -> None:
            private_dir(directory)
            conn = self._engine._new_connection()
            try:
                snapshot_to_sqlite(conn, target)
            except psycopg.Error as exc:
                raise StoreError(f"backup: {exc}".strip()) from None
            finally:
                conn.close()

        await anyio.to_thread.run_sync(copy)
        return [target, *await self._backup_bodies(target, directory / BACKUP_BLOBS)]

    async def integrity_check(self) -> str:
        """PostgreSQL checks its pages itself (checksums, amcheck); here, what only the store
        knows: every body's reference count equals the references to it."""

        def op(conn: PgConnection) -> list[tuple[int, int, int]]:
            return conn.execute(
                "SELECT b.id, b.refs, coalesce(m.n, 0) + coalesce(q.n, 0) + coalesce(r.n, 0)"
                " FROM blobs b"
                " LEFT JOIN (SELECT blob_id, count(*) AS n FROM messages GROUP BY blob_id) m"
                " ON m.blob_id = b.id"
                " LEFT JOIN (SELECT blob_id, count(*) AS n FROM queue_messages GROUP BY blob_id)"
                " q ON q.blob_id = b.id"
                " LEFT JOIN (SELECT blob_id, count(*) AS n FROM reports GROUP BY blob_id) r"
                " ON r.blob_id = b.id"
                " WHERE b.refs != coalesce(m.n, 0) + coalesce(q.n, 0) + coalesce(r.n, 0)"
            ).fetchall()

        wrong = await self._engine.read(op)
        if not wrong:
            return "ok"
        return "\n".join(
            f"body {blob_id}: {refs} references counted, {found} found"
            for blob_id, refs, found in wrong
        )

    # Bodies: SQLite reads a part of one by incremental blob I/O; PostgreSQL by substr, which
    # fetches (and decompresses) a stored value only as far as the part asked for. A body in
    # the external blob backend is fetched from there (``BlobsMixin``).

    @staticmethod
    def _blob_part(
        conn: PgConnection, blob_id: int, offset: int, length: int
    ) -> tuple[bool, bytes, bytes | None] | None:
        row = conn.execute(
            "SELECT external, hash, substr(data, ?, ?) FROM blobs WHERE id = ?",
            (offset + 1, length, blob_id),
        ).fetchone()
        if row is None:
            return None
        return bool(row[0]), row[1], None if row[0] else row[2]
