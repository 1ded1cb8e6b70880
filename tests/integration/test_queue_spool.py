"""The deferred spool (``smtp.deferred-spool``): mail for remote recipients submitted with
smtplib is held in memory until its first transient failure. Writes to the store's queue are
watched by wrapping the store's two queue-writing methods."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import logging

import anyio
import pytest

from protocols.smtp import Smtp
from stalwart_py.store import OutboundMessage
from stalwart_py.store.sqlite import SqliteStore
from tests.support.queue_world import MESSAGE, FakeClock, outside_world
from tests.support.servers import InProcessServer, write_config
from tests.support.smtp import PASSWORD, connect, mailbox_messages, metric, queue

MX_ADDRESS = "127.0.0.14"


def config_text(zone_port: int, peer_port: int) -> str:
    """``mx``: deferred spool on; ``plain``: off (the default). Loopback may relay."""
    return f"""
[server]
hostname = "mail.example.test"
shutdown-timeout = "1s"

[directory.throttle]
failure-delay = 0

[server.listener.mx]
bind = "127.0.0.1:0"
protocol = "smtp"
smtp.deferred-spool = true

[server.listener.plain]
bind = "127.0.0.1:0"
protocol = "smtp"

[queue]
port = {peer_port}
retry = ["5m", "10m"]
command-timeout = "20s"
data-timeout = "20s"

[queue.dns]
nameservers = ["127.0.0.1:{zone_port}"]
"""


class QueueWrites:
    """Every write to the store's queue: ("enqueue", OutboundMessage) or ("update", id)."""

    def __init__(self, server: InProcessServer) -> None:
        self.calls: list[tuple[str, OutboundMessage | int]] = []
        store = server.context.store
        enqueue, update = store.enqueue, store.update_queue_recipients

        async def recording_enqueue(data: bytes, message: OutboundMessage) -> int:
            self.calls.append(("enqueue", message))
            return await enqueue(data, message)

        async def recording_update(queue_id: int, updates, **options) -> None:
            self.calls.append(("update", queue_id))
            await update(queue_id, updates, **options)

        store.enqueue = recording_enqueue
        store.update_queue_recipients = recording_update

    def enqueued(self) -> list[OutboundMessage]:
        return [message for kind, message in self.calls if kind == "enqueue"]


@pytest.fixture
def outside():
    with outside_world(MX_ADDRESS) as world:
        yield world


@pytest.fixture
def setup(start_server, outside):
    _portal, zone, peer = outside
    server = start_server(config_text(zone.port, peer.port))
    for name in ("alice", "carol"):
        server.add_account(f"{name}@example.test", PASSWORD)
    clock = FakeClock()
    server.call(setattr, server.context.queue, "clock", clock)
    return server, peer, clock, QueueWrites(server)


def submit(server: InProcessServer, *recipients: str, listener: str = "mx") -> tuple[int, bytes]:
    with connect(server, listener) as client:
        client.ehlo("client.test")
        assert client.mail("alice@example.test")[0] == 250
        for recipient in recipients:
            assert client.rcpt(recipient)[0] == 250
        return client.data(MESSAGE)


def flush(server: InProcessServer) -> None:
    """Until every attempt under way (in memory or from the store) has been settled."""
    server.run(server.context.queue.flush)


def test_delivered_from_memory_without_a_queue_write(setup):
    server, peer, _clock, writes = setup
    code, text = submit(server, "bob@remote.test")
    assert (code, text[:34]) == (250, b"2.0.0 Message accepted for deliver")
    [received] = peer.wait_for(1)
    assert (received.mail_from, received.rcpt_tos) == ("alice@example.test", ["bob@remote.test"])
    assert b"\r\nHello Bob.\r\n.leading dot\r\n" in received.data
    assert b"by mail.example.test (stalwart-py) with ESMTP" in received.data
    flush(server)
    assert writes.calls == []
    assert queue(server) == []
    assert metric(server, "stalwart_queue_deferred_spool_total", event="held") == 1
    assert metric(server, "stalwart_queue_memory_messages") == 0


def test_first_transient_failure_writes_it_with_the_attempt_then_retry_delivers(setup):
    server, peer, clock, writes = setup
    peer.data_replies = ["451 4.3.0 Try again later"]
    arrival = clock.now()
    assert submit(server, "bob@remote.test")[0] == 250
    flush(server)
    [written] = writes.enqueued()
    assert written.source == "smtp"
    [entry] = queue(server)
    assert entry.created == pytest.approx(arrival, abs=5)  # max-age counts from the arrival
    [recipient] = entry.recipients
    assert (recipient.address, recipient.status, recipient.attempts) == (
        "bob@remote.test",
        "pending",
        1,
    )
    assert recipient.last_error == "mx.remote.test: 451 4.3.0 Try again later"
    assert recipient.next_attempt == pytest.approx(clock.now() + 300, abs=5)
    assert peer.received == []
    assert metric(server, "stalwart_queue_deferred_spool_total", event="written") == 1
    clock.advance(301)  # no real waiting: the queue's clock moves
    flush(server)
    [received] = peer.received
    assert received.rcpt_tos == ["bob@remote.test"]
    assert queue(server) == []
    assert writes.calls == [("enqueue", written), ("update", entry.id)]


def test_permanent_failure_sends_a_dsn_and_writes_nothing_else(setup):
    server, peer, _clock, writes = setup
    peer.refuse = {"bob@remote.test": "550 5.1.1 No such user bob"}
    assert submit(server, "bob@remote.test")[0] == 250
    flush(server)  # the refusal: the DSN to alice is queued (durably)
    [dsn_message] = writes.enqueued()
    assert (dsn_message.mail_from, dsn_message.source) == ("", "bounce")
    assert [r.address for r in dsn_message.recipients] == ["alice@example.test"]
    flush(server)  # the DSN is delivered to alice's INBOX
    [stored] = mailbox_messages(server, "alice@example.test")
    dsn = email.message_from_bytes(stored, policy=email.policy.default)
    assert dsn["Subject"] == "Undelivered mail returned to sender"
    [report] = [p for p in dsn.walk() if p.get_content_type() == "message/delivery-status"]
    _per_message, per_recipient = report.get_payload()
    assert per_recipient["Final-Recipient"] == "rfc822; bob@remote.test"
    assert (per_recipient["Action"], per_recipient["Status"]) == ("failed", "5.1.1")
    assert per_recipient["Remote-MTA"] == "dns; mx.remote.test"
    assert per_recipient["Diagnostic-Code"] == "smtp; 550 5.1.1 No such user bob"
    assert peer.received == []
    assert queue(server) == []


def test_local_recipients_are_stored_before_the_reply(setup):
    server, peer, _clock, writes = setup
    assert submit(server, "carol@example.test", "bob@remote.test")[0] == 250
    [stored] = mailbox_messages(server, "carol@example.test")  # already there: no waiting
    assert stored.startswith(b"Return-Path: <alice@example.test>\r\n")
    [received] = peer.wait_for(1)
    assert received.rcpt_tos == ["bob@remote.test"]
    flush(server)
    assert writes.calls == []


def test_off_by_default_and_while_the_queue_is_held(setup):
    server, peer, _clock, writes = setup
    assert submit(server, "bob@remote.test", listener="plain")[0] == 250
    flush(server)
    [durable] = writes.enqueued()
    assert durable.recipients[0].attempts == 0
    assert len(peer.received) == 1
    manager = server.context.queue
    held = dataclasses.replace(manager.settings, hold=True)
    server.call(manager.configure, held, {})
    assert submit(server, "bob@remote.test")[0] == 250
    assert len(writes.enqueued()) == 2  # held: to the store, like any other mail
    [entry] = queue(server)
    assert entry.recipients[0].status == "pending"
    assert metric(server, "stalwart_queue_deferred_spool_total", event="held") == 0


def offline_queue(data_dir):
    async def read():
        store = SqliteStore(data_dir)
        await store.open()
        try:
            return await store.queue_entries()
        finally:
            await store.close()

    return anyio.run(read)


def test_a_stop_writes_what_memory_holds_to_the_queue(tmp_path, outside, caplog):
    _portal, zone, peer = outside
    caplog.set_level(logging.INFO, logger="stalwart_py")
    path = write_config(tmp_path, config_text(zone.port, peer.port))
    peer.stall_data = True  # the MX takes the message and does not answer its end
    with InProcessServer(path, {"smtp": Smtp}) as server:
        assert "listener mx: smtp.deferred-spool is on" in caplog.text
        assert "listener plain: smtp.deferred-spool" not in caplog.text
        server.add_account("alice@example.test", PASSWORD)
        assert submit(server, "bob@remote.test")[0] == 250  # while the MX has not answered
        peer.wait_stalled()
        assert queue(server) == []
    [entry] = offline_queue(tmp_path / "var")
    [recipient] = entry.recipients
    assert (recipient.address, recipient.status, recipient.attempts) == (
        "bob@remote.test",
        "pending",
        0,  # the attempt was cut short: it does not count
    )
    assert "deferred spool: wrote 1 message(s) held in memory to the queue" in caplog.text
    peer.stall_data = False
    with InProcessServer(path, {"smtp": Smtp}) as server:  # the restarted server delivers it
        [received] = peer.wait_for(1)
        flush(server)
    assert received.rcpt_tos == ["bob@remote.test"]
    assert offline_queue(tmp_path / "var") == []
