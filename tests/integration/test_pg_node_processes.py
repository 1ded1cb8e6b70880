"""Two nodes as two real server processes (``stalwart-py serve``, each with its own ports and
data directory) on one PostgreSQL database, with the message bodies in one S3 store (the
session's SeaweedFS): what issue 18 asks of nodes that share nothing but those two.

- A flag changed on B is seen on A: by a session that has the mailbox selected (NOTIFY from
  B's commit, ``store/pg_notify.py``), and by a client that comes back later and resyncs by
  MODSEQ (CONDSTORE ``CHANGEDSINCE``, QRESYNC), with the MODSEQ that B's change got.
- A delivery on A wakes an IDLE on B (the in-process pair in test_postgresql_server.py does it
  within 200 ms; here across processes, and the body is read back on B from S3).
- A password changed on A (HTTP API) is refused on B at the very next login, although B had
  just verified and cached the old one: B's authentication cache is keyed on the hash stored
  now, which it reads from the database at every login (``stalwart_py/auth_cache.py``).
- Failed logins on A count on B: the login throttle's counts are in the database
  (``stalwart_py/cluster_throttle.py``), so three wrong passwords on A block the right one on B.
- The SMTP rate limits for strangers hold for the cluster: a client whose connections and
  messages alternate between A and B is refused at the limit once, not at twice the limit
  (each bucket is a row of the database, ``store/pg_rates.py``).
"""

from __future__ import annotations

import contextlib
import os
import re
import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.imap_support import Raw
from tests.support.nodes import change_password, node_config, node_pair
from tests.support.servers import WAIT, ServerProcess
from tests.support.smtp import CHECKS_OFF

pytest.importorskip("psycopg")
pytestmark = [pytest.mark.own_blob_backend, pytest.mark.own_store_backend("nodes of their own")]

PASSWORD = "correct horse battery"
# an account per test: the nodes are the module's, started once
FLAGS, IDLE, CHANGED = "alice@example.test", "carol@example.test", "dave@example.test"
GUESSED = "erin@example.test"
ADMIN, ADMIN_PASSWORD = "admin@example.test", "admin password of the test"
NEW_PASSWORD = "a new and different one"

THROTTLE = """
[directory.throttle]
failure-delay = "10ms"
max-failures-per-address-and-account = 3
block-time = "10m"
"""
RATES = "smtp.rate.connections-per-ip = 4\nsmtp.rate.messages-per-ip = 3"


@contextlib.contextmanager
def running_nodes(
    postgres, seaweedfs, tmp_path: Path, server: str = ""
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Nodes a and b, running (``server``: more keys of their [server] table), their bodies
    in one prefix of the session's S3 store; the accounts and an administrator made with the
    CLI on a."""

    def node(name: str) -> str:
        return node_config(
            ("smtp", "imap", "http", "mx"),
            hostname=f"{name}.example.test",
            server=server,
            listener_keys={"mx": RATES},
            tables=THROTTLE + CHECKS_OFF,
        )

    blob = (
        f'backend = "s3"\nendpoint = "{seaweedfs.endpoint}"\nbucket = "mail"\n'
        f'access-key = "{seaweedfs.access_key}"\nsecret-key = "{seaweedfs.secret_key}"\n'
        f'prefix = "{os.urandom(6).hex()}/"'
    )
    accounts = [(user, PASSWORD, False) for user in (FLAGS, IDLE, CHANGED, GUESSED)]
    accounts.append((ADMIN, ADMIN_PASSWORD, True))
    with node_pair(postgres.database(), tmp_path, node, blob=blob, accounts=accounts) as pair:
        yield pair


@pytest.fixture(scope="module")
def nodes(postgres, seaweedfs, tmp_path_factory) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    with running_nodes(postgres, seaweedfs, tmp_path_factory.mktemp("nodes")) as pair:
        yield pair


def deliver(node: ServerProcess, user: str, subject: str) -> None:
    with smtplib.SMTP(*node.address("smtp"), timeout=WAIT) as client:
        client.sendmail(
            "bob@remote.test",
            [user],
            f"From: bob@remote.test\r\nTo: {user}\r\nSubject: {subject}\r\n\r\nHello.\r\n",
        )


def session(node: ServerProcess, user: str) -> Raw:
    raw = Raw(node.address("imap"))
    _, tagged = raw.command(f'LOGIN "{user}" "{PASSWORD}"', "login")
    assert tagged.startswith(b"login OK"), tagged
    return raw


def login_ok(node: ServerProcess, user: str, password: str) -> bool:
    with Raw(node.address("imap")) as raw:
        _, tagged = raw.command(f'LOGIN "{user}" "{password}"', "login")
        return tagged.startswith(b"login OK")


def highest_modseq(lines: list[bytes]) -> int:
    found = [re.search(rb"HIGHESTMODSEQ (\d+)", line) for line in lines]
    return int(next(match for match in found if match).group(1))


def test_a_flag_changed_on_b_is_seen_by_a_condstore_resync_on_a(nodes):
    a, b = nodes
    deliver(a, FLAGS, "one")
    deliver(b, FLAGS, "two")
    with session(a, FLAGS) as watcher:
        untagged, _ = watcher.command("SELECT INBOX (CONDSTORE)")
        assert b"* 2 EXISTS" in untagged
        before = highest_modseq(untagged)
        uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", b"".join(untagged)).group(1))
        # the session that has INBOX selected on A hears of it (B's commit, notified): in
        # IDLE, as soon as A's listener has the notification (a NOOP could come before it)
        watcher.send(b"i1 IDLE\r\n")
        assert watcher.line().startswith(b"+ ")
        with session(b, FLAGS) as writer:
            writer.command("SELECT INBOX")
            untagged, tagged = writer.command("UID STORE 1 +FLAGS (\\Flagged)")
            assert tagged.startswith(b"t1 OK"), tagged
        fetch = watcher.line()
        watcher.send(b"DONE\r\n")
        assert watcher.until("i1")[1].startswith(b"i1 OK")
        modseq = int(re.search(rb"MODSEQ \((\d+)\)", fetch).group(1))
        assert b"\\Flagged" in fetch and modseq > before
    # a client that comes back to A later asks what changed since the MODSEQ it knew
    with session(a, FLAGS) as client:
        untagged, _ = client.command("SELECT INBOX (CONDSTORE)")
        assert highest_modseq(untagged) == modseq
        untagged, tagged = client.command(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {before})")
        assert tagged.startswith(b"t1 OK")
        assert untagged == [b"* 1 FETCH (UID 1 FLAGS (\\Flagged) MODSEQ (%d))" % modseq]
        client.command("UNSELECT")
        client.command("ENABLE QRESYNC")
        untagged, tagged = client.command(f"SELECT INBOX (QRESYNC ({uidvalidity} {before}))")
        assert tagged.startswith(b"t1 OK"), tagged
        assert b"* 1 FETCH (UID 1 FLAGS (\\Flagged) MODSEQ (%d))" % modseq in untagged


def test_a_delivery_on_a_wakes_an_idle_on_b_which_reads_the_body(nodes):
    a, b = nodes
    with session(b, IDLE) as idler:
        idler.command("SELECT INBOX")
        idler.send(b"i1 IDLE\r\n")
        assert idler.line().startswith(b"+ ")
        deliver(a, IDLE, "while idle")  # acknowledged: committed and notified
        assert idler.line() == b"* 1 EXISTS"
        idler.send(b"DONE\r\n")
        _, tagged = idler.until("i1")
        assert tagged.startswith(b"i1 OK")
        untagged, _ = idler.command("UID FETCH 1 (BODY.PEEK[])")
        assert b"Subject: while idle" in b"".join(untagged)  # from S3, written by A


def test_a_password_changed_on_a_is_refused_on_b_at_the_next_login(nodes):
    a, b = nodes
    assert login_ok(b, CHANGED, PASSWORD) and login_ok(
        b, CHANGED, PASSWORD
    )  # verified, then from B's cache
    change_password(a, (ADMIN, ADMIN_PASSWORD), CHANGED, NEW_PASSWORD)
    assert not login_ok(b, CHANGED, PASSWORD)
    assert login_ok(b, CHANGED, NEW_PASSWORD)


def test_failed_logins_on_a_block_the_client_on_b(nodes):
    a, b = nodes
    for _ in range(3):  # the limit for an address and account
        assert not login_ok(a, GUESSED, "a wrong guess")
    with Raw(b.address("imap")) as raw:
        _, tagged = raw.command(f'LOGIN "{GUESSED}" "{PASSWORD}"', "login")
    assert tagged.startswith(b"login NO"), tagged  # the right password, refused unchecked
    assert f"reason=throttled user=<{GUESSED}>" in b.log()


def test_a_client_spread_over_both_nodes_gets_the_smtp_rates_once_for_the_cluster(nodes):
    """Four connections and three messages a minute (``RATES``) from 127.0.0.1 on the MX
    listeners, whichever node takes them: with a bucket per node, a client alternating
    between the two would get twice as many before either refused."""
    a, b = nodes
    sessions = [smtplib.SMTP(*node.address("mx"), timeout=WAIT) for node in (a, b, a, b)]
    for node in (a, b):  # the fifth of the minute, on either node
        with pytest.raises(smtplib.SMTPConnectError) as refused:
            smtplib.SMTP(*node.address("mx"), timeout=WAIT)
        assert refused.value.smtp_code == 421
        assert refused.value.smtp_error.startswith(b"4.7.0 "), refused.value.smtp_error
        assert b"Too many connections from your address, try again in" in refused.value.smtp_error
    for client in sessions:
        assert client.ehlo()[0] == 250
    on_a, on_b, again_a, again_b = sessions
    for client in (on_a, on_b, again_a):  # three messages, over both nodes
        assert client.mail("bob@remote.test")[0] == 250
        client.rset()
    for client in (again_b, on_a):  # the fourth, on either node
        code, text = client.mail("bob@remote.test")
        assert code == 451 and text.startswith(b"4.7.0 Too many messages from your address"), text
    for client in sessions:
        client.quit()
    for node in (a, b):
        assert "connection rate limit (4 per minute) reached by 127.0.0.1" in node.log()
        assert "message rate limit (3 per minute) reached by 127.0.0.1" in node.log()
