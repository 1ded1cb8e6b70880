"""The crash test's child: deliver messages through the pipeline until killed, writing the
key of every acknowledged message to stdout as soon as its delivery has returned success.

    python -m tests.support.crash_child DATA_DIR RUN [BLOB_DIR HANG_AFTER]

With ``CRASH_STORE_URL`` in the environment, the store is PostgreSQL's at that URL instead of
SQLite's in DATA_DIR. With BLOB_DIR, bodies go to the filesystem blob backend there; after
HANG_AFTER acknowledgements, every body written is reported (``staged <hex digest>``) and its
writer then hangs, between the body's write and its transaction, until the parent kills the
child.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import anyio

from stalwart_py.delivery import Delivery, Envelope, Origin, Recipient
from stalwart_py.directory import Directory
from stalwart_py.store import Store
from stalwart_py.store.blobstore.filesystem import FilesystemBlobs
from stalwart_py.store.sqlite import SqliteStore

WORKERS = 8
RECIPIENT = "crash@example.test"


def message_for(key: str) -> bytes:
    """A 10 KB message whose every byte follows from its key."""
    rng = random.Random(key)
    lines = [
        "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789 ", k=76)) for _ in range(128)
    ]
    head = (
        f"From: sender@remote.test\r\nTo: {RECIPIENT}\r\nSubject: crash {key}\r\n"
        f"Message-ID: <{key}@crash.test>\r\n\r\n"
    )
    return (head + "\r\n".join(lines) + "\r\n").encode()


class HangingBlobs(FilesystemBlobs):
    """Bodies in files; once ``hang`` is set, each write is reported and never returns."""

    hang = False

    async def put(self, digest: bytes, data: bytes) -> None:
        await super().put(digest, data)
        if self.hang:
            os.write(1, f"staged {digest.hex()}\n".encode())
            await anyio.sleep_forever()


def open_store(data_dir: Path, blobs: FilesystemBlobs | None = None) -> Store:
    """The crash test's store: SQLite in ``data_dir``, or PostgreSQL at ``CRASH_STORE_URL``."""
    url = os.environ.get("CRASH_STORE_URL")
    if url:
        from stalwart_py.store.postgresql import PostgresStore

        return PostgresStore(url, data_dir, blob_backend=blobs)
    return SqliteStore(data_dir, blob_backend=blobs)


async def main(data_dir: Path, run: str, blob_dir: str = "", hang_after: str = "0") -> None:
    blobs = HangingBlobs(Path(blob_dir)) if blob_dir else None
    store = open_store(data_dir, blobs)
    await store.open()
    acknowledged = 0
    directory = Directory(store)
    if not await store.is_local_domain("example.test"):
        await store.add_domain("example.test")
    if await store.get_account(RECIPIENT) is None:
        await directory.add_account(RECIPIENT, "crash-test-password")
    delivery = Delivery(store, directory, lambda: "mx.example.test")
    envelope = Envelope("sender@remote.test", (Recipient(RECIPIENT),))

    async def worker(number: int) -> None:
        nonlocal acknowledged
        sequence = 0
        while True:
            key = f"{run}-{number}-{sequence}"
            origin = Origin("ESMTP", key, helo="crash.test")
            [result] = await delivery.deliver(envelope, message_for(key), origin)
            if result.ok:
                os.write(1, f"{key}\n".encode())
                acknowledged += 1
                if blobs is not None and acknowledged >= int(hang_after):
                    blobs.hang = True
            sequence += 1

    async with anyio.create_task_group() as group:
        for number in range(WORKERS):
            group.start_soon(worker, number)


if __name__ == "__main__":
    anyio.run(main, Path(sys.argv[1]), *sys.argv[2:])
