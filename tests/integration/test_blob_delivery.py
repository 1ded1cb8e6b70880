"""A whole server with its bodies outside the database (``[storage.blob]`` "filesystem", and
"s3" against a real SeaweedFS): mail delivered over SMTP is read back over IMAP byte for byte
(a megabyte message too, whole and by partial fetch), the bodies are in the backend and not in
the database, and the server's own orphan sweep (every 100 ms, no grace period, so it runs
into deliveries in flight) deletes an expunged body and never one being delivered."""

from __future__ import annotations

import hashlib
import re
import smtplib
import sqlite3
import time
import uuid

import pytest

from tests.support.seaweedfs import SeaweedS3
from tests.support.smtp import CHECKS_OFF, PASSWORD, server_base

USER = "bob@example.test"
WAIT = 20.0

pytestmark = pytest.mark.own_blob_backend


def blob_table(request, tmp_path) -> tuple[str, str]:
    """The [storage.blob] table of the test's backend, and a description of where."""
    sweep = 'sweep-interval = "100ms"\ngrace-period = "0s"\n'
    if request.param == "filesystem":
        directory = tmp_path / "bodies"
        return f'[storage.blob]\nbackend = "filesystem"\ndirectory = "{directory}"\n{sweep}', ""
    seaweed: SeaweedS3 = request.getfixturevalue("seaweedfs")
    prefix = f"{uuid.uuid4().hex}/"
    return seaweed.blob_settings("mail", prefix) + sweep, prefix


@pytest.fixture(params=["filesystem", "s3"])
def server(request, tmp_path, start_server, server_cert):
    table, _ = blob_table(request, tmp_path)
    server = start_server(
        server_base(server_cert)
        + CHECKS_OFF
        + """
[server.listener.smtp]
bind = "127.0.0.1:0"
protocol = "smtp"

[server.listener.imap]
bind = "127.0.0.1:0"
protocol = "imap"
imap.auth.allow-plaintext = true
"""
        + table
    )
    server.add_account(USER, PASSWORD)
    return server


def backend_digests(server) -> set[bytes]:
    backend = server.context.store.blob_backend

    async def listing() -> set[bytes]:
        return {item.digest async for batch in backend.list() for item in batch}

    return server.run(listing)


def database_bytes(server) -> int:
    with sqlite3.connect(server.context.store.path) as conn:
        return conn.execute("SELECT coalesce(sum(length(data)), 0) FROM blobs").fetchone()[0]


def fetch(client, uid: bytes, item: str) -> bytes:
    status, data = client.uid("FETCH", uid, f"({item})")
    assert status == "OK", data
    return data[0][1]


def test_smtp_delivery_read_back_over_imap(server):
    small = b"From: a@remote.test\r\nTo: bob@example.test\r\nSubject: hi\r\n\r\nHello.\r\n"
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.:;-_=+!?%&()[]<>\r\n"
    big = b"From: a@remote.test\r\nSubject: big\r\n\r\n" + line * (1024 * 1024 // len(line))
    with server.smtp("smtp") as client:
        for data in (small, big):
            assert client.sendmail("a@remote.test", [USER], data) == {}
    client = server.imap("imap", (USER, PASSWORD))
    try:
        client.select("INBOX")
        _, [uids] = client.uid("SEARCH", "ALL")
        first, second = uids.split()
        stored_small = fetch(client, first, "BODY.PEEK[]")
        stored_big = fetch(client, second, "BODY.PEEK[]")
        assert stored_small.endswith(b"\r\n" + small) and stored_big.endswith(b"\r\n" + big)
        offset = len(stored_big) - len(big) + 500_000
        assert fetch(client, second, f"BODY.PEEK[]<{offset}.1000>") == big[500_000:501_000]
        assert fetch(client, second, "BODY.PEEK[HEADER.FIELDS (SUBJECT)]").startswith(
            b"Subject: big"
        )
        # In the backend under their digests; the database holds none of their bytes.
        digests = {hashlib.sha256(stored).digest() for stored in (stored_small, stored_big)}
        assert digests <= backend_digests(server)
        assert database_bytes(server) == 0
        # Expunged, the big body goes at the next sweep; the small one stays.
        client.uid("STORE", second, "+FLAGS.SILENT", r"(\Deleted)")
        client.expunge()
    finally:
        client.logout()
    big_digest = hashlib.sha256(stored_big).digest()
    deadline = time.monotonic() + WAIT
    while big_digest in backend_digests(server):  # ok: the sweep runs on its own timer
        assert time.monotonic() < deadline, "the expunged body was not swept"
        time.sleep(0.05)  # ok: the sweep runs on its own timer and tells no one
    assert hashlib.sha256(stored_small).digest() in backend_digests(server)


def test_sweep_racing_deliveries_loses_nothing(server):
    """With no grace period, the sweep claims bodies whose transaction has not committed
    yet; their writers stage them again, and every acknowledged message reads back."""
    sent = []
    with server.smtp("smtp") as client:
        for n in range(40):
            data = f"Subject: race {n}\r\nMessage-ID: <{n}@race.test>\r\n\r\nbody {n}\r\n".encode()
            assert client.sendmail("a@remote.test", [USER], data) == {}
            sent.append(data)
    stored = server.messages(USER)
    assert len(stored) == len(sent)
    by_id = {re.search(rb"<(\d+)@race\.test>", s).group(1): s for s in stored}
    for n, data in enumerate(sent):
        assert by_id[str(n).encode()].endswith(b"\r\n" + data)


@pytest.mark.parametrize("server", ["filesystem"], indirect=True)
def test_backend_outage_is_a_temporary_failure_not_a_crash(server):
    """The blob backend failing (here the body directory replaced by a file) is answered as
    a storage failure: SMTP 451 and IMAP NO, the sessions go on, and mail flows again once
    the backend is back."""
    directory = server.context.store.blob_backend.directory
    moved = directory.with_name("bodies-away")
    directory.rename(moved)
    directory.write_text("not a directory")
    data = b"Subject: during the outage\r\n\r\nbody\r\n"
    with server.smtp("smtp") as client:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail("a@remote.test", [USER], data)
        assert refused.value.smtp_code == 451
        imap = server.imap("imap", (USER, PASSWORD))
        try:
            status, answer = imap.append("INBOX", None, None, data)
            assert status == "NO", answer
            assert imap.noop()[0] == "OK"  # the session goes on
        finally:
            imap.logout()
        directory.unlink()
        moved.rename(directory)
        assert client.sendmail("a@remote.test", [USER], data) == {}
    [stored] = server.messages(USER)
    assert stored.endswith(b"\r\n" + data)
