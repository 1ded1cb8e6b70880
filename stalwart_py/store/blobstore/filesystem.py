"""Bodies as files: ``<directory>/ab/abcdef...`` (the hex SHA-256 under its first two digits).

A body is written to a temporary file in its directory, fsync'd, renamed over its name, and
the directory fsync'd: after ``put`` returns, a crash leaves the whole file under its name
(POSIX rename is atomic; the directory's fsync makes the new entry durable). A body that
exists already only has its modification time refreshed: its bytes are the same by their
name, and the time is what the sweep's grace period reads. Temporary files a crash left
behind are swept with the orphans. Files are 0600 in 0700 directories, as all mail is.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio

from stalwart_py.files import private_dir, write_private
from stalwart_py.store.blobstore import (
    LIST_BATCH,
    BlobBackend,
    BlobBackendError,
    BlobMissing,
    StoredObject,
    digest_of,
    object_name,
)

TEMP_PREFIX = ".tmp-"  # write_private's temporary files


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FilesystemBlobs(BlobBackend):
    name = "filesystem"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path_of(self, digest: bytes) -> Path:
        return self.directory / object_name(digest)

    async def open(self) -> None:
        def check() -> None:
            private_dir(self.directory)
            if not os.access(self.directory, os.W_OK | os.X_OK):
                raise BlobBackendError(f"blob directory {self.directory} is not writable")

        try:
            await anyio.to_thread.run_sync(check)
        except OSError as exc:
            raise BlobBackendError(f"blob directory {self.directory}: {exc}") from exc

    async def close(self) -> None:
        """Nothing held open between calls."""

    async def put(self, digest: bytes, data: bytes) -> None:
        path = self.path_of(digest)

        def write() -> None:
            try:
                os.utime(path)  # there already: same bytes by its name, a fresh time
                return
            except FileNotFoundError:
                pass
            made = not path.parent.is_dir()
            if made:
                private_dir(path.parent)
            write_private(path, data)
            _fsync_dir(path.parent)
            if made:  # the new fan-out directory's own entry
                _fsync_dir(path.parent.parent)

        try:
            await anyio.to_thread.run_sync(write)
        except OSError as exc:
            raise BlobBackendError(f"writing body {path}: {exc}") from exc

    async def get(self, digest: bytes) -> bytes:
        return await self.get_range(digest, 0, -1)

    async def get_range(self, digest: bytes, offset: int, length: int) -> bytes:
        path = self.path_of(digest)

        def read() -> bytes:
            with open(path, "rb") as handle:
                handle.seek(offset)
                return handle.read(length)

        try:
            return await anyio.to_thread.run_sync(read)
        except FileNotFoundError:
            raise BlobMissing(digest.hex()) from None
        except OSError as exc:
            raise BlobBackendError(f"reading body {path}: {exc}") from exc

    async def delete(self, digest: bytes) -> None:
        path = self.path_of(digest)

        def remove() -> None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                _fsync_dir(path.parent)

        try:
            await anyio.to_thread.run_sync(remove)
        except OSError as exc:
            raise BlobBackendError(f"deleting body {path}: {exc}") from exc

    async def list(self) -> AsyncIterator[list[StoredObject]]:
        try:
            subdirs = await anyio.to_thread.run_sync(self._subdirectories)
        except OSError as exc:
            raise BlobBackendError(f"listing {self.directory}: {exc}") from exc
        for subdir in subdirs:
            try:
                found = await anyio.to_thread.run_sync(self._scan, subdir)
            except OSError as exc:
                raise BlobBackendError(f"listing {subdir}: {exc}") from exc
            for start in range(0, len(found), LIST_BATCH):
                yield found[start : start + LIST_BATCH]

    def _subdirectories(self) -> list[Path]:
        with os.scandir(self.directory) as entries:
            return sorted(Path(e.path) for e in entries if len(e.name) == 2 and e.is_dir())

    @staticmethod
    def _scan(subdir: Path) -> list[StoredObject]:
        found = []
        with os.scandir(subdir) as entries:
            for entry in entries:
                digest = digest_of(entry.name)
                if digest is None:  # a temporary file, or something not ours
                    continue
                with contextlib.suppress(FileNotFoundError):  # deleted meanwhile
                    found.append(StoredObject(digest, entry.stat().st_mtime))
        return found

    async def remove_leftovers(self, older_than: float) -> int:
        """Delete temporary files a crash left behind, older than ``older_than`` (Unix time);
        returns how many."""

        def remove() -> int:
            removed = 0
            for subdir in self._subdirectories():
                with os.scandir(subdir) as entries:
                    for entry in entries:
                        if not entry.name.startswith(TEMP_PREFIX):
                            continue
                        with contextlib.suppress(FileNotFoundError):
                            if entry.stat().st_mtime < older_than:
                                os.unlink(entry.path)
                                removed += 1
            return removed

        try:
            return await anyio.to_thread.run_sync(remove)
        except OSError as exc:
            raise BlobBackendError(f"cleaning {self.directory}: {exc}") from exc
