"""The renewal manager without a CA: a failure keeps the certificate in use, is recorded
(state, metrics) and retried after a backoff; forced renewals never run two orders at once;
another process holding <data-dir>/acme/<id>.lock holds this one's order back."""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from stalwart_py.acme.manager import AcmeManager
from stalwart_py.certificates import CertificateStore
from stalwart_py.config.acme import AcmeSettings
from stalwart_py.metrics import Metrics
from stalwart_py.store.sqlite import SqliteStore


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.asynccontextmanager
async def manager(tmp_path: Path) -> AsyncIterator[AcmeManager]:
    """A manager on the store of ``tmp_path`` (one per process it plays)."""
    settings = AcmeSettings(
        directory=f"https://127.0.0.1:{closed_port()}/dir", domains=("mail.example.test",)
    )
    store = SqliteStore(tmp_path)
    await store.open()
    try:
        certificates = CertificateStore(tmp_path)
        certificates.store = store
        yield AcmeManager(
            {"le": settings},
            tmp_path,
            certificates,
            Metrics(),
            store=store,
            rng=random.Random(3),
        )
    finally:
        await store.close()


@pytest.mark.anyio
async def test_a_failed_order_is_recorded_and_retried_after_a_backoff(tmp_path: Path):
    async with manager(tmp_path) as acme:
        async with anyio.create_task_group() as tg:
            await tg.start(acme.run)
            before = time.time()
            state = await acme.renew_now("le")
            tg.cancel_scope.cancel()
        assert state.failures == 1 and state.attempts >= 1
        assert "cannot reach the ACME server" in (state.last_error or "")
        assert state.next_renewal is not None
        assert before + 40 <= state.next_renewal <= time.time() + 80  # 1 min +-20 %
        assert acme.certificates.describe() == []  # nothing installed
        text = acme.metrics.render().decode()
        assert 'stalwart_acme_renewal_failing{id="le"} 1.0' in text
        assert 'stalwart_acme_renewals_total{id="le",result="failure"}' in text
        # the account key was made, in the store (not a file)
        [account] = await acme.store.acme_accounts()
        assert account.id == "le" and b"PRIVATE KEY" in account.private_key
        assert not (tmp_path / "acme" / "le").exists()
        assert acme.describe()["le"]["last_error"] == state.last_error


@pytest.mark.anyio
async def test_forced_renewals_at_once_share_one_order(tmp_path: Path):
    async with manager(tmp_path) as acme:
        results = []
        async with anyio.create_task_group() as tg:
            await tg.start(acme.run)
            state = await acme.renew_now("le")  # the order at start (no certificate yet)
            first = state.attempts

            async def force() -> None:
                results.append((await acme.renew_now("le")).attempts)

            async with anyio.create_task_group() as forcing:
                for _ in range(3):
                    forcing.start_soon(force)
            tg.cancel_scope.cancel()
        # three callers at once, one renewal: each saw the same one finish
        assert results == [first + 1] * 3


@pytest.mark.anyio
async def test_another_process_holding_the_lock_holds_the_order_back(tmp_path: Path):
    async with manager(tmp_path) as acme:
        (tmp_path / "acme").mkdir(mode=0o700)
        fd = os.open(tmp_path / "acme" / "le.lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)  # as another server on this data directory would
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(acme.run)
                with anyio.move_on_after(2.5):
                    await acme.renew_now("le")
                slot = acme.slots["le"]
                assert slot.state.renewing and slot.state.attempts == 0  # waiting, not ordering
                os.close(fd)  # the other process is done
                fd = -1
                state = await acme.renew_now("le")
                assert state.attempts == 1 and state.failures == 1
                tg.cancel_scope.cancel()
        finally:
            if fd >= 0:
                os.close(fd)


@pytest.mark.anyio
async def test_with_workers_only_the_lease_holder_schedules_and_others_renew_when_asked(
    tmp_path: Path,
):
    """Two managers on one data directory, as two workers: the one holding the ``acme`` lease
    runs the loops (its first order at start); the other orders only when asked, itself, and
    takes the holder's outcome from the store when told to refresh."""
    async with (
        manager(tmp_path) as holder,
        manager(tmp_path) as other,
        anyio.create_task_group() as tg,
    ):
        await tg.start(lambda *, task_status: holder.run(shared=True, task_status=task_status))
        # run() is started before its lease is taken (in a thread, a moment later); asked
        # before that, renew_now would order itself and the loop at start once more.
        with anyio.fail_after(10):
            while not holder._scheduling:  # noqa: ASYNC110 - a flock in a thread sets no Event
                await anyio.sleep(0.01)  # ok: the lease is a flock taken in a thread
        first = await holder.renew_now("le")  # the loop's order at start, waited for
        assert first.failures == 1
        await tg.start(lambda *, task_status: other.run(shared=True, task_status=task_status))
        assert not other._scheduling  # the lease is taken: no loop here
        assert other.describe()["le"]["last_error"] == first.last_error  # read at start
        state = await other.renew_now("le")  # ordered here, not by the holder's loop
        assert state.attempts == first.attempts + 1 and state.failures == first.failures + 1
        assert holder.slots["le"].state.attempts == first.attempts
        tg.cancel_scope.cancel()
