"""SQLite writers of several processes take turns (``Engine._write_turn``): an flock beside
the database. Two stores on one data directory (two processes' writers, as two workers have)
both commit while they contend; a writer that cannot get the turn goes on without it after
``TURN_WAIT`` and SQLite's own locking decides, so a hung holder never stops the others."""

from __future__ import annotations

import fcntl
import logging
import os
import stat

import anyio
import pytest

from stalwart_py.store import engine
from stalwart_py.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio


async def deliver_many(store: SqliteStore, mailbox_id: int, first: int, count: int) -> None:
    async with anyio.create_task_group() as group:
        for n in range(first, first + count):
            group.start_soon(store.append, mailbox_id, f"Subject: {n}\r\n\r\nbody {n}\r\n".encode())


async def test_two_writers_on_one_database_take_turns_and_both_commit(tmp_path):
    first, second = SqliteStore(tmp_path), SqliteStore(tmp_path)
    await first.open()
    await second.open()
    try:
        await first.add_domain("example.test")
        account = await first.add_account("bob@example.test", "secret-hash", None)
        box = await first.get_mailbox(account.id, "INBOX")
        async with anyio.create_task_group() as group:
            group.start_soon(deliver_many, first, box.id, 0, 40)
            group.start_soon(deliver_many, second, box.id, 40, 40)
        assert (await second.mailbox_counts(box.id)).messages == 80
        turn = tmp_path / (first._engine.path.name + "-turn")
        assert stat.S_IMODE(turn.stat().st_mode) == 0o600
    finally:
        await first.close()
        await second.close()


async def test_a_writer_without_the_turn_goes_on_after_the_wait(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(engine, "TURN_WAIT", 0.3)
    store = SqliteStore(tmp_path)
    await store.open()
    try:
        await store.add_domain("example.test")  # the turn file exists from here on
        turn = tmp_path / (store._engine.path.name + "-turn")
        holder = os.open(turn, os.O_RDWR)
        try:
            fcntl.flock(holder, fcntl.LOCK_EX)  # another process's writer that hangs
            with caplog.at_level(logging.WARNING, logger="stalwart_py.store"):
                with anyio.fail_after(10):
                    account = await store.add_account("bob@example.test", "secret-hash", None)
            assert account.address == "bob@example.test"
            assert "no write turn" in caplog.text
        finally:
            os.close(holder)
    finally:
        await store.close()
