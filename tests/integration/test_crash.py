"""Durability: a child delivering in a loop is SIGKILLed at random moments, 20 times. After
each kill the store is reopened (the restart: SQLite recovers from its WAL) and checked before
the next child starts: the database passes its integrity check, and every delivery
acknowledged so far is present, byte-identical and exactly once."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path

import anyio
import pytest

from stalwart_py.store.blobstore.filesystem import FilesystemBlobs
from stalwart_py.store.sqlite import SqliteStore
from tests.support.crash_child import RECIPIENT, message_for

ROOT = Path(__file__).resolve().parents[2]
RUNS = 20


def test_acknowledged_deliveries_survive_sigkill(tmp_path):
    kill_and_check(tmp_path, os.environ)


@pytest.mark.heavy  # ~60 s: twenty children and four server restarts
def test_acknowledged_deliveries_survive_sigkill_on_postgresql(tmp_path, postgres):
    """The same on PostgreSQL, and after every fifth kill of the child the PostgreSQL server
    is killed too (``pg_ctl stop -m immediate``: no shutdown checkpoint) and started again,
    recovering from its WAL: what was acknowledged was committed, so it is there."""
    url = postgres.database()
    kill_and_check(
        tmp_path,
        {**os.environ, "CRASH_STORE_URL": url},
        after_kill=lambda run: postgres.crash_and_restart() if run % 5 == 4 else None,
    )


def kill_and_check(
    tmp_path: Path, env: Mapping[str, str], after_kill: Callable[[int], object] | None = None
) -> None:
    rng = random.Random(20261124)
    # key -> the message the child delivered (built once: it is re-checked after every kill).
    acknowledged: dict[str, bytes] = {}
    for run in range(RUNS):
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.support.crash_child", str(tmp_path), str(run)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        keys: list[str] = []
        # Kill after a random number of acknowledgements, with deliveries in flight.
        for _ in range(rng.randint(1, 80)):
            line = child.stdout.readline()
            if not line:
                raise AssertionError(f"the child died on its own: {child.stderr.read()!r}")
            keys.append(line.decode().strip())
        child.kill()
        rest, _ = child.communicate(timeout=30)
        keys += rest.decode().split()  # written before it died: acknowledged too
        acknowledged.update((key, message_for(key)) for key in keys)
        if after_kill is not None:
            after_kill(run)
        check_after_restart(tmp_path, acknowledged, run, url=env.get("CRASH_STORE_URL"))
    assert len(acknowledged) >= RUNS


def check_after_restart(
    data_dir: Path,
    acknowledged: dict[str, bytes],
    run: int,
    blob_dir: Path | None = None,
    url: str | None = None,
) -> None:
    """(``blob_dir``: the bodies are in the filesystem blob backend there; ``url``: the
    store is PostgreSQL's there.)"""
    integrity, stored = anyio.run(read_inbox, data_dir, blob_dir, url)
    assert integrity == "ok", f"after kill {run}: {integrity}"
    counts = Counter(key for key, _ in stored)
    assert [key for key, count in counts.items() if count > 1] == [], f"after kill {run}: twice"
    by_key = dict(stored)
    missing = [key for key in acknowledged if key not in by_key]
    assert missing == [], f"after kill {run}: {len(missing)} acknowledged deliveries lost"
    # What the pipeline adds goes before the message (trace headers); the rest is the original.
    damaged = [
        key for key, data in acknowledged.items() if not by_key[key].endswith(b"\r\n" + data)
    ]
    assert damaged == [], f"after kill {run}: {len(damaged)} deliveries damaged"


async def read_inbox(
    data_dir: Path, blob_dir: Path | None = None, url: str | None = None
) -> tuple[str, list[tuple[str, bytes]]]:
    blobs = None if blob_dir is None else FilesystemBlobs(blob_dir)
    if url is not None:
        from stalwart_py.store.postgresql import PostgresStore

        store = PostgresStore(url, data_dir, blob_backend=blobs)
    else:
        store = SqliteStore(data_dir, blob_backend=blobs)
    await store.open()
    try:
        integrity = await store.integrity_check()
        account = await store.get_account(RECIPIENT)
        box = await store.get_mailbox(account.id, "INBOX")
        infos = await store.messages(box.id)
        blobs = await store.read_blobs([info.blob_id for info in infos])
    finally:
        await store.close()
    result = []
    for info in infos:
        data = blobs[info.blob_id]
        key = re.search(rb"Message-ID: <([^@]+)@crash\.test>", data).group(1).decode()
        result.append((key, data))
    return integrity, result
