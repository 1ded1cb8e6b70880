"""``stalwart-py migrate``: a SQLite store filled through a real server (SMTP deliveries, IMAP
flags, keywords and expunges, a Sieve script, a queued message) is copied into PostgreSQL; a
server started on the copy shows an IMAP client the same UIDVALIDITY, UIDs, flags, internal
dates and bodies. A target that already holds a store is refused unless ``--force``."""

from __future__ import annotations

import os
import re
import smtplib
import sqlite3
import time
import uuid

import pytest

from stalwart_py.store.model import OutboundMessage, QueuedRecipient
from stalwart_py.store.schema import migrate as migrate_sqlite
from tests.integration.imap_support import PASSWORD, USER, connect, login
from tests.integration.imap_support import config as imap_config
from tests.support.servers import stalwart_cli, write_config
from tests.support.smtp import CHECKS_OFF

psycopg = pytest.importorskip("psycopg")
from stalwart_py.queue.dkim import generate_key, stored_keys  # noqa: E402
from stalwart_py.store import pg_migrate  # noqa: E402  # needs psycopg
from tests.support.dkim_keys import legacy_key_file  # noqa: E402

# Each server here is on the backend the test names: a SQLite source, a PostgreSQL target.
pytestmark = pytest.mark.own_store_backend("moves a SQLite store to PostgreSQL: names both")

SMTP = '\n[server.listener.smtp]\nbind = "127.0.0.1:0"\nprotocol = "smtp"\n' + CHECKS_OFF
SCRIPT = 'require "fileinto";\nif header :contains "subject" "file me" { fileinto "Filed"; }\n'


def storage_sqlite(data_dir) -> str:
    return f'[storage]\ndata-dir = "{data_dir}"\n\n'


def storage_postgresql(url: str, data_dir) -> str:
    return f'[storage]\ndata-dir = "{data_dir}"\nbackend = "postgresql"\nurl = "{url}"\n\n'


def send(server, subject: str, size: int = 0) -> None:
    host, port = server.address("smtp")
    body = ("x" * 76 + "\r\n") * (size // 78) or "Hello.\r\n"
    with smtplib.SMTP(host, port, timeout=20) as client:
        client.sendmail(
            "sender@remote.test",
            [USER],
            f"From: sender@remote.test\r\nTo: {USER}\r\nSubject: {subject}\r\n\r\n{body}",
        )


def fill(server) -> str:
    """Mail with gaps in its UIDs, flags and keywords, a Sieve script, a queued message and
    an app password for IMAP, which it returns."""
    store = server.context.store
    account = server.add_account(USER, PASSWORD)
    _, app_password = server.run(server.context.directory.add_app_password, USER, "phone", ["imap"])
    server.run(store.put_script, account.id, "main", SCRIPT)
    server.run(store.set_active_script, account.id, "main")
    server.run(store.put_script, account.id, "spare", "keep;\n")
    client = login(server)
    try:
        client.create("Archive")
        client.subscribe("Archive")
        client.create("Filed")
        for n in range(1, 9):
            send(server, f"message {n}", size=300_000 if n == 3 else 0)
        send(server, "file me")  # filed by the active script into "Filed"
        client.select("INBOX")
        client.uid("STORE", "2,5", "+FLAGS", r"(\Deleted)")
        client.expunge()  # UIDs 2 and 5 gone: gaps
        client.uid("STORE", "1", "+FLAGS", r"(\Seen \Flagged $Important)")
        client.uid("STORE", "4", "+FLAGS", r"(\Answered project-x)")
        client.uid("COPY", "3,4", "Archive")
    finally:
        client.logout()
    later = time.time() + 86400  # held: the queue leaves it for the test to find
    recipient = QueuedRecipient("far@remote.test", next_attempt=later)
    server.run(
        store.enqueue,
        b"From: alice@example.test\r\nSubject: out\r\n\r\nQueued.\r\n",
        OutboundMessage("alice@example.test", (recipient,)),
    )
    return app_password


def snapshot(
    server, mailboxes: tuple[str, ...] = ("INBOX", "Archive", "Filed")
) -> dict[str, tuple[bytes, list[bytes]]]:
    """Per mailbox: its UIDVALIDITY and, per message, UID, FLAGS, INTERNALDATE and body."""
    client = login(server)
    try:
        seen = {}
        for name in mailboxes:
            typ, _ = client.select(name, readonly=True)
            assert typ == "OK", name
            uidvalidity = client.response("UIDVALIDITY")[1][0]
            typ, data = client.uid("FETCH", "1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
            assert typ == "OK", data
            parts = [p for item in data for p in (item if isinstance(item, tuple) else (item,))]
            seen[name] = (uidvalidity, [part for part in parts if part != b")"])
        typ, data = client.lsub('""', "*")
        seen["subscribed"] = (b"", sorted(data))
        return seen
    finally:
        client.logout()


def test_a_filled_sqlite_store_moves_to_postgresql_unchanged(
    tmp_path, postgres, start_server, server_cert
):
    source = start_server(
        storage_sqlite(tmp_path / "data") + imap_config(server_cert, SMTP),
        directory=tmp_path / "sqlite",
    )
    app_password = fill(source)
    before = snapshot(source)
    assert re.search(rb"UID 4 FLAGS \(\\Answered project-x\)", b" ".join(before["INBOX"][1]))
    assert len(before["Filed"][1]) == 2  # one message: its fetch line and its body

    # a DKIM key file of an earlier version: migrate imports it, and it comes along
    key, _ = legacy_key_file(tmp_path / "data", "example.test", "moved", algorithm="ed25519")
    url = postgres.database()
    moved = stalwart_cli(tmp_path / "sqlite" / "config.toml", "migrate", "--to", url)
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert "verified" in moved.stdout
    assert re.search(r"dkim_keys\s+1 rows", moved.stdout)
    assert re.search(r"messages\s+9 rows", moved.stdout)  # 7 in INBOX, 2 in Archive... and Filed
    assert re.search(r"bodies verified\s+\d+ \(\d{6,} bytes", moved.stdout)

    target = start_server(
        storage_postgresql(url, tmp_path / "node") + imap_config(server_cert, SMTP),
        directory=tmp_path / "postgresql",
    )
    assert snapshot(target) == before
    store = target.context.store
    [stored] = target.run(stored_keys, store)
    assert (stored.selector, stored.public_record) == ("moved", key.public_record)
    account = target.run(store.get_account, USER)
    active = target.run(store.active_script, account.id)
    assert active is not None and active.name == "main" and active.body == SCRIPT
    assert sorted(s.name for s in target.run(store.list_scripts, account.id)) == ["main", "spare"]
    (entry,) = target.run(store.queue_entries)
    assert [r.address for r in entry.recipients] == ["far@remote.test"]
    with connect(target) as client:  # the app password came along, hash and all
        assert client.login(USER, app_password)[0] == "OK"
    # The identities continue after the copied ids: a new account collides with none.
    target.add_account("bob@example.test", PASSWORD)
    # New mail on the copy continues after the copied UIDs, in the same UIDVALIDITY.
    send(target, "after the move")
    client = login(target)
    try:
        client.select("INBOX")
        assert client.response("UIDVALIDITY")[1][0] == before["INBOX"][0]
        _, data = client.uid("SEARCH", "ALL")
        assert data[0].split()[-1] == b"9"  # 1..8 from SMTP (2 and 5 expunged), then 9
        assert client.create("After")[0] == "OK"
    finally:
        client.logout()
    # ...and the next bodies get ids after every copied one (the blob id sequence was
    # advanced past them: a copied id given again would refuse the delivery).
    given, largest = target.run(
        store._engine.read,
        lambda conn: conn.execute(
            "SELECT last_value, (SELECT max(id) FROM blobs) FROM blob_ids"
        ).fetchone(),
    )
    assert given >= largest  # nextval gives more

    again = stalwart_cli(tmp_path / "sqlite" / "config.toml", "migrate", "--to", url)
    assert again.returncode == 1
    assert "target database is not empty" in again.stderr
    forced = stalwart_cli(tmp_path / "sqlite" / "config.toml", "migrate", "--to", url, "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr

    # What verify finds when the target differs: a row missing, a body changed (in the
    # database; under --blob-backend s3 the bodies are in the bucket, and the --blob-to test
    # reads them back from there).
    in_database = os.environ.get("STALWART__STORAGE__BLOB__BACKEND", "database") == "database"
    source_db = sqlite3.connect(tmp_path / "data" / "stalwart.sqlite3")
    target_db = pg_migrate.open_target(url, None)
    try:
        target_db.raw.execute("UPDATE blobs SET data = data || 'x' WHERE id = 3")
        target_db.raw.execute("DELETE FROM expunged WHERE uid = 5")
        target_db.raw.execute("UPDATE dkim_keys SET created = created + 1")
        summary = pg_migrate.Summary()
        pg_migrate.verify(source_db, target_db, summary)
    finally:
        target_db.close()
        source_db.close()
    assert summary.mismatches[0] == "expunged: 2 rows in SQLite, 1 in PostgreSQL"
    assert summary.mismatches[1] == "dkim_keys: the rows differ from SQLite's"
    if in_database:
        assert summary.mismatches[2:] == ["body 3: SHA-256 differs"]
    else:  # verify was given no backend to read the bodies from
        assert all("[storage.blob] names none" in m for m in summary.mismatches[2:])


@pytest.fixture(params=["filesystem", "s3"])
def blob_destination(request, tmp_path) -> tuple[str, str]:
    """``--blob-to`` and the [storage.blob] table naming it."""
    if request.param == "filesystem":
        return (
            "filesystem",
            f'[storage.blob]\nbackend = "filesystem"\ndirectory = "{tmp_path / "bodies"}"\n\n',
        )
    seaweed = request.getfixturevalue("seaweedfs")
    return "s3", seaweed.blob_settings("mail", f"{uuid.uuid4().hex}/") + "\n"


@pytest.mark.own_blob_backend
def test_bodies_move_to_a_blob_backend_on_the_way(
    tmp_path, postgres, start_server, server_cert, blob_destination
):
    source = start_server(
        storage_sqlite(tmp_path / "data") + imap_config(server_cert, SMTP),
        directory=tmp_path / "sqlite",
    )
    source.add_account(USER, PASSWORD)
    for n in range(1, 4):
        send(source, f"message {n}", size=200_000 if n == 2 else 0)
    before = snapshot(source, ("INBOX",))
    backend, blobs = blob_destination
    (tmp_path / "moving").mkdir()
    moving = write_config(tmp_path / "moving", storage_sqlite(tmp_path / "data") + blobs)
    url = postgres.database()

    refused = stalwart_cli(
        tmp_path / "sqlite" / "config.toml", "migrate", "--to", url, "--blob-to", backend
    )
    assert refused.returncode == 2 and f'backend = "{backend}"' in refused.stderr
    moved = stalwart_cli(moving, "migrate", "--to", url, "--blob-to", backend)
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert re.search(r"bodies verified\s+\d+ \(\d{6,} bytes", moved.stdout)
    with psycopg.connect(url) as conn:
        assert (
            conn.execute(
                "SELECT count(*), sum(length(data)) FROM blobs WHERE external = 1"
            ).fetchone()[1]
            == 0
        )
        assert conn.execute("SELECT count(*) FROM blobs WHERE external = 0").fetchone() == (0,)

    target = start_server(
        storage_postgresql(url, tmp_path / "node") + blobs + imap_config(server_cert, SMTP),
        directory=tmp_path / "postgresql",
    )
    assert snapshot(target, ("INBOX",)) == before


def test_every_table_is_copied_or_listed_as_not_copied(tmp_path):
    conn = sqlite3.connect(tmp_path / "store.sqlite3", isolation_level=None)
    migrate_sqlite(conn)
    tables = pg_migrate.sqlite_tables(conn)
    pg_migrate.check_tables(tables)  # a new table in neither list fails here
    assert set(pg_migrate.COPIED) <= set(tables), "a copied table the schema no longer has"
    conn.execute("CREATE TABLE new_feature (x INTEGER)")
    with pytest.raises(pg_migrate.MigrationError, match="new_feature"):
        pg_migrate.check_tables(pg_migrate.sqlite_tables(conn))


def test_a_postgresql_backup_restores_into_another_database(
    tmp_path, postgres, start_server, server_cert, ca
):
    """``stalwart-py backup`` on PostgreSQL (one snapshot, written as a SQLite store) and back
    with ``migrate --to``: the same mail, UIDs and flags, app password, DKIM key, certificate."""
    url = postgres.database()
    source = start_server(
        storage_postgresql(url, tmp_path / "node") + imap_config(server_cert, SMTP),
        directory=tmp_path / "pg",
    )
    app_password = fill(source)
    key = source.run(generate_key, source.context.store, "example.test")
    issued = ca.issue_cert("mail.example.test")
    chain = b"".join(blob.bytes() for blob in issued.cert_chain_pems)
    source.run(source.context.certificates.install, "acme-x", chain, issued.private_key_pem.bytes())
    before = snapshot(source)

    copy = tmp_path / "copy"
    made = stalwart_cli(tmp_path / "pg" / "config.toml", "backup", str(copy))
    assert made.returncode == 0, made.stdout + made.stderr
    assert (copy / "stalwart.sqlite3").stat().st_mode & 0o077 == 0
    (tmp_path / "restore").mkdir()
    restoring = write_config(tmp_path / "restore", storage_sqlite(copy))
    other = postgres.database()
    restored = stalwart_cli(restoring, "migrate", "--to", other)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "verified" in restored.stdout

    target = start_server(
        storage_postgresql(other, tmp_path / "node2") + imap_config(server_cert, SMTP),
        directory=tmp_path / "pg2",
    )
    assert snapshot(target) == before
    with connect(target) as client:
        assert client.login(USER, app_password)[0] == "OK"
    [stored] = target.run(stored_keys, target.context.store)
    assert (stored.selector, stored.public_record) == (key.selector, key.public_record)
    [certificate] = target.run(target.context.store.installed_certificates)
    assert (certificate.id, certificate.chain) == ("acme-x", chain)
    send(target, "after the restore")  # new ids after the restored ones: no collision
