"""The delivery pipeline: trace headers, resolution, filtering hook, queueing, per-recipient
results."""

from __future__ import annotations

import pytest

from stalwart_py.config import DirectorySettings, ThrottleSettings
from stalwart_py.connection import Address
from stalwart_py.delivery import (
    Delivery,
    Disposition,
    Envelope,
    FileInto,
    Origin,
    Outgoing,
    Recipient,
)
from stalwart_py.directory import Directory
from stalwart_py.metrics import Metrics
from stalwart_py.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio

MESSAGE = b"From: a@remote.test\r\nTo: bob@example.test\r\nSubject: hi\r\n\r\nHello.\r\n"
ORIGIN = Origin(
    "ESMTPS",
    "abc123",
    helo="client.remote.test",
    peer=Address.from_sockaddr(2, ("203.0.113.5", 40000)),
)


@pytest.fixture
async def setup(tmp_path):
    store = SqliteStore(tmp_path)
    await store.open()
    directory = Directory(store, DirectorySettings(throttle=ThrottleSettings(failure_delay=0)))
    await directory.add_domain("example.test")
    for name in ("bob", "carol"):
        await directory.add_account(f"{name}@example.test", "password123")
    delivery = Delivery(store, directory, lambda: "mx.example.test", metrics=Metrics())
    yield store, directory, delivery
    await store.close()


async def inbox_messages(store, address, mailbox="INBOX"):
    account = await store.get_account(address)
    box = await store.get_mailbox(account.id, mailbox)
    infos = await store.messages(box.id)
    blobs = await store.read_blobs([info.blob_id for info in infos])
    return [blobs[info.blob_id] for info in infos]


def envelope(*recipients: str, mail_from: str = "a@remote.test") -> Envelope:
    return Envelope(mail_from, tuple(Recipient(r) for r in recipients))


async def test_local_delivery_with_trace_headers(setup):
    store, _, delivery = setup
    [result] = await delivery.deliver(envelope("bob@example.test"), MESSAGE, ORIGIN)
    assert (result.code, result.enhanced) == (250, "2.0.0")
    [stored] = await inbox_messages(store, "bob@example.test")
    assert stored.startswith(
        b"Return-Path: <a@remote.test>\r\nReceived: from client.remote.test"
        b" ([203.0.113.5])\r\n\tby mx.example.test (stalwart-py) with ESMTPS"
        b" id abc123\r\n\tfor <bob@example.test>; "
    )
    assert stored.endswith(b"\r\n" + MESSAGE)  # the message itself, byte for byte


async def test_per_recipient_results_and_queueing(setup):
    store, directory, delivery = setup
    await directory.add_alias(
        "team@example.test", ["bob@example.test", "carol@example.test", "ext@remote.test"]
    )
    results = await delivery.deliver(
        envelope(
            "team@example.test", "bob@example.test", "nobody@example.test", "friend@remote.test"
        ),
        MESSAGE,
        ORIGIN,
    )
    assert [(r.code, r.enhanced) for r in results] == [
        (250, "2.0.0"),
        (250, "2.0.0"),
        (550, "5.1.1"),
        (250, "2.0.0"),
    ]
    assert len(await inbox_messages(store, "bob@example.test")) == 1  # once, via two routes
    assert len(await inbox_messages(store, "carol@example.test")) == 1
    [entry] = await store.queue_entries()
    assert sorted(r.address for r in entry.recipients) == ["ext@remote.test", "friend@remote.test"]
    forwarded = next(r for r in entry.recipients if r.address == "ext@remote.test")
    assert forwarded.orcpt == "rfc822;team@example.test"
    queued = (await store.read_blobs([entry.blob_id]))[entry.blob_id]
    assert queued.startswith(b"Received: ") and b"Return-Path" not in queued  # not final


async def test_quota_fails_one_recipient_only(setup):
    store, _, delivery = setup
    await store.update_account("carol@example.test", quota_bytes=100)
    results = await delivery.deliver(
        envelope("bob@example.test", "carol@example.test"), MESSAGE, ORIGIN
    )
    assert [(r.code, r.enhanced) for r in results] == [(250, "2.0.0"), (552, "5.2.2")]


class Filter:
    def __init__(self, dispositions):
        self.dispositions = dispositions
        self.seen = []

    async def evaluate(self, account, envelope, recipient, message):
        self.seen.append((account.address, recipient))
        return self.dispositions[account.address]


async def test_a_filter_files_redirects_rejects_and_replies(setup):
    store, _, delivery = setup
    delivery.message_filter = Filter(
        {
            "bob@example.test": Disposition(
                file=(FileInto("Lists/news", frozenset({"\\Seen"}), create=True), FileInto()),
                redirect=("copy@remote.test",),
                outgoing=(
                    Outgoing("bob@example.test", ("a@remote.test",), b"Subject: away\r\n\r\n"),
                ),
            ),
            "carol@example.test": Disposition(reject="I do not want this"),
        }
    )
    results = await delivery.deliver(
        envelope("bob@example.test", "carol@example.test"), MESSAGE, ORIGIN
    )
    assert [(r.code, r.text) for r in results] == [(250, "Delivered"), (550, "I do not want this")]
    assert len(await inbox_messages(store, "bob@example.test", "Lists/news")) == 1
    assert len(await inbox_messages(store, "bob@example.test")) == 1
    assert await inbox_messages(store, "carol@example.test") == []
    entries = await store.queue_entries()
    assert sorted(r.address for e in entries for r in e.recipients) == [
        "a@remote.test",
        "copy@remote.test",
    ]


async def test_a_failing_filter_keeps_the_message(setup):
    store, _, delivery = setup

    class Broken:
        async def evaluate(self, *args):
            raise RuntimeError("script error")

    delivery.message_filter = Broken()
    [result] = await delivery.deliver(envelope("bob@example.test"), MESSAGE, ORIGIN)
    assert result.ok
    assert len(await inbox_messages(store, "bob@example.test")) == 1


async def test_ipv6_literal_and_authenticated_submission_trace(setup):
    store, _, delivery = setup
    origin = Origin(
        "ESMTPSA",
        "s1",
        helo="laptop",
        peer=Address.from_sockaddr(10, ("2001:db8::5", 1, 0, 0)),
        authenticated="bob@example.test",
    )
    await delivery.deliver(envelope("carol@example.test", "bob@example.test"), MESSAGE, origin)
    [stored] = await inbox_messages(store, "carol@example.test")
    head = stored.split(b"\r\n\r\n")[0]
    assert b"from laptop ([IPv6:2001:db8::5])" in head
    assert b"(authenticated sender: bob@example.test)" in head
    assert b"for <" not in head  # two recipients: the header names none


async def test_an_alias_fails_when_any_of_its_copies_fails(setup):
    store, directory, delivery = setup
    await store.update_account("bob@example.test", quota_bytes=100)
    await directory.add_alias("team@example.test", ["bob@example.test", "ext@remote.test"])
    [result] = await delivery.deliver(envelope("team@example.test"), MESSAGE, ORIGIN)
    # Bob's copy could not be stored: the sender must hear of it, though ext's is queued.
    assert (result.code, result.enhanced) == (552, "5.2.2")
    [entry] = await store.queue_entries()
    assert [r.address for r in entry.recipients] == ["ext@remote.test"]


async def test_a_redirect_that_cannot_be_queued_is_not_acknowledged(setup):
    store, _, delivery = setup
    delivery.message_filter = Filter(
        {
            "bob@example.test": Disposition(file=(), redirect=("away@remote.test",)),
            "carol@example.test": Disposition(redirect=("copy@remote.test",)),  # and keep
        }
    )

    async def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    store.enqueue = disk_full
    results = await delivery.deliver(
        envelope("bob@example.test", "carol@example.test"), MESSAGE, ORIGIN
    )
    # Nothing of bob's is anywhere: a temporary failure, so that the sender tries again.
    # Carol's kept copy is stored; the retry may store it twice, which beats losing the
    # redirected one.
    assert [(r.code, r.enhanced) for r in results] == [(451, "4.3.0"), (451, "4.3.0")]
    assert await inbox_messages(store, "bob@example.test") == []
    assert len(await inbox_messages(store, "carol@example.test")) == 1


async def test_a_message_that_went_round_in_a_loop_is_refused(setup):
    store, directory, delivery = setup
    await directory.add_alias("loop@example.test", ["bob@example.test", "far@remote.test"])
    trace = b"Received: from a.test by b.test; Mon, 1 Jun 2026 10:00:00 +0000\r\n"
    looping = trace * 100 + MESSAGE
    results = await delivery.deliver(
        envelope("loop@example.test", "carol@example.test"), looping, ORIGIN
    )
    assert {(r.code, r.enhanced, r.text) for r in results} == {
        (554, "5.4.6", "Too many hops (100): a mail loop")
    }
    assert await inbox_messages(store, "bob@example.test") == []
    assert await store.queue_entries() == []
    # 99 are fine, and Received lines in the body do not count.
    [result] = await delivery.deliver(
        envelope("carol@example.test"), trace * 99 + MESSAGE + trace * 5, ORIGIN
    )
    assert result.ok
