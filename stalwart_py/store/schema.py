"""The SQLite schema and its migrations.

``PRAGMA user_version`` holds the schema version. Opening a database applies, in one
transaction, every migration it has not had yet; a database from a newer version is refused
rather than guessed at. A migration is appended to ``MIGRATIONS``, never edited once released.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from stalwart_py.store.model import SchemaTooNew

V1 = """
CREATE TABLE domains (
    name TEXT PRIMARY KEY COLLATE NOCASE,
    created REAL NOT NULL
) WITHOUT ROWID;

CREATE TABLE accounts (
    id INTEGER PRIMARY KEY,
    address TEXT NOT NULL UNIQUE COLLATE NOCASE,
    domain TEXT NOT NULL COLLATE NOCASE REFERENCES domains(name),
    secret TEXT NOT NULL,
    scram TEXT,
    is_admin INTEGER NOT NULL DEFAULT 0,
    quota_bytes INTEGER,
    quota_messages INTEGER,
    used_bytes INTEGER NOT NULL DEFAULT 0,
    used_messages INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
);

CREATE TABLE aliases (
    address TEXT NOT NULL COLLATE NOCASE,
    target TEXT NOT NULL COLLATE NOCASE,
    PRIMARY KEY (address, target)
) WITHOUT ROWID;
CREATE INDEX aliases_by_target ON aliases(target);

CREATE TABLE mailboxes (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    special_use TEXT,
    subscribed INTEGER NOT NULL DEFAULT 1,
    uidvalidity INTEGER NOT NULL,
    uidnext INTEGER NOT NULL DEFAULT 1,
    highestmodseq INTEGER NOT NULL DEFAULT 1,
    UNIQUE (account_id, name)
);

-- Message bodies, content-addressed: a message delivered to many mailboxes is stored once.
-- ``structure`` is the stalwart_py.mime JSON of the parsed message, computed at delivery.
CREATE TABLE blobs (
    id INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    refs INTEGER NOT NULL,
    structure TEXT NOT NULL,
    data BLOB NOT NULL
);

CREATE TABLE messages (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid INTEGER NOT NULL,
    modseq INTEGER NOT NULL,
    flags INTEGER NOT NULL DEFAULT 0,
    keywords TEXT NOT NULL DEFAULT '',
    internaldate REAL NOT NULL,
    size INTEGER NOT NULL,
    blob_id INTEGER NOT NULL REFERENCES blobs(id),
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX messages_by_modseq ON messages(mailbox_id, modseq);

-- Expunged UIDs with the MODSEQ of their expunge, for QRESYNC's VANISHED (RFC 7162).
CREATE TABLE expunged (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid INTEGER NOT NULL,
    modseq INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;

CREATE TABLE sieve_scripts (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, name)
) WITHOUT ROWID;

CREATE TABLE queue_messages (
    id INTEGER PRIMARY KEY,
    blob_id INTEGER NOT NULL REFERENCES blobs(id),
    mail_from TEXT NOT NULL,
    ret TEXT,
    envid TEXT,
    source TEXT NOT NULL,
    smtputf8 INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
);

CREATE TABLE queue_recipients (
    id INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL REFERENCES queue_messages(id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    domain TEXT NOT NULL COLLATE NOCASE,
    orcpt TEXT,
    notify TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL,
    last_error TEXT
);
CREATE INDEX queue_due ON queue_recipients(status, next_attempt);

CREATE TABLE reports (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    received REAL NOT NULL,
    domain TEXT NOT NULL,
    mail_from TEXT NOT NULL,
    summary TEXT NOT NULL,
    blob_id INTEGER REFERENCES blobs(id)
);

CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"""


def _v1(conn: sqlite3.Connection) -> None:
    for statement in V1.split(";"):
        if statement.strip():
            conn.execute(statement)


def _v2_sieve_vacation(conn: sqlite3.Connection) -> None:
    """Vacation replies sent, per account, sender and handle, until their period ends
    (RFC 5230 section 4.2: one reply per sender per period)."""
    conn.execute(
        "CREATE TABLE sieve_vacation ("
        " account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
        " sender TEXT NOT NULL COLLATE NOCASE,"
        " handle TEXT NOT NULL,"
        " expires REAL NOT NULL,"
        " PRIMARY KEY (account_id, sender, handle)"
        ") WITHOUT ROWID"
    )
    conn.execute("CREATE INDEX sieve_vacation_expiry ON sieve_vacation(account_id, expires)")


def _v7_sieve_duplicates(conn: sqlite3.Connection) -> None:
    """Unique IDs the Sieve duplicate test saw, per account, until they expire (RFC 7352):
    ``key`` is a hash of the :handle and the ID; ``created`` orders the oldest for the cap."""
    conn.execute(
        "CREATE TABLE sieve_duplicates ("
        " account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
        " key TEXT NOT NULL,"
        " expires REAL NOT NULL,"
        " created REAL NOT NULL,"
        " PRIMARY KEY (account_id, key)"
        ") WITHOUT ROWID"
    )
    conn.execute("CREATE INDEX sieve_duplicates_expiry ON sieve_duplicates(account_id, expires)")


def _v3_sort_fields(conn: sqlite3.Connection) -> None:
    """What IMAP SORT and THREAD compare, per message body (RFC 5256, RFC 5957), with the
    bodies already stored filled in here (see ``sqlite_sort``)."""
    from stalwart_py.store.sqlite_sort import create_and_backfill

    create_and_backfill(conn)


def _v4_recent(conn: sqlite3.Connection) -> None:
    """\\Recent for IMAP4rev1 sessions (RFC 3501 section 2.3.2): the highest UID of each
    mailbox that some session has claimed. The mail already there counts as claimed: it
    arrived before any session could claim it, and its users have long seen it."""
    conn.execute("ALTER TABLE mailboxes ADD COLUMN recent_uid INTEGER NOT NULL DEFAULT 0")
    conn.execute("UPDATE mailboxes SET recent_uid = uidnext - 1")


def _v5_subscriptions(conn: sqlite3.Connection) -> None:
    """Subscriptions are names, not a flag of a mailbox (RFC 9051 section 6.3.7): a name
    stays subscribed when its mailbox is deleted or renamed. The flags set so far move over."""
    conn.execute(
        "CREATE TABLE subscriptions ("
        " account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
        " name TEXT NOT NULL,"
        " PRIMARY KEY (account_id, name)"
        ") WITHOUT ROWID"
    )
    conn.execute(
        "INSERT INTO subscriptions(account_id, name)"
        " SELECT account_id, name FROM mailboxes WHERE subscribed != 0"
    )
    conn.execute("ALTER TABLE mailboxes DROP COLUMN subscribed")


def _v6_junk(conn: sqlite3.Connection) -> None:
    """The junk classifier's token counts, per account, and what each trained message was
    trained as (see ``sqlite_junk``)."""
    from stalwart_py.store.sqlite_junk import create_tables

    create_tables(conn)


def _v8_sieve_global(conn: sqlite3.Connection) -> None:
    """The administrator's global Sieve scripts, for ``include :global`` (RFC 6609; see
    ``sqlite_sieve_global``)."""
    from stalwart_py.store.sqlite_sieve_global import create_table

    create_table(conn)


def _v9_outbound_tls(conn: sqlite3.Connection) -> None:
    """Outbound TLS: cached MTA-STS policies of destinations and TLS-RPT result counts (see
    ``sqlite_tls``)."""
    from stalwart_py.store.sqlite_tls import create_tables

    create_tables(conn)


def _v10_external_blobs(conn: sqlite3.Connection) -> None:
    """Bodies in an external backend (``[storage.blob]``): ``blobs.external`` says the bytes
    are there, under the digest, and ``blob_deletions`` holds the orphan sweep's claims and
    tombstones (``stalwart_py/store/blobstore``)."""
    conn.execute("ALTER TABLE blobs ADD COLUMN external INTEGER NOT NULL DEFAULT 0")
    conn.execute(
        "CREATE TABLE blob_deletions ("
        " hash BLOB PRIMARY KEY,"
        " claimed REAL NOT NULL,"
        " done REAL"
        ") WITHOUT ROWID"
    )


def _v11_app_passwords(conn: sqlite3.Connection) -> None:
    """App passwords: generated, hashed, each limited to some mail protocols (see
    ``sqlite_app_passwords``)."""
    from stalwart_py.store.sqlite_app_passwords import create_table

    create_table(conn)


def _v12_queue_leases(conn: sqlite3.Connection) -> None:
    """A queued recipient's lease: which queue runner is delivering it and until when
    (``sqlite_queue.lease_queue_entries``), so that several nodes on one database deliver
    each recipient once at a time."""
    conn.execute("ALTER TABLE queue_recipients ADD COLUMN lease_owner TEXT")
    conn.execute("ALTER TABLE queue_recipients ADD COLUMN lease_until REAL")


def _v13_totp(conn: sqlite3.Connection) -> None:
    """Two-factor sign-in: the TOTP secret, the last step used and the recovery codes'
    digests (see ``sqlite_totp``)."""
    from stalwart_py.store.sqlite_totp import create_tables

    create_tables(conn)


def _v14_web_sessions(conn: sqlite3.Connection) -> None:
    """The web pages' sessions: a token's hash, its account, its CSRF token and times (see
    ``sqlite_web_sessions``)."""
    from stalwart_py.store.sqlite_web_sessions import create_table

    create_table(conn)


def _v15_account_disabled(conn: sqlite3.Connection) -> None:
    """Accounts an administrator disabled: no login until enabled again (``Account``)."""
    conn.execute("ALTER TABLE accounts ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0")


def _v16_shared_state(conn: sqlite3.Connection) -> None:
    """What every node must share, out of the data directory: DKIM keys, installed
    certificates, ACME accounts and challenges (see ``sqlite_shared_state``)."""
    from stalwart_py.store.sqlite_shared_state import SQLITE_TABLES

    for statement in SQLITE_TABLES.split(";"):  # not executescript: it would COMMIT
        if statement.strip():
            conn.execute(statement)


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _v1,
    _v2_sieve_vacation,
    _v3_sort_fields,
    _v4_recent,
    _v5_subscriptions,
    _v6_junk,
    _v7_sieve_duplicates,
    _v8_sieve_global,
    _v9_outbound_tls,
    _v10_external_blobs,
    _v11_app_passwords,
    _v12_queue_leases,
    _v13_totp,
    _v14_web_sessions,
    _v15_account_disabled,
    _v16_shared_state,
]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database up to SCHEMA_VERSION; returns the version it had before."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"the database has schema version {version}, but this stalwart-py knows up to "
                f"{SCHEMA_VERSION}; run a newer stalwart-py or restore a backup"
            )
        for step in MIGRATIONS[version:]:
            step(conn)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return version
