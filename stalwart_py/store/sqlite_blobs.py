"""SQLite backend: reading bodies, staging them in an external backend, the sweep's claims.

Every body read goes through here: a row's ``data`` when the body is in the database, the
blob backend (through ``ExternalBodies`` and its cache) when ``external`` is 1. Writers call
``_prepare_body`` before their transaction and run it with ``_write_with_bodies``; the
orphan sweep (``blobstore/sweep.py``) claims and releases digests with the last four methods.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import anyio

from stalwart_py.store.blobs import (
    INLINE_LIMIT,
    PreparedBlob,
    lock_digest,
    prepare_blob,
    prepare_blobs,
)
from stalwart_py.store.blobstore import BlobBackend, BlobMissing
from stalwart_py.store.blobstore.bodies import ExternalBodies
from stalwart_py.store.blobstore.filesystem import FilesystemBlobs
from stalwart_py.store.engine import Engine, Txn
from stalwart_py.store.model import NotFound, StoreError

T = TypeVar("T")


class BlobsMixin:
    _engine: Engine
    _bodies: ExternalBodies | None

    @property
    def blob_backend(self) -> BlobBackend | None:
        return None if self._bodies is None else self._bodies.backend

    # -- writing --------------------------------------------------------------------------

    async def _prepare_body(self, data: bytes) -> PreparedBlob:
        """Hash and parse ``data``; with an external backend, also upload it (unless a row
        with references has it), before the transaction that will reference it."""
        blob = await prepare_blob(data)
        return await self._stage(blob)

    async def _prepare_bodies(self, datas: Sequence[bytes]) -> list[PreparedBlob]:
        return [await self._stage(blob) for blob in await prepare_blobs(datas)]

    async def _stage(self, blob: PreparedBlob) -> PreparedBlob:
        if self._bodies is None:
            return blob
        staging = await self._bodies.stage(blob.digest, blob.data, self._has_row)
        return replace(blob, staging=staging)

    async def _has_row(self, digest: bytes) -> bool:
        row = await self._engine.lookup(
            # Only an external row: a row holding the bytes itself says nothing of the backend.
            lambda conn: conn.execute(
                "SELECT 1 FROM blobs WHERE hash = ? AND external = 1", (digest,)
            ).fetchone()
        )
        return row is not None

    async def _write_with_bodies(
        self, blobs: Sequence[PreparedBlob], op: Callable[[Txn], T], *, small: bool = False
    ) -> T:
        """``self._engine.write(op)``, staging a body again when the sweep got in the way.
        ``small``: ``op`` runs a few statements per body (a delivery, an APPEND), so with
        bodies that add up to at most ``INLINE_LIMIT`` it is an inline write (``Engine``)."""
        inline = small and sum(len(blob.data) for blob in blobs) <= INLINE_LIMIT
        if self._bodies is None:
            return await self._engine.write(op, inline=inline)
        staged = [(b.digest, b.data, b.staging) for b in blobs if b.staging is not None]
        return await self._bodies.write(
            staged, lambda: self._engine.write(op, inline=inline), self._clear_claim
        )

    async def _clear_claim(self, digest: bytes) -> bool:
        def op(txn: Txn) -> bool:
            row = txn.execute(
                "SELECT done FROM blob_deletions WHERE hash = ?", (digest,)
            ).fetchone()
            if row is None:
                return True
            if row[0] is None:  # the sweep is deleting the body right now
                return False
            txn.execute("DELETE FROM blob_deletions WHERE hash = ?", (digest,))
            return True

        return await self._engine.write(op)

    # -- reading --------------------------------------------------------------------------

    async def read_blobs(self, blob_ids: Sequence[int]) -> dict[int, bytes]:
        def op(conn: sqlite3.Connection) -> list[tuple[int, int, bytes, bytes]]:
            return conn.execute(
                "SELECT id, external, hash, data FROM blobs"
                " WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(list(blob_ids)),),
            ).fetchall()

        rows = await self._engine.read(op)
        out = {blob_id: data for blob_id, external, _, data in rows if not external}
        if len(out) < len(rows):
            bodies = await self._external().fetch(h for _, external, h, _ in rows if external)
            for blob_id, external, digest, _ in rows:
                if external and digest in bodies:
                    out[blob_id] = bodies[digest]
        return out

    @staticmethod
    def _blob_part(
        conn: sqlite3.Connection, blob_id: int, offset: int, length: int
    ) -> tuple[bool, bytes, bytes | None] | None:
        """Whether a body is external, its digest and, when it is not, ``length`` octets of it
        from ``offset``; None when there is no such body. SQLite reads the part by incremental
        blob I/O, only the pages it needs (PostgreSQL overrides this with ``substr``)."""
        row = conn.execute("SELECT external, hash FROM blobs WHERE id = ?", (blob_id,)).fetchone()
        if row is None:
            return None
        if row[0]:
            return True, row[1], None
        with conn.blobopen("blobs", "data", blob_id, readonly=True) as blob:
            blob.seek(min(offset, len(blob)))
            return False, row[1], blob.read(length)

    async def read_blob_range(self, blob_id: int, offset: int, length: int) -> bytes:
        def op(conn: sqlite3.Connection) -> tuple[bool, bytes, bytes | None]:
            found = self._blob_part(conn, blob_id, offset, length)
            if found is None:
                raise NotFound("no such message body")
            return found

        external, digest, data = await self._engine.read(op)
        if not external:
            assert data is not None
            return data
        try:
            return await self._external().fetch_range(digest, offset, length)
        except BlobMissing:
            raise NotFound("message body missing from the blob backend") from None

    async def read_blob_prefixes(self, lengths: dict[int, int]) -> dict[int, bytes]:
        def op(conn: sqlite3.Connection) -> tuple[dict[int, bytes], dict[int, bytes]]:
            out, external = {}, {}
            for blob_id, length in lengths.items():
                found = self._blob_part(conn, blob_id, 0, length)
                if found is None:
                    continue
                if found[0]:
                    external[blob_id] = found[1]
                else:
                    assert found[2] is not None
                    out[blob_id] = found[2]
            return out, external

        out, external = await self._engine.read(op)
        if external:
            prefixes = await self._external().fetch_prefixes(
                {digest: lengths[blob_id] for blob_id, digest in external.items()}
            )
            for blob_id, digest in external.items():
                if digest in prefixes:
                    out[blob_id] = prefixes[digest]
        return out

    def _external(self) -> ExternalBodies:
        if self._bodies is None:
            raise StoreError(
                "this database has message bodies in an external blob backend, but"
                ' [storage.blob] backend = "database": configure the backend they are in'
            )
        return self._bodies

    # -- the orphan sweep (blobstore/sweep.py) --------------------------------------------

    async def claim_orphan_blobs(self, digests: Sequence[bytes]) -> list[bytes]:
        """Claim for deletion each of ``digests`` that no ``blobs`` row has (nor a claim
        already); returns those claimed. Each look and claim runs under ``lock_digest``, so
        no row can be inserted between them (a digest someone is writing is passed over)."""

        # Most listed bodies are referenced: a read finds those first, and no write
        # transaction is spent on them (the write looks again, under the lock).
        def unreferenced(conn: sqlite3.Connection) -> list[bytes]:
            lookup = "SELECT 1 FROM blobs WHERE hash = ?"
            return [d for d in digests if conn.execute(lookup, (d,)).fetchone() is None]

        digests = await self._engine.read(unreferenced)
        if not digests:
            return []

        def op(txn: Txn) -> list[bytes]:
            claimed = []
            for digest in digests:
                if not lock_digest(txn, digest, wait=False):
                    continue
                if txn.execute("SELECT 1 FROM blobs WHERE hash = ?", (digest,)).fetchone():
                    continue
                inserted = txn.execute(
                    "INSERT INTO blob_deletions(hash, claimed) VALUES (?, ?)"
                    " ON CONFLICT(hash) DO NOTHING",
                    (digest, txn.now),
                ).rowcount
                if inserted:
                    claimed.append(digest)
            return claimed

        return await self._engine.write(op)

    async def finish_blob_claims(self, digests: Sequence[bytes]) -> None:
        """The claimed bodies are deleted: the claims become tombstones."""

        def op(txn: Txn) -> None:
            txn.conn.executemany(
                "UPDATE blob_deletions SET done = ? WHERE hash = ?",
                [(txn.now, digest) for digest in digests],
            )

        await self._engine.write(op)

    async def unfinished_blob_claims(self, claimed_before: float) -> list[bytes]:
        """Claims made before ``claimed_before`` (Unix time) and not done: their sweep died.
        The next sweep deletes those bodies again (deleting is idempotent) and finishes them."""
        return await self._engine.read(
            lambda conn: [
                row[0]
                for row in conn.execute(
                    "SELECT hash FROM blob_deletions WHERE done IS NULL AND claimed < ?",
                    (claimed_before,),
                )
            ]
        )

    async def forget_blob_tombstones(self, before: float) -> int:
        """Drop tombstones of deletions done before ``before`` (Unix time)."""
        return await self._engine.write(
            lambda txn: (
                txn.execute(
                    "DELETE FROM blob_deletions WHERE done IS NOT NULL AND done < ?", (before,)
                ).rowcount
            )
        )

    async def _backup_bodies(self, database: Path, directory: Path) -> list[Path]:
        """Copy the external bodies the backup's database (a SQLite file, whichever backend
        made it) refers to into ``directory``, laid out as the filesystem backend lays them
        out (so a backup restores as a data directory with ``backend = "filesystem"``, or is
        uploaded back to a bucket as it is)."""

        def referenced() -> list[bytes]:
            conn = sqlite3.connect(database)
            try:
                return [row[0] for row in conn.execute("SELECT hash FROM blobs WHERE external")]
            finally:
                conn.close()

        digests = await anyio.to_thread.run_sync(referenced)
        if not digests:
            return []
        bodies = self._external()
        copy = FilesystemBlobs(directory)
        await copy.open()
        written, missing = [], []
        for digest in digests:
            try:
                data = await bodies.backend.get(digest)
            except BlobMissing:
                missing.append(digest.hex())
                continue
            await copy.put(digest, data)
            written.append(copy.path_of(digest))
        if missing:
            raise StoreError(
                f"backup incomplete: {len(missing)} bodies missing from the {bodies.backend.name}"
                f" blob backend (the first: {missing[0]})"
            )
        return written
