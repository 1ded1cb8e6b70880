"""Retries, expiry and bounces (RFC 3464 DSNs, checked field by field in the sender's INBOX);
timeouts (RFC 5321 4.5.3.2) are transient failures."""

from __future__ import annotations

import email
import email.policy

import pytest

from tests.support.mail_peers import SilentServer
from tests.support.queue_world import make_world, running

pytestmark = pytest.mark.anyio


@pytest.fixture
async def world(tmp_path, ca):
    async with make_world(tmp_path, ca) as world:
        world.dns.add("remote.test", "MX", "10 mx.remote.test.")
        world.dns.add("mx.remote.test", "A", "127.0.0.8")
        yield world


def parse(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)


def status_blocks(dsn: email.message.EmailMessage) -> list[dict[str, str]]:
    """The message/delivery-status part's field blocks: per-message, then per recipient."""
    [report] = [part for part in dsn.walk() if part.get_content_type() == "message/delivery-status"]
    blocks = []
    for block in report.get_payload():
        blocks.append({key: str(value) for key, value in block.items()})
    return blocks


async def test_transient_failure_then_success_on_retry(world):
    peer = await world.peer("127.0.0.8", data_replies=["451 4.3.0 Try again later"])
    queue_id = await world.enqueue("bob@remote.test")
    async with running(world.manager(port=peer.port)) as manager:
        await manager.flush()
        entry = await world.store.queue_entry(queue_id)
        [recipient] = entry.recipients
        assert (recipient.status, recipient.attempts) == ("pending", 1)
        assert recipient.last_error == "mx.remote.test: 451 4.3.0 Try again later"
        assert recipient.next_attempt == pytest.approx(world.clock.now() + 300, abs=5)
        world.clock.advance(290)  # not due yet: nothing happens
        await manager.flush()
        assert peer.received == []
        world.clock.advance(20)
        await manager.flush()
    [message] = peer.received
    assert message.rcpt_tos == ["bob@remote.test"]
    assert await world.store.queue_entry(queue_id) is None
    assert await world.inbox("alice@example.test") == []  # no DSN for a delivery


async def test_second_retry_uses_the_next_interval(world):
    peer = await world.peer("127.0.0.8", data_replies=["452 4.2.2 Full", "452 4.2.2 Full"])
    queue_id = await world.enqueue("bob@remote.test")
    async with running(world.manager(port=peer.port)) as manager:
        await manager.flush()
        world.clock.advance(301)
        await manager.flush()
    [recipient] = (await world.store.queue_entry(queue_id)).recipients
    assert recipient.attempts == 2
    assert recipient.next_attempt == pytest.approx(world.clock.now() + 600, abs=5)


async def test_permanent_failure_bounces_with_a_correct_dsn(world):
    peer = await world.peer("127.0.0.8", refuse={"bob@remote.test": "550 5.1.1 No such user bob"})
    data = (
        b"From: Alice <alice@example.test>\r\nTo: bob@remote.test\r\nSubject: report\r\n"
        b"Message-ID: <orig@example.test>\r\n\r\nThe body.\r\n"
    )
    queue_id = await world.enqueue(
        "bob@remote.test",
        "carol@remote.test",
        data=data,
        orcpt="rfc822;bob@remote.test",
        envid="QQ314159",
        ret="HDRS",
    )
    async with running(world.manager(port=peer.port)) as manager:
        await manager.flush()  # carol delivered, bob refused: a DSN is queued for alice
        assert await world.store.queue_entry(queue_id) is None
        await manager.flush()  # the DSN is delivered locally
    assert [m.rcpt_tos for m in peer.received] == [["carol@remote.test"]]
    [stored] = await world.inbox("alice@example.test")
    assert stored.startswith(b"Return-Path: <>\r\n")
    dsn = parse(stored)
    assert dsn["From"] == "Mail Delivery System <MAILER-DAEMON@mail.example.test>"
    assert dsn["To"].addresses[0].addr_spec == "alice@example.test"
    assert dsn["Subject"] == "Undelivered mail returned to sender"
    assert dsn["Auto-Submitted"] == "auto-replied"
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    parts = [part.get_content_type() for part in dsn.iter_parts()]
    assert parts == ["text/plain", "message/delivery-status", "text/rfc822-headers"]
    explanation = next(dsn.iter_parts()).get_content()
    assert "<bob@remote.test>: host mx.remote.test said: 550 5.1.1 No such user bob" in explanation
    per_message, per_recipient = status_blocks(dsn)
    assert per_message["Reporting-MTA"] == "dns; mail.example.test"
    assert per_message["Original-Envelope-Id"] == "QQ314159"
    assert "Arrival-Date" in per_message
    assert per_recipient["Original-Recipient"] == "rfc822; bob@remote.test"
    assert per_recipient["Final-Recipient"] == "rfc822; bob@remote.test"
    assert per_recipient["Action"] == "failed"
    assert per_recipient["Status"] == "5.1.1"
    assert per_recipient["Remote-MTA"] == "dns; mx.remote.test"
    assert per_recipient["Diagnostic-Code"] == "smtp; 550 5.1.1 No such user bob"
    assert "Last-Attempt-Date" in per_recipient
    headers = list(dsn.iter_parts())[2].get_payload()
    assert "Message-ID: <orig@example.test>" in str(headers)
    assert "The body." not in stored.decode()  # RET=HDRS: the header only


async def test_ret_full_returns_the_whole_message(world):
    peer = await world.peer("127.0.0.8", refuse={"bob@remote.test": "550 5.1.1 No such user"})
    await world.enqueue("bob@remote.test")
    async with running(world.manager(port=peer.port)) as manager:
        await manager.flush()
        await manager.flush()
    [stored] = await world.inbox("alice@example.test")
    returned = list(parse(stored).iter_parts())[2]
    assert returned.get_content_type() == "message/rfc822"
    assert b"Hello Bob." in stored


async def test_notify_never_and_null_sender_get_no_dsn(world):
    peer = await world.peer("127.0.0.8", refuse={"bob@remote.test": "550 5.1.1 No such user"})
    await world.enqueue("bob@remote.test", notify=("NEVER",))
    await world.enqueue("bob@remote.test", mail_from="")  # a bounce: never a bounce of it
    async with running(world.manager(port=peer.port)) as manager:
        await manager.flush()
        assert await world.store.queue_entries() == []
    assert await world.inbox("alice@example.test") == []


async def test_notify_success_reports_relayed_to_a_server_without_dsn(world):
    peer = await world.peer("127.0.0.8")
    await world.enqueue("bob@remote.test", notify=("SUCCESS",))
    async with running(world.manager(port=peer.port)) as manager:
        await manager.flush()
        await manager.flush()
    assert len(peer.received) == 1
    [stored] = await world.inbox("alice@example.test")
    _, block = status_blocks(parse(stored))
    assert (block["Action"], block["Status"]) == ("relayed", "2.0.0")


async def test_max_age_expiry_bounces_with_4_4_7(world):
    peer = await world.peer("127.0.0.8", data_replies=["451 4.3.0 Busy"] * 3)
    queue_id = await world.enqueue("bob@remote.test")
    async with running(world.manager(port=peer.port, max_age=3600.0)) as manager:
        await manager.flush()
        assert (await world.store.queue_entry(queue_id)).recipients[0].status == "pending"
        world.clock.advance(3601)
        await manager.flush()
        assert await world.store.queue_entry(queue_id) is None
        await manager.flush()
    [stored] = await world.inbox("alice@example.test")
    _, block = status_blocks(parse(stored))
    assert block["Action"] == "failed"
    assert block["Status"] == "4.4.7"
    assert block["Diagnostic-Code"] == "smtp; 451 4.3.0 Busy"


async def test_unreachable_destination_is_retried_not_bounced(world):
    queue_id = await world.enqueue("bob@remote.test")  # nothing listens on 127.0.0.8
    async with running(world.manager(port=1)) as manager:
        await manager.flush()
    [recipient] = (await world.store.queue_entry(queue_id)).recipients
    assert recipient.status == "pending"
    assert recipient.last_error.startswith("4.4.1 cannot connect to mx.remote.test (127.0.0.8:1)")


async def test_a_server_that_never_greets_is_retried_with_4_4_2_not_bounced(world):
    silent = SilentServer()  # takes the connection and says nothing: no 220 greeting
    port = await silent.start("127.0.0.8")
    queue_id = await world.enqueue("bob@remote.test")
    async with running(world.manager(port=port, command_timeout=1.0)) as manager:
        await manager.flush()  # returns once the command timeout has given up on the greeting
        assert silent.connections == 1
        [recipient] = (await world.store.queue_entry(queue_id)).recipients
        assert (recipient.status, recipient.attempts) == ("pending", 1)
        assert recipient.last_error == "4.4.2 mx.remote.test did not answer in 1s"
        assert recipient.next_attempt == pytest.approx(world.clock.now() + 300, abs=5)
        assert await world.inbox("alice@example.test") == []  # deferred, not bounced
        await silent.stop()
        peer = await world.peer("127.0.0.8", port)  # the server is back, on the same port
        world.clock.advance(301)
        await manager.flush()
    assert [m.rcpt_tos for m in peer.received] == [["bob@remote.test"]]
    assert await world.store.queue_entry(queue_id) is None


async def test_a_server_that_never_answers_the_data_is_retried_with_4_4_2_not_bounced(world):
    peer = await world.peer("127.0.0.8", stall_data=True)  # takes the message, no final reply
    queue_id = await world.enqueue("bob@remote.test")
    # The commands have the usual time; only the wait for the end of DATA's reply is short.
    async with running(world.manager(port=peer.port, data_timeout=1.0)) as manager:
        await manager.flush()  # returns once the data timeout has given up on the reply
        assert (peer.stalled, peer.received) == (1, [])  # the whole message went, unanswered
        [recipient] = (await world.store.queue_entry(queue_id)).recipients
        assert (recipient.status, recipient.attempts) == ("pending", 1)
        assert recipient.last_error == "mx.remote.test: 4.4.2 mx.remote.test did not answer in 1s"
        assert recipient.next_attempt == pytest.approx(world.clock.now() + 300, abs=5)
        assert await world.inbox("alice@example.test") == []  # deferred, not bounced
        peer.stall_data = False
        world.clock.advance(301)
        await manager.flush()
    assert [m.rcpt_tos for m in peer.received] == [["bob@remote.test"]]
    assert peer.connections == 2  # the stalled connection was given up, not reused
    assert await world.store.queue_entry(queue_id) is None


async def test_a_held_queue_keeps_mail_until_released(world):
    peer = await world.peer("127.0.0.8")
    queue_id = await world.enqueue("bob@remote.test")
    manager = world.manager(port=peer.port, hold=True)
    async with running(manager):
        await manager.flush()
        assert peer.received == []
        [recipient] = (await world.store.queue_entry(queue_id)).recipients
        assert (recipient.status, recipient.attempts) == ("pending", 0)
        manager.configure(world.settings(port=peer.port), {})  # as a reload does
        await manager.flush()
    assert [m.rcpt_tos for m in peer.received] == [["bob@remote.test"]]
    assert await world.store.queue_entry(queue_id) is None


async def test_expiry_after_no_connection_reports_an_x_local_diagnostic(world):
    await world.enqueue("bob@remote.test")  # nothing listens on 127.0.0.8:1
    async with running(world.manager(port=1, max_age=3600.0)) as manager:
        await manager.flush()
        world.clock.advance(3601)
        await manager.flush()  # expired: the DSN is queued
        await manager.flush()  # and delivered to alice
    [stored] = await world.inbox("alice@example.test")
    _, block = status_blocks(parse(stored))
    assert (block["Action"], block["Status"]) == ("failed", "4.4.7")
    # Not an SMTP reply (there was none): RFC 3464 2.3.6 wants another diagnostic type.
    assert block["Diagnostic-Code"].startswith(
        "X-Local; 4.4.1 cannot connect to mx.remote.test (127.0.0.8:1):"
    )
