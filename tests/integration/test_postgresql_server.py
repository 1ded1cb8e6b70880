"""Whole servers on PostgreSQL (``[storage] backend = "postgresql"``): two nodes, each with a
data directory of its own, share one database. Mail delivered over SMTP to one is read over
IMAP from the other, and an IMAP IDLE on one hears of a delivery made on the other (LISTEN/
NOTIFY, ``store/pg_notify.py``) within the issue's 200 ms."""

from __future__ import annotations

import smtplib
import time

import pytest

from tests.integration.imap_support import PASSWORD, USER, Raw
from tests.integration.imap_support import config as imap_config
from tests.support.smtp import CHECKS_OFF

pytest.importorskip("psycopg")


def storage(url: str, data_dir) -> str:
    return f'[storage]\ndata-dir = "{data_dir}"\nbackend = "postgresql"\nurl = "{url}"\n\n'


@pytest.fixture
def nodes(postgres, tmp_path, start_server, server_cert):
    url = postgres.database()
    smtp = '\n[server.listener.smtp]\nbind = "127.0.0.1:0"\nprotocol = "smtp"\n' + CHECKS_OFF
    a = start_server(storage(url, tmp_path / "a") + imap_config(server_cert, smtp))
    b = start_server(storage(url, tmp_path / "b") + imap_config(server_cert, smtp))
    a.add_account(USER, PASSWORD)  # in the database: B knows the account too
    return a, b


def send(server, subject: str) -> None:
    host, port = server.address("smtp")
    with smtplib.SMTP(host, port, timeout=20) as client:
        client.sendmail(
            "sender@remote.test",
            [USER],
            f"From: sender@remote.test\r\nTo: {USER}\r\nSubject: {subject}\r\n\r\nHello.\r\n",
        )


def test_delivered_on_one_node_read_and_awaited_on_the_other(nodes):
    a, b = nodes
    send(a, "first")
    with Raw(b) as client:
        client.command(f'LOGIN "{USER}" "{PASSWORD}"')
        untagged, done = client.command("SELECT INBOX")
        assert done.startswith(b"t1 OK") and b"* 1 EXISTS" in untagged
        untagged, done = client.command("UID FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert b"Subject: first" in b"".join(untagged)
        client.send(b"t2 IDLE\r\n")
        assert client.line().startswith(b"+ ")
        send(a, "second")  # acknowledged: committed, and notified with the commit
        acknowledged = time.monotonic()
        assert client.line() == b"* 2 EXISTS"
        assert time.monotonic() - acknowledged < 0.2
        client.send(b"DONE\r\n")
        _, done = client.until("t2")
        assert done.startswith(b"t2 OK")


def test_the_kit_gives_each_data_directory_a_database_of_its_own(
    postgres, tmp_path, monkeypatch, start_server
):
    """``--store-backend postgresql`` (stalwart_py/testing/stores.py): a server started again
    on a data directory finds its database; another directory gets another one."""
    from stalwart_py.store.postgresql import PostgresStore
    from stalwart_py.testing import stores

    server = postgres.url("postgres")
    monkeypatch.setenv(stores.ENVIRONMENT, server)
    monkeypatch.delenv(stores.TEMPLATE_ENVIRONMENT, raising=False)
    text = '[storage]\ndata-dir = "var"\n\n[server.listener.smtp]\nbind = "127.0.0.1:0"\n'
    first = stores.with_store(text, tmp_path / "a")
    assert 'backend = "postgresql"' in first
    assert stores.with_store(text, tmp_path / "a") == first
    assert stores.with_store(text, tmp_path / "b") != first
    assert stores.with_store(
        text.replace("[storage]", '[storage]\nbackend = "sqlite"'), tmp_path
    ) == (text.replace("[storage]", '[storage]\nbackend = "sqlite"'))
    listener = '[server.listener.smtp]\nbind = "127.0.0.1:0"\nprotocol = "smtp"\n'
    a = start_server(listener, directory=tmp_path / "a")
    b = start_server(listener, directory=tmp_path / "b")
    a.add_account(USER, PASSWORD)
    assert isinstance(a.context.store, PostgresStore) and isinstance(b.context.store, PostgresStore)
    assert b.run(b.context.store.get_account, USER) is None  # a database of its own
