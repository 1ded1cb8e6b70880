"""The SQLite store, the embedded default: one database file under the data directory."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import anyio

from stalwart_py.files import create_private_file, private_dir
from stalwart_py.store.blobs import read_small_blobs
from stalwart_py.store.blobstore import BlobBackend
from stalwart_py.store.blobstore.bodies import ExternalBodies
from stalwart_py.store.engine import Engine
from stalwart_py.store.sql import SqlStore

DATABASE_FILE = "stalwart.sqlite3"
BACKUP_BLOBS = "blobs"  # where a backup keeps the bodies of an external backend


class SqliteStore(SqlStore):
    def __init__(
        self,
        data_dir: Path,
        *,
        readers: int = 8,
        blob_backend: BlobBackend | None = None,
        blob_cache_size: int = 32 * 1024 * 1024,
    ) -> None:
        """``blob_backend``: where new bodies go (None: into the database)."""
        self.path = data_dir / DATABASE_FILE
        self._engine = Engine(self.path, readers=readers)
        self.changes = self._engine.changes
        self._bodies = (
            None if blob_backend is None else ExternalBodies(blob_backend, blob_cache_size)
        )

    async def open(self) -> None:
        if self._bodies is not None:
            await self._bodies.backend.open()
        await self._engine.open()

    async def close(self) -> None:
        await self._engine.close()
        if self._bodies is not None:
            await self._bodies.backend.close()

    async def read_blobs(self, blob_ids: Sequence[int]) -> dict[int, bytes]:
        # A few small bodies (a POP3 RETR, an IMAP FETCH of one message) right here on the
        # event loop, by incremental blob I/O; the rest, and bodies in an external blob
        # backend, through BlobsMixin.
        ids = list(blob_ids)
        small = await self._engine.lookup(lambda conn: read_small_blobs(conn, ids))
        if small is not None:
            return small
        return await super().read_blobs(ids)

    async def disk_usage(self) -> int:
        total = 0
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(f"{self.path}{suffix}").st_size
        return total

    async def backup(self, directory: Path) -> list[Path]:
        target = directory / DATABASE_FILE

        def copy() -> None:
            # SQLite's online backup: a consistent snapshot while writers go on.
            # A backup holds the same mail and secrets as the data directory.
            private_dir(directory)
            create_private_file(target)
            source = sqlite3.connect(self.path)
            destination = sqlite3.connect(target)
            try:
                source.backup(destination, pages=4096)
            finally:
                destination.close()
                source.close()

        await anyio.to_thread.run_sync(copy)
        return [target, *await self._backup_bodies(target, directory / BACKUP_BLOBS)]

    async def integrity_check(self) -> str:
        rows = await self._engine.read(
            lambda conn: conn.execute("PRAGMA integrity_check").fetchall()
        )
        return "\n".join(row[0] for row in rows)
