"""The store's queue additions: a DSN queued with the attempt's outcome, and the wake-up."""

from __future__ import annotations

import anyio
import pytest

from stalwart_py.store import OutboundMessage, QueuedRecipient, RecipientUpdate
from stalwart_py.store.engine import QUEUE_CHANNEL

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(new_store):
    store = new_store()
    await store.open()
    yield store
    await store.close()


def message(*recipients: str, mail_from: str = "a@x.test") -> OutboundMessage:
    return OutboundMessage(mail_from, tuple(QueuedRecipient(r) for r in recipients))


async def test_failure_and_its_dsn_are_one_write(store):
    queue_id = await store.enqueue(b"Subject: x\r\n\r\nbody\r\n", message("b@y.test"))
    [recipient] = (await store.queue_entry(queue_id)).recipients
    dsn = (b"Subject: bounce\r\n\r\n", message("a@x.test", mail_from=""))
    await store.update_queue_recipients(
        queue_id, [RecipientUpdate(recipient.id, "failed", 0.0, "550 no")], notification=dsn
    )
    assert await store.queue_entry(queue_id) is None  # nothing pending: removed
    [bounce] = await store.queue_entries()
    assert (bounce.mail_from, [r.address for r in bounce.recipients]) == ("", ["a@x.test"])


async def test_no_dsn_for_a_message_deleted_meanwhile(store):
    queue_id = await store.enqueue(b"Subject: x\r\n\r\n", message("b@y.test"))
    [recipient] = (await store.queue_entry(queue_id)).recipients
    await store.delete_queue_entry(queue_id)
    dsn = (b"Subject: bounce\r\n\r\n", message("a@x.test", mail_from=""))
    await store.update_queue_recipients(
        queue_id, [RecipientUpdate(recipient.id, "failed", 0.0, "550 no")], notification=dsn
    )
    assert await store.queue_entries() == []


async def test_enqueue_and_retry_wake_the_queue_watch(store):
    with store.changes.watch(QUEUE_CHANNEL) as watch:
        await store.enqueue(b"Subject: x\r\n\r\n", message("b@y.test"))
        with anyio.fail_after(5):
            await watch.wait()
        await store.retry_queue()
        with anyio.fail_after(5):
            await watch.wait()
