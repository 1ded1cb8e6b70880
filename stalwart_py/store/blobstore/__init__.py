"""Where message bodies live: in the database (the default), in files, or in an S3 bucket.

A body is named by its SHA-256 digest, so it is immutable: the same name always holds the same
bytes, and a body written twice is written once. The metadata database (SQLite or PostgreSQL)
keeps a row per body (``blobs``: digest, size, parsed structure, reference count); with an
external backend the row's ``external`` is 1 and the bytes are in the backend under the digest.

The protocol between the metadata and the bytes (the same for every metadata backend):

1. **Body first.** A writer stages the body (``BlobBackend.put``, durable on return) BEFORE the
   transaction that references it commits, so a committed reference always names bytes that
   were there. A writer that finds a row with the digest already referenced skips the upload.
2. **Counts in the database.** The transaction adds its references to the row (or inserts
   it); a row whose count drops to zero is deleted at once, as with bodies in the database.
3. **Orphans swept.** A body with no row (its last reference went, or the transaction it was
   written for failed or never ran) is deleted by the sweep (``sweep.py``), in one process at
   a time (the singleton lease), and only once it is older than the grace period.

Why the sweep never deletes a body a committed transaction refers to (the race between
"write body, commit metadata" and "see no row, delete body"): the sweep first *claims* a
digest in the database (``blob_deletions``, inserted only while no ``blobs`` row has that
digest), then deletes the object, then marks the claim done, and keeps the done claim as a
tombstone for ``TOMBSTONE_KEEP``. A writer's transaction that inserts a row for an external
body fails with ``BlobRetry`` when a claim or tombstone for its digest exists, because then
the object may have been deleted after the writer's upload; the writer clears a done claim,
uploads again and retries (a claim still in progress: it waits for the sweep to finish). A
claim and a row insert for the same digest are serialized by the database (SQLite's one
writer; PostgreSQL: both take ``pg_advisory_xact_lock`` on the digest). So, for any
committed row: if the claim committed after the row, the claim saw the row and was not made;
if the claim committed before the row's transaction, that transaction saw the claim or its
tombstone and did not commit. A tombstone is forgotten only ``TOMBSTONE_KEEP`` after the
deletion, and a writer refuses to commit a body staged more than ``MAX_STAGE_AGE`` ago
(``MAX_STAGE_AGE`` < ``TOMBSTONE_KEEP``), so a writer that uploaded before a deletion never
commits after its tombstone is gone. An existing row with references (the path that skips the
upload) protects its object by the same rule: no claim is made while a row exists. The grace
period does not carry correctness; it only keeps the sweep away from bodies being written
right now, which would otherwise cost their writers a retry.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from stalwart_py.config.blob import BlobSettings
from stalwart_py.store.model import StoreError

# A writer refuses to commit a reference to a body it uploaded longer ago than this (it
# uploads again); far shorter than the tombstones are kept.
MAX_STAGE_AGE = 600.0
# How long the sweep keeps a done claim as a tombstone.
TOMBSTONE_KEEP = 86400.0


class BlobMissing(Exception):
    """The backend has no object of that digest."""


class BlobBackendError(StoreError):
    """The backend failed (unreachable, refused, timed out): the operation can be retried. A
    ``StoreError``, so every protocol answers it as it answers a database failure (SMTP 451,
    IMAP NO), never with a traceback."""


class BlobRetry(Exception):
    """Raised inside a write transaction: the body of ``digest`` was (or is being) deleted by
    the orphan sweep after it was staged, or was staged too long ago; stage it again and
    retry. ``in_progress``: the sweep has claimed it and not finished yet."""

    def __init__(self, digest: bytes, *, in_progress: bool = False) -> None:
        super().__init__(f"body {digest.hex()} must be staged again")
        self.digest = digest
        self.in_progress = in_progress


@dataclass(frozen=True, slots=True)
class StoredObject:
    """One body in a backend's listing: its digest and when it was last written (Unix time)."""

    digest: bytes
    modified: float


class BlobBackend(abc.ABC):
    """Bodies by SHA-256 digest outside the metadata database. Every method may raise
    ``BlobBackendError``; none of them touches the metadata."""

    name: str  # for logs and status: "filesystem", "s3"

    @abc.abstractmethod
    async def open(self) -> None:
        """Check the backend is reachable and usable (the directory, the bucket)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections."""

    @abc.abstractmethod
    async def put(self, digest: bytes, data: bytes) -> None:
        """Store ``data`` under ``digest``, durably when this returns. Writing a digest that
        exists writes it again (or refreshes its time), which the grace period relies on."""

    @abc.abstractmethod
    async def get(self, digest: bytes) -> bytes:
        """The whole body; ``BlobMissing`` when there is none."""

    @abc.abstractmethod
    async def get_range(self, digest: bytes, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset`` (fewer at the end); ``BlobMissing``."""

    @abc.abstractmethod
    async def delete(self, digest: bytes) -> None:
        """Remove the body; one that is not there is not an error."""

    @abc.abstractmethod
    def list(self) -> AsyncIterator[list[StoredObject]]:
        """Every body, in batches of at most ``LIST_BATCH``."""

    async def remove_leftovers(self, older_than: float) -> int:
        """Delete what interrupted writes left behind (temporary files) older than
        ``older_than`` (Unix time); returns how many. Nothing, where a write is atomic."""
        return 0


LIST_BATCH = 1000


def object_name(digest: bytes) -> str:
    """``ab/abcdef...``: the hex digest under a directory of its first two hex digits, so that
    no directory holds more than 1/256 of the bodies (and S3 spreads them over prefixes)."""
    hexdigest = digest.hex()
    return f"{hexdigest[:2]}/{hexdigest}"


def digest_of(name: str) -> bytes | None:
    """The digest an object name stands for; None for anything else found in the place."""
    _, _, hexdigest = name.rpartition("/")
    if len(hexdigest) != 64:
        return None
    try:
        return bytes.fromhex(hexdigest)
    except ValueError:
        return None


def create_blob_backend(settings: BlobSettings, data_dir: Path) -> BlobBackend | None:
    """The configured backend, not yet opened; None for bodies in the database. The S3
    client library is imported here, only when S3 is configured (start-up time)."""
    if settings.backend == "database":
        return None
    if settings.backend == "filesystem":
        from stalwart_py.store.blobstore.filesystem import FilesystemBlobs

        return FilesystemBlobs(settings.directory or data_dir / "blobs")
    from stalwart_py.store.blobstore.s3 import S3Blobs

    return S3Blobs.from_settings(settings)
