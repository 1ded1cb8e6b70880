"""Durability: a child delivering in a loop is SIGKILLed at random moments, 20 times; every
delivery it acknowledged is then present, byte-identical and exactly once, and the database
passes its integrity check."""

from __future__ import annotations

import random
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import anyio

from stalwart_py.store.sqlite import SqliteStore
from tests.support.crash_child import RECIPIENT, message_for

ROOT = Path(__file__).resolve().parents[2]
RUNS = 20


def test_acknowledged_deliveries_survive_sigkill(tmp_path):
    rng = random.Random(20261124)
    acknowledged: list[str] = []
    for run in range(RUNS):
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.support.crash_child", str(tmp_path), str(run)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        # Kill after a random number of acknowledgements, with deliveries in flight.
        for _ in range(rng.randint(1, 80)):
            line = child.stdout.readline()
            if not line:
                raise AssertionError(f"the child died on its own: {child.stderr.read()!r}")
            acknowledged.append(line.decode().strip())
        child.kill()
        rest, _ = child.communicate(timeout=30)
        acknowledged += rest.decode().split()  # written before it died: acknowledged too
    stored = anyio.run(read_inbox, tmp_path)
    keys = Counter(key for key, _ in stored)
    assert [key for key, count in keys.items() if count > 1] == []  # nothing twice
    by_key = dict(stored)
    missing = [key for key in acknowledged if key not in by_key]
    assert missing == [], f"{len(missing)} acknowledged deliveries lost"
    for key in acknowledged:
        assert by_key[key].endswith(b"\r\n" + message_for(key)), f"{key} is damaged"
    assert len(acknowledged) >= RUNS


async def read_inbox(data_dir: Path) -> list[tuple[str, bytes]]:
    store = SqliteStore(data_dir)
    await store.open()
    try:
        assert await store.integrity_check() == "ok"
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
    return result
