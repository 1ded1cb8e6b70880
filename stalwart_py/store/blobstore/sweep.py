"""The orphan sweep: delete bodies in the blob backend that no row refers to.

One pass (``sweep_once``):

1. Finish what a sweep that died left: its claims not done and older than ``STALE_CLAIM``
   are deleted again (a delete of a missing object is fine) and marked done. A younger claim
   may belong to a sweep still running elsewhere (on another node while the lease changes
   hands): finishing it early would let a writer upload the body again before that sweep's
   delete, so it is left alone; a running sweep stops deleting a batch before its claims
   are half that old.
2. List the backend; every body last written before ``now - grace`` is a candidate.
3. Claim the candidates that have no ``blobs`` row (one transaction per listing batch), delete
   each claimed body, then mark the claims done (tombstones).
4. Forget tombstones older than ``TOMBSTONE_KEEP``; remove temporary files of interrupted
   writes older than the grace period and at least ``LEFTOVER_AGE``.

Why this never deletes a body a committed transaction refers to is argued in the package
docstring (``blobstore/__init__.py``). ``run_sweeps`` repeats the pass every interval; the
server runs it under the singleton lease ``blob-sweep``, so one process sweeps at a time.

Two sweeps at once (nodes sharing one PostgreSQL database, each with its own lease until the
lease is one for the whole cluster) are safe, only wasteful: a digest is claimed by one of
them (the claim is keyed by it), the other passes it over, and neither takes over a claim
younger than ``STALE_CLAIM``, which a running sweep never holds unfinished.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from stalwart_py.store.blobstore import TOMBSTONE_KEEP, BlobBackend
from stalwart_py.store.model import StoreError

if TYPE_CHECKING:
    from stalwart_py.store.base import Store

log = logging.getLogger("stalwart_py.store.sweep")

LEASE = "blob-sweep"  # the singleton lease's name
STALE_CLAIM = 3600.0  # an unfinished claim this old is from a sweep that died
LEFTOVER_AGE = 3600.0  # a temporary file this old is from a write that died


@dataclass
class SweepResult:
    listed: int = 0  # bodies the backend holds
    deleted: int = 0  # orphans deleted
    leftovers: int = 0  # temporary files of interrupted writes removed


async def sweep_once(
    store: Store,
    backend: BlobBackend,
    *,
    grace: float,
    clock: Callable[[], float] = time.time,
) -> SweepResult:
    """One pass of the sweep over ``backend`` for ``store``."""
    result = SweepResult()
    unfinished = await store.unfinished_blob_claims(clock() - STALE_CLAIM)
    if unfinished:
        log.info("finishing %d deletions an interrupted sweep claimed", len(unfinished))
        for digest in unfinished:
            await backend.delete(digest)
        await store.finish_blob_claims(unfinished)
        result.deleted += len(unfinished)
    cutoff = clock() - grace
    async for batch in backend.list():
        result.listed += len(batch)
        candidates = [item.digest for item in batch if item.modified < cutoff]
        if not candidates:
            continue
        claimed_at = time.monotonic()
        claimed = await store.claim_orphan_blobs(candidates)
        for number, digest in enumerate(claimed):
            if time.monotonic() - claimed_at > STALE_CLAIM / 2:
                # Too slow a backend: leave the rest claimed for a later sweep to finish.
                log.warning("blob sweep stopped: %d claimed bodies left", len(claimed) - number)
                await store.finish_blob_claims(claimed[:number])
                result.deleted += number
                return result
            await backend.delete(digest)
        if claimed:
            await store.finish_blob_claims(claimed)
            result.deleted += len(claimed)
    await store.forget_blob_tombstones(clock() - TOMBSTONE_KEEP)
    # Never a temporary file younger than an hour, whatever the grace period: it may be a
    # body being written right now (its rename would fail, and with it the delivery).
    result.leftovers = await backend.remove_leftovers(min(cutoff, clock() - LEFTOVER_AGE))
    return result


async def run_sweeps(store: Store, backend: BlobBackend, *, interval: float, grace: float) -> None:
    """``sweep_once`` every ``interval`` until cancelled; a failed pass is logged and the
    next one tries again."""
    while True:
        started = time.monotonic()
        try:
            result = await sweep_once(store, backend, grace=grace)
        except StoreError as exc:  # BlobBackendError too
            log.warning("blob sweep failed, trying again in %.0f s: %s", interval, exc)
        else:
            log.info(
                "blob sweep: %d bodies, %d orphans deleted, %d leftovers removed in %.1f s",
                result.listed,
                result.deleted,
                result.leftovers,
                time.monotonic() - started,
            )
        await anyio.sleep(interval)
