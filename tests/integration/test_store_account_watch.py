"""Account-wide change watches (the store side of IMAP NOTIFY): which mailboxes changed, and
whether the mailbox list or subscriptions did, accumulated until taken, per account."""

from __future__ import annotations

import anyio
import pytest

from stalwart_py.store import LocalDelivery
from tests.integration.test_store import account, message, store  # noqa: F401 (fixtures)

pytestmark = pytest.mark.anyio


async def test_changes_accumulate_per_account(store, account):  # noqa: F811
    other = await store.add_account("carol@example.test", "secret-hash", None)
    inbox = await store.get_mailbox(account.id, "INBOX")
    sent = await store.get_mailbox(account.id, "Sent")
    with store.changes.watch_account(account.id) as watch:
        assert not watch.pending and watch.take() == (set(), False)
        await store.append(inbox.id, message(1))
        await store.append(sent.id, message(2))
        other_inbox = await store.get_mailbox(other.id, "INBOX")
        await store.append(other_inbox.id, message(3))  # another account: not ours
        assert watch.pending
        assert watch.take() == ({inbox.id, sent.id}, False)
        assert not watch.pending

        await store.update_flags(inbox.id, [1], "add", frozenset({"\\Seen"}))
        await store.expunge(sent.id)  # nothing to expunge: no change
        assert watch.take() == ({inbox.id}, False)

        created = await store.create_mailbox(account.id, "Projects")
        assert watch.take()[1]
        await store.subscribe(account.id, "Projects", False)
        assert watch.take() == (set(), True)
        await store.rename_mailbox(account.id, "Projects", "Work")
        assert watch.take()[1]
        await store.delete_mailbox(account.id, "Work")
        mailboxes, listing = watch.take()
        assert listing and created.id not in mailboxes  # gone: told by the listing
        await store.deliver(message(4), [LocalDelivery(account.id, "Filed", create=True)])
        mailboxes, listing = watch.take()
        assert listing and len(mailboxes) == 1

        with anyio.fail_after(5):
            async with anyio.create_task_group() as group:
                group.start_soon(watch.wait)
                await store.append(inbox.id, message(5))
        assert watch.take() == ({inbox.id}, False)
    await store.append(inbox.id, message(6))  # closed: no error, nobody told
    assert not store.changes._account_watches
