"""Pending ACME challenges in the store (``Store.put_acme_challenge``), on both backends: a
challenge left by a process that died during its order is answered no more once it is
``ACME_CHALLENGE_LIFETIME`` old, and the next challenge set deletes it, so the table does not
grow with every order a crash interrupted."""

from __future__ import annotations

import time

import pytest

from stalwart_py.acme.challenges import HTTP_01, http01_answer
from stalwart_py.certificates import TLS_ALPN_01
from stalwart_py.store.base_shared_state import ACME_CHALLENGE_LIFETIME

pytestmark = pytest.mark.anyio


class Clock:
    """The store's clock (``Txn.now``: when a row is ``created``), moved by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def rows(store) -> list[tuple[str, str]]:
    """Every challenge row, as a look at the table itself would show it."""
    return await store._engine.read(
        lambda conn: [
            tuple(row)
            for row in conn.execute("SELECT kind, name FROM acme_challenges ORDER BY name")
        ]
    )


async def test_a_challenge_past_its_lifetime_is_not_answered_and_the_next_put_deletes_it(
    new_store,
):
    store = new_store()
    clock = Clock(time.time() - ACME_CHALLENGE_LIFETIME - 60)  # an order of over an hour ago
    store._engine.clock = clock
    await store.open()
    try:
        await store.put_acme_challenge(HTTP_01, "died", b"died.thumbprint")
        await store.put_acme_challenge(TLS_ALPN_01, "died.example.test", b"cert", b"key")
        clock.now += 120  # a minute inside the lifetime: kept, and answered
        await store.put_acme_challenge(HTTP_01, "recent", b"recent.thumbprint")
        assert await rows(store) == [
            ("http-01", "died"),
            ("tls-alpn-01", "died.example.test"),
            ("http-01", "recent"),
        ]
        assert await http01_answer(store, "died") is None  # too old to answer...
        assert await http01_answer(store, "recent") == b"recent.thumbprint"
        clock.now = time.time()  # ...and gone at the next challenge set, of either kind
        await store.put_acme_challenge(TLS_ALPN_01, "mail.example.test", b"cert", b"key")
        assert await rows(store) == [("tls-alpn-01", "mail.example.test"), ("http-01", "recent")]
        assert await store.acme_challenges(TLS_ALPN_01, 0.0) == [
            ("mail.example.test", b"cert", b"key")
        ]
    finally:
        await store.close()
