"""The change bus: a batch committed by one engine wakes the watches of another engine on the
same database (another process in production; here two engines in one process, which use the
bus exactly as two processes do)."""

from __future__ import annotations

import time

import anyio

from stalwart_py.store.change_bus import ChangeSet
from stalwart_py.store.engine import Engine


def test_a_commit_in_one_engine_wakes_a_watch_in_another(tmp_path):
    async def main() -> None:
        writer, reader = Engine(tmp_path / "db.sqlite3"), Engine(tmp_path / "db.sqlite3")
        await writer.open()
        await reader.open()
        try:
            with reader.changes.watch(7) as watch, reader.changes.watch(8) as other:
                started = time.monotonic()
                await writer.write(lambda txn: txn.touched.add(7))
                with anyio.fail_after(5):
                    await watch.wait()
                assert time.monotonic() - started < 1.0
                assert not other.pending  # only what the batch touched
        finally:
            await writer.close()
            await reader.close()
        assert list((tmp_path / "run").iterdir()) == []  # each removed its socket

    anyio.run(main)


def test_a_lost_change_set_wakes_everything():
    assert ChangeSet.decode(ChangeSet(everything=True).encode()).everything
    changes = ChangeSet({1, 2}, {10: {1}}, {10})
    assert ChangeSet.decode(changes.encode()) == changes
