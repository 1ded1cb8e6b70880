"""The queue in a running server: restarts, a crash mid-delivery, the CLI, reload."""

from __future__ import annotations

import signal
from pathlib import Path

import anyio
import pytest

from protocols.smtp import Smtp
from stalwart_py import cli
from stalwart_py.store import OutboundMessage, QueuedRecipient
from tests.support.mail_peers import Peer, ZoneServer, background_loop
from tests.support.nodes import configured_store
from tests.support.queue_world import MESSAGE
from tests.support.servers import InProcessServer, ServerProcess, write_config

MX_ADDRESS = "127.0.0.13"
SMTP = {"smtp": Smtp}


@pytest.fixture
def outside():
    """DNS and a receiving server in a thread of their own: they outlive server restarts."""
    with background_loop() as portal:
        zone = ZoneServer({"remote.test": [("MX", "10 mx.remote.test.")]})
        zone.add("mx.remote.test", "A", MX_ADDRESS)
        portal.call(zone.start)
        peer = Peer()
        portal.call(peer.start, MX_ADDRESS)
        yield portal, zone, peer
        portal.call(peer.stop)
        portal.call(zone.close)


def config_text(zone: ZoneServer, peer: Peer, queue: str = "") -> str:
    """``queue``: more keys of the [queue] table."""
    return f"""
[server]
hostname = "mail.example.test"
shutdown-timeout = "1s"

[queue]
port = {peer.port}
retry = ["1h"]
command-timeout = "20s"
data-timeout = "20s"
{queue}

[queue.dns]
nameservers = ["127.0.0.1:{zone.port}"]

[server.listener.smtp]  # a server serves something (what the queue does needs no listener)
bind = "127.0.0.1:0"
protocol = "smtp"
"""


def enqueue_offline(config: Path, *recipients: str) -> int:
    """Queue MESSAGE as a command would, with no server running: into the store (either
    backend) of the configuration file ``config``."""

    async def main() -> int:
        async with configured_store(config) as store:
            message = OutboundMessage(
                "alice@example.test", tuple(QueuedRecipient(r) for r in recipients)
            )
            return await store.enqueue(MESSAGE, message)

    return anyio.run(main)


def run_cli(capsys, path, *args: str) -> tuple[int, str]:
    code = cli.main([*args, "--config", str(path)])
    out, err = capsys.readouterr()
    return code, out + err


def test_messages_survive_a_restart_and_queue_retry(tmp_path, outside, capsys):
    portal, zone, peer = outside
    portal.call(peer.stop)  # the MX is down for the first run
    path = write_config(tmp_path, config_text(zone, peer))
    with InProcessServer(path, SMTP) as server:
        queue_id = enqueue_offline_in(server, "bob@remote.test")
        server.run(server.context.queue.flush)
        entry = server.run(server.context.store.queue_entry, queue_id)
        assert entry.recipients[0].attempts == 1
    code, out = run_cli(capsys, path, "queue", "list")
    assert code == 0
    assert "alice@example.test\t1 pending" in out
    code, out = run_cli(capsys, path, "queue", "show", str(queue_id))
    assert "<bob@remote.test>\tpending\t1 attempt(s)" in out
    assert "last error: 4.4.1 cannot connect to mx.remote.test" in out
    portal.call(peer.start, MX_ADDRESS, peer.port)
    assert run_cli(capsys, path, "queue", "retry")[1] == "1 recipient(s) due now\n"
    with InProcessServer(path, SMTP) as server:
        [message] = peer.wait_for(1)
        assert message.rcpt_tos == ["bob@remote.test"]
        server.run(server.context.queue.flush)
    code, out = run_cli(capsys, path, "queue", "list")
    assert out == "0 message(s) queued\n"


def enqueue_offline_in(server: InProcessServer, *recipients: str) -> int:
    message = OutboundMessage("alice@example.test", tuple(QueuedRecipient(r) for r in recipients))
    return server.run(server.context.store.enqueue, MESSAGE, message)


def test_a_crash_while_delivering_loses_nothing(tmp_path, outside):
    """The killed process's lease on the recipient is ended by the next start on SQLite (one
    runner per data directory); on PostgreSQL it lapses (``lease-time``, short here), as
    another process or node of the cluster may still run (docs/postgresql.md)."""
    _portal, zone, peer = outside
    peer.stall_data = True
    leases = 'lease-time = "3s"\npoll-interval = "1s"'
    path = write_config(tmp_path, config_text(zone, peer, leases))
    enqueue_offline(path, "bob@remote.test")
    with ServerProcess(path) as process:
        peer.wait_stalled()  # the message is on the wire, its DATA not yet answered
        process.signal(signal.SIGKILL)
        process.wait_exit()
    peer.stall_data = False
    with ServerProcess(path):
        [message] = peer.wait_for(1)
    assert message.rcpt_tos == ["bob@remote.test"]


def test_queue_delete_and_unknown_ids(tmp_path, outside, capsys):
    _portal, zone, peer = outside
    path = write_config(tmp_path, config_text(zone, peer))
    queue_id = enqueue_offline(path, "bob@remote.test")
    assert run_cli(capsys, path, "queue", "delete", str(queue_id)) == (0, f"deleted {queue_id}\n")
    code, out = run_cli(capsys, path, "queue", "delete", str(queue_id))
    assert (code, out) == (1, f"stalwart-py: no queued message {queue_id}\n")
    code, out = run_cli(capsys, path, "queue", "show", "999")
    assert (code, out) == (1, "stalwart-py: no queued message 999\n")
    code, out = run_cli(capsys, path, "queue", "retry", "999")
    assert (code, out) == (1, "stalwart-py: no queued message 999 with pending recipients\n")


def test_dkim_generate_prints_the_record_and_signs(tmp_path, outside, capsys):
    _portal, zone, peer = outside
    path = write_config(tmp_path, config_text(zone, peer))
    code, out = run_cli(capsys, path, "dkim", "generate", "example.test")
    assert (code, out) == (
        1,
        "stalwart-py: example.test is not a local domain (add it with: stalwart-py domain add)\n",
    )
    assert run_cli(capsys, path, "domain", "add", "example.test")[0] == 0
    code, out = run_cli(
        capsys,
        path,
        "dkim",
        "generate",
        "example.test",
        "--selector",
        "s1",
        "--algorithm",
        "ed25519",
    )
    assert code == 0
    assert "created the key s1 in the store; mail from example.test is signed with it" in out
    assert 's1._domainkey.example.test. IN TXT ( "v=DKIM1; k=ed25519; p=' in out
    assert not (tmp_path / "var" / "dkim").exists()  # in the store, not a file
    code, out = run_cli(capsys, path, "dkim", "list")
    assert out.startswith("example.test\ts1\ted25519-sha256\tstore\n")
    enqueue_offline(path, "bob@remote.test")
    with InProcessServer(path, SMTP):
        [message] = peer.wait_for(1)
    assert message.data.startswith(b"DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;")


def test_reload_applies_new_queue_settings(tmp_path, outside):
    _portal, zone, peer = outside
    path = write_config(tmp_path, config_text(zone, peer))
    with InProcessServer(path, SMTP) as server:
        assert server.context.queue.settings.retry == (3600.0,)
        path.write_text(path.read_text().replace('retry = ["1h"]', 'retry = ["2m", "1h"]'))
        server.reload()
        assert server.context.queue.schedule.intervals == (120.0, 3600.0)
