"""Crash safety of bodies outside the database: a child delivering with the filesystem blob
backend is SIGKILLed while a body is written and its transaction not yet run (the child
hangs its writers right after the body's write and says so). After each kill the store is
reopened: every acknowledged delivery is present, byte-identical and once, and the bodies
written for the transactions the kill prevented are in the blob directory with no row. The
orphan sweep then deletes exactly those, and every acknowledged message still reads back."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from stalwart_py.store.blobstore.filesystem import FilesystemBlobs
from stalwart_py.store.blobstore.sweep import sweep_once
from stalwart_py.store.sqlite import SqliteStore
from tests.integration.test_crash import ROOT, check_after_restart
from tests.support.crash_child import message_for

RUNS = 4

pytestmark = pytest.mark.own_blob_backend


def test_kill_between_body_write_and_commit(tmp_path):
    rng = random.Random(20261205)
    data_dir, blob_dir = tmp_path / "data", tmp_path / "blobs"
    acknowledged: dict[str, bytes] = {}
    orphans: set[bytes] = set()
    for run in range(RUNS):
        hang_after = rng.randint(1, 30)
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.crash_child",
                str(data_dir),
                str(run),
                str(blob_dir),
                str(hang_after),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        while True:  # acknowledgements, until a writer reports its body written and hangs
            line = child.stdout.readline().decode().strip()
            if not line:
                raise AssertionError(f"the child died on its own: {child.stderr.read()!r}")
            if line.startswith("staged "):
                orphans.add(bytes.fromhex(line.split()[1]))
                break
            acknowledged[line] = message_for(line)
        child.kill()
        rest, _ = child.communicate(timeout=30)
        for line in rest.decode().splitlines():
            if line.startswith("staged "):
                orphans.add(bytes.fromhex(line.split()[1]))
            else:
                acknowledged[line] = message_for(line)
        check_after_restart(data_dir, acknowledged, run, blob_dir)
    assert orphans and len(acknowledged) >= RUNS
    on_disk, deleted = anyio.run(sweep, data_dir, blob_dir)
    assert orphans <= on_disk  # the bodies of the killed transactions were durable,
    assert orphans <= deleted  # the sweep deleted them (and any other body with no row),
    check_after_restart(data_dir, acknowledged, RUNS, blob_dir)  # and nothing referenced


async def sweep(data_dir: Path, blob_dir: Path) -> tuple[set[bytes], set[bytes]]:
    backend = FilesystemBlobs(blob_dir)
    store = SqliteStore(data_dir, blob_backend=backend)
    await store.open()
    try:
        before = {item.digest async for batch in backend.list() for item in batch}
        await sweep_once(store, backend, grace=0)
        after = {item.digest async for batch in backend.list() for item in batch}
    finally:
        await store.close()
    return before, before - after
