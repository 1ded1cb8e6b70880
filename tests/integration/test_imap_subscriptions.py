"""Subscriptions are names, not mailboxes (RFC 9051 section 6.3.7, RFC 3501 section 6.3.6,
RFC 5258): over real sockets, and the migration that moved the old per-mailbox flag."""

from __future__ import annotations

import sqlite3

import pytest

from stalwart_py.store.model import LocalDelivery
from stalwart_py.store.schema import MIGRATIONS, SCHEMA_VERSION, migrate
from tests.integration.imap_support import USER, Raw, message, start

DEFAULTS = [b"INBOX", b"Archive", b"Drafts", b"Junk", b"Sent", b"Trash"]


@pytest.fixture
def server(start_server, server_cert):
    return start(start_server, server_cert)


def names(lines: list[bytes]) -> list[bytes]:
    return [line.rsplit(b" ", 1)[1].strip(b'"') for line in lines]


def test_default_mailboxes_start_subscribed_and_create_subscribes_nothing(server):
    with Raw(server) as raw:
        raw.login()
        assert names(raw.command('LSUB "" *')[0]) == DEFAULTS
        raw.command("CREATE Projects")
        assert names(raw.command('LSUB "" *')[0]) == DEFAULTS
        assert raw.command('LIST (SUBSCRIBED) "" Projects') == ([], b"t1 OK LIST completed")


def test_delete_and_rename_leave_subscriptions_alone(server):
    with Raw(server) as raw:
        raw.login()
        raw.command("CREATE Old")
        raw.command("CREATE Moving/child")
        assert raw.command("SUBSCRIBE Old")[1] == b"t1 OK SUBSCRIBE completed"
        assert raw.command("SUBSCRIBE Moving/child")[1] == b"t1 OK SUBSCRIBE completed"
        assert raw.command("DELETE Old")[1] == b"t1 OK DELETE completed"
        assert raw.command("RENAME Moving Moved")[1] == b"t1 OK RENAME completed"
        # The names stay subscribed, though no mailbox has them now.
        untagged, _ = raw.command('LIST (SUBSCRIBED) "" *')
        assert b'* LIST (\\NonExistent \\Subscribed) "/" "Old"' in untagged
        assert b'* LIST (\\NonExistent \\Subscribed) "/" "Moving/child"' in untagged
        assert b'* LIST (\\HasNoChildren \\Subscribed) "/" "Moved/child"' not in untagged
        # ... but a plain LIST lists mailboxes only.
        untagged, _ = raw.command('LIST "" *')
        assert b"Old" not in b"".join(untagged) and b"Moving" not in b"".join(untagged)
        assert b'* LIST (\\HasNoChildren) "/" "Moved/child"' in untagged
        untagged, _ = raw.command('LIST "" Moved/child RETURN (SUBSCRIBED)')
        assert untagged == [b'* LIST (\\HasNoChildren) "/" "Moved/child"']
        assert raw.command('LSUB "" Old')[0] == [b'* LSUB () "/" "Old"']
        # UNSUBSCRIBE takes the name of a deleted mailbox, and one not subscribed.
        assert raw.command("UNSUBSCRIBE Old")[1] == b"t1 OK UNSUBSCRIBE completed"
        assert raw.command("UNSUBSCRIBE Old")[1] == b"t1 OK UNSUBSCRIBE completed"
        assert raw.command('LIST (SUBSCRIBED) "" Old')[0] == []
        # SUBSCRIBE checks the name (RFC 9051 allows it; Dovecot does it too).
        assert raw.command("SUBSCRIBE Old")[1] == b"t1 NO [NONEXISTENT] No mailbox Old"
        # Renaming INBOX moves its messages; INBOX itself stays, and stays subscribed.
        assert raw.command("RENAME INBOX Saved")[1] == b"t1 OK RENAME completed"
        assert b"INBOX" in names(raw.command('LSUB "" *')[0])
        assert b"Saved" not in names(raw.command('LSUB "" *')[0])


def test_lsub_percent_returns_an_unsubscribed_parent_as_noselect(server):
    with Raw(server) as raw:
        raw.login()
        raw.command("CREATE foo/bar/baz")
        raw.command("SUBSCRIBE foo/bar/baz")
        raw.command("CREATE Top/sub")
        raw.command("SUBSCRIBE Top")
        raw.command("SUBSCRIBE Top/sub")
        # RFC 3501 section 6.3.9: "%" stops at foo, which is listed \Noselect.
        assert raw.command('LSUB "" %')[0] == [
            b'* LSUB () "/" "INBOX"',
            b'* LSUB (\\Archive) "/" "Archive"',
            b'* LSUB (\\Drafts) "/" "Drafts"',
            b'* LSUB (\\Junk) "/" "Junk"',
            b'* LSUB (\\Sent) "/" "Sent"',
            b'* LSUB () "/" "Top"',
            b'* LSUB (\\Trash) "/" "Trash"',
            b'* LSUB (\\Noselect) "/" "foo"',
        ]
        assert raw.command('LSUB "" foo/%')[0] == [b'* LSUB (\\Noselect) "/" "foo/bar"']
        assert raw.command('LSUB "" foo/*')[0] == [b'* LSUB () "/" "foo/bar/baz"']
        assert raw.command('LSUB "" Top/%')[0] == [b'* LSUB () "/" "Top/sub"']
        # A subscribed child whose mailbox is gone still makes its parent show.
        raw.command("DELETE foo/bar/baz")
        assert raw.command('LSUB "" f%')[0] == [b'* LSUB (\\Noselect) "/" "foo"']


def test_recursivematch_gives_childinfo(server):
    with Raw(server) as raw:
        raw.login()
        raw.command("CREATE Lists/python")
        raw.command("SUBSCRIBE Lists/python")
        raw.command("CREATE Gone/child")
        raw.command("SUBSCRIBE Gone/child")
        raw.command("DELETE Gone/child")
        raw.command("DELETE Gone")
        untagged, _ = raw.command('LIST (SUBSCRIBED RECURSIVEMATCH) "" %')
        assert b'* LIST (\\HasChildren) "/" "Lists" ("CHILDINFO" ("SUBSCRIBED"))' in untagged
        assert b'* LIST (\\NonExistent) "/" "Gone" ("CHILDINFO" ("SUBSCRIBED"))' in untagged
        assert b'* LIST (\\HasNoChildren \\Subscribed) "/" "INBOX"' in untagged
        # Without RECURSIVEMATCH the parents are not listed at all.
        untagged, _ = raw.command('LIST (SUBSCRIBED) "" %')
        assert not any(b'"Lists"' in line or b'"Gone"' in line for line in untagged)


def test_mailboxes_that_delivery_creates_start_subscribed(server):
    async def deliver() -> None:
        store = server.context.store
        account = await store.get_account(USER)
        assert account is not None
        outcome = await store.deliver(
            message("filed"), [LocalDelivery(account.id, "Lists/new", create=True)]
        )
        assert outcome[0].uid == 1

    server.run(deliver)
    with Raw(server) as raw:
        raw.login()
        untagged, _ = raw.command('LIST (SUBSCRIBED) "" Lists/new')
        assert untagged == [b'* LIST (\\HasNoChildren \\Subscribed) "/" "Lists/new"']


def test_the_migration_moves_the_per_mailbox_flag_to_names(tmp_path):
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    version = MIGRATIONS.index(_v4())
    for step in MIGRATIONS[:version]:  # a database as the release before had it
        step(conn)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.execute("INSERT INTO domains VALUES ('example.test', 0)")
    conn.execute(
        "INSERT INTO accounts(id, address, domain, secret, created)"
        " VALUES (1, 'a@example.test', 'example.test', 'x', 0)"
    )
    for name, subscribed in (("INBOX", 1), ("Lists", 0), ("Lists/rust", 1)):
        conn.execute(
            "INSERT INTO mailboxes(account_id, name, subscribed, uidvalidity) VALUES (1, ?, ?, 1)",
            (name, subscribed),
        )
    assert migrate(conn) == version
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    rows = conn.execute("SELECT account_id, name FROM subscriptions ORDER BY name").fetchall()
    assert rows == [(1, "INBOX"), (1, "Lists/rust")]
    columns = [row[1] for row in conn.execute("PRAGMA table_info(mailboxes)")]
    assert "subscribed" not in columns
    conn.execute("DELETE FROM accounts WHERE id = 1")  # and they go with the account
    assert conn.execute("SELECT count(*) FROM subscriptions").fetchone() == (0,)
    conn.close()


def _v4():
    from stalwart_py.store import schema

    return schema._v5_subscriptions
