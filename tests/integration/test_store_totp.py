"""The store's two-factor sign-in, on both backends: an enrolment enabled once, a time step
accepted once and only moving forward, a recovery code used once, all gone on disabling."""

from __future__ import annotations

import pytest

from stalwart_py.store import AlreadyExists, NotFound, StoreError

pytestmark = pytest.mark.anyio


async def test_enrol_use_and_disable(store):
    bob = await store.add_account("bob@example.test", "hash", None)
    assert await store.get_totp(bob.id) is None
    await store.start_totp(bob.id, "FIRSTSECRET")
    started = await store.start_totp(bob.id, "SECONDSECRET")  # replaces the unconfirmed one
    assert (started.secret, started.enabled, started.last_step) == ("SECONDSECRET", False, -1)
    assert not await store.use_totp_step(bob.id, 100)  # not enabled yet
    assert not (await store.get_credentials("bob@example.test")).two_factor

    await store.enable_totp(bob.id, 100, ["d1", "d2"])
    assert (await store.get_credentials("bob@example.test")).two_factor
    state = await store.get_totp(bob.id)
    assert state is not None
    assert (state.secret, state.enabled, state.last_step) == ("SECONDSECRET", True, 100)
    assert state.recovery_codes_left == 2
    with pytest.raises(StoreError):
        await store.enable_totp(bob.id, 101, ["d3"])
    with pytest.raises(AlreadyExists):
        await store.start_totp(bob.id, "THIRD")

    assert not await store.use_totp_step(bob.id, 100)  # the confirming code's step: used
    assert not await store.use_totp_step(bob.id, 99)
    assert await store.use_totp_step(bob.id, 101)
    assert not await store.use_totp_step(bob.id, 101)  # a replay

    assert await store.use_recovery_code(bob.id, "d1")
    assert not await store.use_recovery_code(bob.id, "d1")
    assert not await store.use_recovery_code(bob.id, "unknown")
    state = await store.get_totp(bob.id)
    assert state is not None and state.recovery_codes_left == 1

    await store.delete_totp(bob.id)
    assert await store.get_totp(bob.id) is None
    assert not (await store.get_credentials("bob@example.test")).two_factor
    assert not await store.use_recovery_code(bob.id, "d2")
    with pytest.raises(NotFound):
        await store.delete_totp(bob.id)


async def test_gone_with_the_account_and_per_account(store):
    bob = await store.add_account("bob@example.test", "hash", None)
    carol = await store.add_account("carol@example.test", "hash", None)
    for account in (bob, carol):
        await store.start_totp(account.id, "SECRET")
        await store.enable_totp(account.id, 7, ["same-digest"])
    assert await store.use_recovery_code(bob.id, "same-digest")
    assert await store.use_recovery_code(carol.id, "same-digest")  # each account's own
    with pytest.raises(NotFound):
        await store.start_totp(999_999, "SECRET")
    await store.delete_account("bob@example.test")
    assert await store.get_totp(bob.id) is None
    assert (await store.get_totp(carol.id)) is not None
