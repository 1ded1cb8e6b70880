"""Quarantined mail (a DMARC p=quarantine, a DNSBL with action "junk") is filed by the delivery
pipeline into the recipient's \\Junk mailbox with $Junk, after the recipient's Sieve script: what
the script keeps goes to Junk, what it files elsewhere stays there."""

from __future__ import annotations

import pytest

from stalwart_py.config import DirectorySettings, ThrottleSettings
from stalwart_py.delivery import Delivery, Envelope, Origin, Recipient
from stalwart_py.directory import Directory
from stalwart_py.metrics import Metrics
from stalwart_py.sieve import SieveFilter
from stalwart_py.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio

ORIGIN = Origin("ESMTP", "s1", helo="mx.remote.test", quarantine="DMARC policy quarantine")
SCRIPT = 'require "fileinto"; if header :contains "subject" "list" { fileinto "Lists"; }'


@pytest.fixture
async def setup(tmp_path):
    store = SqliteStore(tmp_path)
    await store.open()
    directory = Directory(store, DirectorySettings(throttle=ThrottleSettings(failure_delay=0)))
    await directory.add_domain("example.test")
    for name in ("bob", "carol"):
        await directory.add_account(f"{name}@example.test", "password123")
    delivery = Delivery(
        store,
        directory,
        lambda: "mx.example.test",
        metrics=Metrics(),
        message_filter=SieveFilter(store, directory, lambda: "mx.example.test"),
    )
    yield store, delivery
    await store.close()


async def messages(store, address, mailbox):
    account = await store.get_account(address)
    box = await store.get_mailbox(account.id, mailbox)
    if box is None:
        return []
    return [(info.flags, info.blob_id) for info in await store.messages(box.id)]


async def test_kept_mail_goes_to_junk_with_the_junk_keyword(setup):
    store, delivery = setup
    envelope = Envelope("a@remote.test", (Recipient("bob@example.test"),))
    [result] = await delivery.deliver(envelope, b"Subject: hi\r\n\r\nx\r\n", ORIGIN)
    assert result.ok
    assert await messages(store, "bob@example.test", "INBOX") == []
    [(flags, _)] = await messages(store, "bob@example.test", "Junk")
    assert "$Junk" in flags
    # Not quarantined: INBOX as always.
    await delivery.deliver(envelope, b"Subject: hi\r\n\r\nx\r\n", Origin("ESMTP", "s2"))
    assert len(await messages(store, "bob@example.test", "INBOX")) == 1


async def test_the_junk_mailbox_is_found_by_special_use_or_created(setup):
    store, delivery = setup
    account = await store.get_account("bob@example.test")
    await store.rename_mailbox(account.id, "Junk", "Spam")
    envelope = Envelope("a@remote.test", (Recipient("bob@example.test"),))
    await delivery.deliver(envelope, b"Subject: hi\r\n\r\nx\r\n", ORIGIN)
    assert len(await messages(store, "bob@example.test", "Spam")) == 1  # renamed, still \Junk
    await store.delete_mailbox(account.id, "Spam")
    await delivery.deliver(envelope, b"Subject: hi\r\n\r\nx\r\n", ORIGIN)
    [created] = [m for m in await store.list_mailboxes(account.id) if m.name == "Junk"]
    assert created.special_use == "\\Junk"
    assert "Junk" in await store.subscriptions(account.id)
    assert len(await messages(store, "bob@example.test", "Junk")) == 1


async def test_the_users_sieve_rule_wins_over_quarantine(setup):
    store, delivery = setup
    account = await store.get_account("carol@example.test")
    await store.put_script(account.id, "rules", SCRIPT)
    await store.set_active_script(account.id, "rules")
    await store.create_mailbox(account.id, "Lists")
    envelope = Envelope("a@remote.test", (Recipient("carol@example.test"),))
    await delivery.deliver(envelope, b"Subject: a list post\r\n\r\nx\r\n", ORIGIN)
    await delivery.deliver(envelope, b"Subject: other\r\n\r\nx\r\n", ORIGIN)
    [(flags, _)] = await messages(store, "carol@example.test", "Lists")
    assert "$Junk" not in flags
    assert len(await messages(store, "carol@example.test", "Junk")) == 1
    assert await messages(store, "carol@example.test", "INBOX") == []
