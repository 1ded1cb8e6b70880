"""The junk classifier's tables in the SQLite store: training, retraining, the caps."""

from __future__ import annotations

import pytest

from stalwart_py.config.junk import ClassifierSettings
from stalwart_py.junk.filter import JunkFilter
from stalwart_py.junk.tokens import tokenize
from stalwart_py.store import LocalDelivery

pytestmark = pytest.mark.anyio


async def _blob(store, account_id: int, body: bytes) -> int:
    await store.deliver(body, [LocalDelivery(account_id)])
    inbox = await store.get_mailbox(account_id, "INBOX")
    return (await store.messages(inbox.id))[-1].blob_id


async def test_training_counts_and_remembers_each_message(store):
    bob = await store.add_account("bob@example.test", "hash", None)
    first = await _blob(store, bob.id, b"Subject: one\r\n\r\nwin\r\n")
    second = await _blob(store, bob.id, b"Subject: two\r\n\r\nmeeting\r\n")
    assert await store.junk_train(bob.id, first, True, ["win", "cash"], max_tokens=1000) == (
        "trained"
    )
    assert await store.junk_train(bob.id, first, True, ["win", "cash"], max_tokens=1000) == (
        "unchanged"
    )
    assert await store.junk_train(bob.id, second, False, ["meeting", "cash"], max_tokens=1000)
    counts = await store.junk_counts(bob.id, ["win", "cash", "meeting", "absent"])
    assert (counts.ham, counts.spam) == (1, 1)
    assert counts.tokens == {"win": (0, 1), "cash": (1, 1), "meeting": (1, 0)}
    assert await store.junk_trained_as(bob.id, [first, second, 999]) == {
        first: True,
        second: False,
    }


async def test_retraining_flips_a_message_without_double_counting(store):
    bob = await store.add_account("bob@example.test", "hash", None)
    blob = await _blob(store, bob.id, b"Subject: x\r\n\r\nx\r\n")
    for junk in (True, False, True, False):
        await store.junk_train(bob.id, blob, junk, ["alpha", "beta"], max_tokens=1000)
    counts = await store.junk_counts(bob.id, ["alpha", "beta"])
    assert (counts.ham, counts.spam) == (1, 0)
    assert counts.tokens == {"alpha": (1, 0), "beta": (1, 0)}
    assert await store.junk_trained_as(bob.id, [blob]) == {blob: False}


async def test_accounts_are_apart_and_a_missing_body_is_gone(store):
    bob = await store.add_account("bob@example.test", "hash", None)
    carol = await store.add_account("carol@example.test", "hash", None)
    blob = await _blob(store, bob.id, b"Subject: x\r\n\r\nx\r\n")
    await store.junk_train(bob.id, blob, True, ["alpha"], max_tokens=1000)
    assert (await store.junk_counts(carol.id, ["alpha"])).tokens == {}
    assert await store.junk_trained_as(carol.id, [blob]) == {}
    assert await store.junk_train(bob.id, 12345, True, ["alpha"], max_tokens=1000) == "gone"


async def test_the_token_table_is_capped_by_pruning_the_rarest(store):
    bob = await store.add_account("bob@example.test", "hash", None)
    common = [f"common{i}" for i in range(100)]
    for n in range(12):
        blob = await _blob(store, bob.id, f"Subject: {n}\r\n\r\n{n}\r\n".encode())
        rare = [f"rare{n}-{i}" for i in range(200)]
        await store.junk_train(bob.id, blob, n % 2 == 0, common + rare, max_tokens=1000)
    total = await store._engine.read(
        lambda conn: conn.execute(
            "SELECT count(*), max(tokens) FROM junk_tokens, junk_state"
        ).fetchone()
    )
    rows = await store._engine.read(
        lambda conn: conn.execute("SELECT count(*) FROM junk_tokens").fetchone()[0]
    )
    state = await store._engine.read(
        lambda conn: conn.execute("SELECT tokens FROM junk_state").fetchone()[0]
    )
    assert rows == state <= 1000, total
    counts = await store.junk_counts(bob.id, common)
    assert len(counts.tokens) == 100  # the tokens seen in every message survive
    assert counts.tokens["common0"] == (6, 6)


async def test_deleting_the_account_deletes_its_counts(store):
    bob = await store.add_account("bob@example.test", "hash", None)
    blob = await _blob(store, bob.id, b"Subject: x\r\n\r\nx\r\n")
    await store.junk_train(bob.id, blob, True, ["alpha"], max_tokens=1000)
    await store.delete_account("bob@example.test")
    left = await store._engine.read(
        lambda conn: [
            conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("junk_tokens", "junk_state", "junk_trained")
        ]
    )
    assert left == [0, 0, 0]


async def test_our_authentication_results_are_evidence(store):
    """Junk and non-junk that differ only by what our intake recorded of their senders:
    the classifier learns the auth:* tokens and judges new mail by them alone."""
    bob = await store.add_account("bob@example.test", "hash", None)
    junk_filter = JunkFilter(store, ClassifierSettings, lambda: "mail.example.test")
    failing = "Authentication-Results: mail.example.test; spf=fail; dkim=fail; dmarc=fail"
    passing = "Authentication-Results: mail.example.test; spf=pass; dkim=pass; dmarc=pass"

    def message(n: int, results: str) -> bytes:
        return f"{results}\r\nSubject: hello {n}\r\n\r\nsee you tomorrow\r\n".encode()

    lessons = []
    for n in range(12):
        for junk, results in ((True, failing), (False, passing)):
            blob = await _blob(store, bob.id, message(n if junk else 100 + n, results))
            tokens = sorted(tokenize(message(n, results), "mail.example.test"))
            lessons.append((blob, junk, tokens))
    await store.junk_train_many(bob.id, lessons, max_tokens=1000)
    bad = await junk_filter.classify(bob.id, message(999, failing))
    good = await junk_filter.classify(bob.id, message(999, passing))
    assert bad.junk and bad.score is not None and bad.score >= 0.9
    assert not good.junk and good.score is not None and good.score <= 0.1
    # a header claiming another authserv-id is no evidence: the score stays in the middle
    forged = await junk_filter.classify(bob.id, message(999, failing.replace("mail.", "mx.")))
    assert not forged.junk and forged.score is not None and 0.1 < forged.score < 0.9
