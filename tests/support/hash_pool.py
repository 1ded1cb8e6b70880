"""Holding a server's hash pool (stalwart_py.hash_pool) busy, for tests of deferred logins."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.servers import WAIT, InProcessServer


@contextmanager
def hash_pool_held(server: InProcessServer) -> Iterator[None]:
    """Occupy every worker of the server's hash pool with a check that waits until the
    block ends, the way slow scrypt checks would; a login meanwhile waits its turn."""
    pool = server.context.directory.hashes
    release = threading.Event()
    running = threading.Semaphore(0)

    def occupy() -> None:
        running.release()
        release.wait(WAIT)

    for _ in range(pool.size):
        server.portal.start_task_soon(pool.run, occupy)
    try:
        for _ in range(pool.size):
            assert running.acquire(timeout=WAIT), "the hash pool did not start a worker"
        yield
    finally:
        release.set()
