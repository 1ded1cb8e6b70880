"""What a metadata store does with an external blob backend, whatever its database: stage a
body before the transaction that references it, retry that transaction when the sweep got in
the way (``BlobRetry``, see the package docstring), and read bodies through one small cache.

The store supplies three things in its own SQL: whether a row with a digest has references
already (to skip the upload), the transaction itself (raising ``BlobRetry`` from its insert
of a row), and the clearing of a done claim. Everything else is here, shared by SQLite and
PostgreSQL.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TypeVar

import anyio

from stalwart_py.store.blobstore import MAX_STAGE_AGE, BlobBackend, BlobMissing, BlobRetry

log = logging.getLogger("stalwart_py.store.blobs")

T = TypeVar("T")

RETRIES = 5  # a transaction retried this often after BlobRetry, then the write fails
CLAIM_WAIT = 0.2  # seconds between looks while the sweep deletes a body we want
CLAIM_PATIENCE = 30.0  # waiting longer than this for a sweep to finish fails the write
FETCH_CONCURRENCY = 8  # bodies fetched at once for one read_blobs call
CACHE_ITEM_LIMIT = 1024 * 1024  # bigger bodies are not cached (one would evict many)


class Staging:
    """A body staged in the backend: when (``time.monotonic``), for the age check in the
    transaction. Mutable: a retry stages again and the transaction reads the new time."""

    __slots__ = ("at",)

    def __init__(self) -> None:
        self.at = time.monotonic()

    def renew(self) -> None:
        self.at = time.monotonic()

    @property
    def age(self) -> float:
        return time.monotonic() - self.at


class BodyCache:
    """Bodies by digest, least recently used out first, bounded in bytes. Bodies never
    change under a digest, so an entry is never stale."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.size = 0
        self._entries: OrderedDict[bytes, bytes] = OrderedDict()

    def get(self, digest: bytes) -> bytes | None:
        data = self._entries.get(digest)
        if data is not None:
            self._entries.move_to_end(digest)
        return data

    def put(self, digest: bytes, data: bytes) -> None:
        if len(data) > min(CACHE_ITEM_LIMIT, self.capacity) or digest in self._entries:
            return
        self._entries[digest] = data
        self.size += len(data)
        while self.size > self.capacity:
            _, evicted = self._entries.popitem(last=False)
            self.size -= len(evicted)


class ExternalBodies:
    """Staging, retrying and reading for one store and its backend."""

    def __init__(self, backend: BlobBackend, cache_size: int) -> None:
        self.backend = backend
        self.cache = BodyCache(cache_size)
        self.uploads = 0  # bodies written to the backend, for tests and metrics
        self.retries = 0

    async def stage(
        self, digest: bytes, data: bytes, referenced: Callable[[bytes], Awaitable[bool]]
    ) -> Staging:
        """Upload the body unless a row with references has it already."""
        staging = Staging()  # before the look: the age counts from the earliest moment
        if not await referenced(digest):
            await self.backend.put(digest, data)
            self.uploads += 1
        return staging

    async def write(
        self,
        bodies: Sequence[tuple[bytes, bytes, Staging]],
        transaction: Callable[[], Awaitable[T]],
        clear_claim: Callable[[bytes], Awaitable[bool]],
    ) -> T:
        """Run ``transaction`` (which references ``bodies``: digest, data, staging); on
        ``BlobRetry`` wait for the sweep's claim to be done and cleared (``clear_claim``:
        True once no claim is left, False while the sweep is still deleting), stage the body
        again and run it again."""
        started = time.monotonic()
        for _ in range(RETRIES):
            try:
                return await transaction()
            except BlobRetry as exc:
                self.retries += 1
                log.info("%s", exc)
                while not await clear_claim(exc.digest):
                    if time.monotonic() - started > CLAIM_PATIENCE:
                        raise
                    await anyio.sleep(CLAIM_WAIT)  # ok: the sweep in another process sets no event
                for digest, data, staging in bodies:
                    if digest == exc.digest or staging.age > MAX_STAGE_AGE / 2:
                        staging.renew()
                        await self.backend.put(digest, data)
                        self.uploads += 1
        return await transaction()

    async def fetch(self, digests: Iterable[bytes]) -> dict[bytes, bytes]:
        """The bodies of ``digests`` (missing ones left out), from the cache or the backend,
        a few at a time; what is downloaded is cached."""

        async def download(digest: bytes) -> bytes:
            data = await self.backend.get(digest)
            self.cache.put(digest, data)
            return data

        return await self._gather(dict.fromkeys(digests, -1), download)

    async def fetch_prefixes(self, lengths: dict[bytes, int]) -> dict[bytes, bytes]:
        """The first ``length`` bytes of each body (``{digest: length}``): a ranged request
        each for the bodies not cached, so that the header blocks of a whole mailbox (IMAP
        ``BODY.PEEK[HEADER.FIELDS (...)]`` on 1:*) do not download every body."""
        return await self._gather(
            lengths, lambda digest: self.backend.get_range(digest, 0, lengths[digest])
        )

    async def _gather(
        self, lengths: dict[bytes, int], download: Callable[[bytes], Awaitable[bytes]]
    ) -> dict[bytes, bytes]:
        """From the cache (cut to the length, -1: whole) or by ``download``, at most
        ``FETCH_CONCURRENCY`` at a time; bodies missing from the backend are left out."""
        out: dict[bytes, bytes] = {}
        wanted = []
        for digest, length in lengths.items():
            data = self.cache.get(digest)
            if data is None:
                wanted.append(digest)
            else:
                out[digest] = data if length < 0 else data[:length]
        if not wanted:
            return out
        limiter = anyio.Semaphore(FETCH_CONCURRENCY)

        async def one(digest: bytes) -> None:
            async with limiter:
                try:
                    out[digest] = await download(digest)
                except BlobMissing:
                    log.error(
                        "body %s missing from the %s backend", digest.hex(), self.backend.name
                    )

        async with anyio.create_task_group() as tg:
            for digest in wanted:
                tg.start_soon(one, digest)
        return out

    async def fetch_range(self, digest: bytes, offset: int, length: int) -> bytes:
        data = self.cache.get(digest)
        if data is not None:
            return data[offset : offset + length]
        return await self.backend.get_range(digest, offset, length)
