"""``stalwart-py backup`` of a PostgreSQL store: one consistent snapshot, written as the SQLite
store a backup of a SQLite server holds (``stalwart.sqlite3``, and ``blobs/`` for bodies in an
external backend), so that there is one backup format whatever the backend:

- it opens as a data directory (``backend = "sqlite"``), to look into or to run on;
- it goes back into PostgreSQL with ``stalwart-py migrate --to postgresql://... [--force]`` run
  on it (the copy ``pg_migrate`` makes and verifies), which is the restore.

The snapshot is one ``REPEATABLE READ READ ONLY`` transaction: every table as of one moment,
while the nodes go on writing (PostgreSQL's MVCC: the backup blocks no writer). Rows stream
through a server-side cursor into one SQLite transaction, so memory stays bounded by a batch
whatever the size of the mailboxes. The tables are ``pg_migrate.COPIED`` (the same list, in
the foreign keys' order; ``check_tables`` refuses a SQLite schema with a table in neither
list). Blob ids come from a sequence on PostgreSQL and from the ``meta`` counter on SQLite:
the counter is set past every id the sequence gave, so neither a server on the backup nor a
restore hands one out twice. Afterwards the row count of every table in the file is compared
with the snapshot's.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg

from stalwart_py.files import create_private_file
from stalwart_py.store.model import StoreError
from stalwart_py.store.pg_migrate import COPIED, check_tables, sqlite_tables
from stalwart_py.store.schema import migrate as migrate_sqlite

BATCH = 500  # rows per fetch from the server-side cursor, and per SQLite executemany


def snapshot_to_sqlite(raw: psycopg.Connection, target: Path) -> dict[str, int]:
    """Write the store of ``raw`` (an autocommit connection) to a new SQLite file ``target``;
    returns the rows per table. Raises StoreError when a count differs afterwards."""
    create_private_file(target)  # 0600 before SQLite opens it: it holds every secret
    lite = sqlite3.connect(target, isolation_level=None)
    try:
        migrate_sqlite(lite)
        check_tables(sqlite_tables(lite))
        raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            counts = _copy(raw, lite)
        finally:
            raw.execute("ROLLBACK")  # read only: nothing to keep
        for table, expected in counts.items():
            (found,) = lite.execute(f'SELECT count(*) FROM "{table}"').fetchone()
            if found != expected:
                raise StoreError(f"backup: {table} has {found} rows, the snapshot {expected}")
        broken = lite.execute("PRAGMA foreign_key_check").fetchone()
        if broken is not None:  # (table, rowid, parent, ...): names, no values
            raise StoreError(f"backup: a foreign key of {broken[0]} does not hold")
    finally:
        lite.close()
    return counts


def _copy(raw: psycopg.Connection, lite: sqlite3.Connection) -> dict[str, int]:
    counts: dict[str, int] = {}
    lite.execute("BEGIN")
    try:
        for table in COPIED:
            columns = [row[1] for row in lite.execute(f'PRAGMA table_info("{table}")')]
            names = ", ".join(f'"{column}"' for column in columns)
            lite.execute(f'DELETE FROM "{table}"')  # what the new schema put there (meta)
            insert = f'INSERT INTO "{table}" ({names}) VALUES ({", ".join("?" * len(columns))})'
            count = 0
            with raw.cursor(name=f"backup_{table}") as cursor:
                cursor.execute(f'SELECT {names} FROM "{table}"')
                while rows := cursor.fetchmany(BATCH):
                    lite.executemany(insert, rows)
                    count += len(rows)
            counts[table] = count
        # The sequence's last value is at least every id committed in the snapshot (a
        # sequence is not transactional): past it, no id is given twice.
        (last,) = raw.execute("SELECT last_value FROM blob_ids").fetchone()
        counted = lite.execute("SELECT 1 FROM meta WHERE key = 'blob-id'").fetchone()
        counts["meta"] += 0 if counted else 1  # the row added here
        lite.execute(
            "INSERT INTO meta(key, value) VALUES ('blob-id', ?) ON CONFLICT(key) DO UPDATE"
            " SET value = CAST(max(CAST(meta.value AS INTEGER), ?) AS TEXT)",
            (str(last), last),
        )
        lite.execute("COMMIT")
    except BaseException:
        lite.execute("ROLLBACK")
        raise
    return counts
