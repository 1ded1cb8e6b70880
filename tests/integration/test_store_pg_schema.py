"""The PostgreSQL schema against SQLite's: the same tables and columns with the same kinds of
values (so the shared SQL means the same on both), migrations applied once by whichever node
comes first, and a newer schema refused."""

from __future__ import annotations

import anyio
import pytest

from stalwart_py.store import SchemaTooNew
from stalwart_py.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio
# A venv made before the "test" extra had psycopg skips here; CI's (make test) has it.
psycopg = pytest.importorskip("psycopg")
from stalwart_py.store.pg_schema import SCHEMA_VERSION  # noqa: E402
from stalwart_py.store.postgresql import PostgresStore  # noqa: E402

# Tables only a store of several nodes needs (SQLite's are the machine's shared memory).
POSTGRESQL_ONLY = {
    "login_failures",  # stalwart_py/store/pg_login_failures.py
    "rate_buckets",  # stalwart_py/store/pg_rates.py
}
# SQLite's declared type -> the PostgreSQL types that hold the same values.
SAME_VALUES = {
    "INTEGER": {"bigint"},
    "REAL": {"double precision"},
    "TEXT": {"text", "citext"},
    "BLOB": {"bytea"},
}


async def sqlite_columns(tmp_path) -> dict[tuple[str, str], str]:
    store = SqliteStore(tmp_path)
    await store.open()

    def op(conn) -> dict[tuple[str, str], str]:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {
            (table, column): declared.upper()
            for table in tables
            for _, column, declared, *_ in conn.execute(f"PRAGMA table_info({table})")
        }

    try:
        return await store._engine.read(op)
    finally:
        await store.close()


async def test_the_same_tables_and_columns_as_sqlite(tmp_path, postgres):
    url = postgres.database()
    store = PostgresStore(url, tmp_path)
    await store.open()
    await store.close()
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name,"
            " CASE WHEN data_type = 'USER-DEFINED' THEN udt_name ELSE data_type END"
            " FROM information_schema.columns WHERE table_schema = 'public'"
            " AND table_name != 'schema_version'"
        ).fetchall()
    postgresql = {
        (table, column): kind for table, column, kind in rows if table not in POSTGRESQL_ONLY
    }
    sqlite = await sqlite_columns(tmp_path / "sqlite")
    assert sorted(postgresql) == sorted(sqlite), "a migration added to one backend only"
    for key, declared in sqlite.items():
        assert postgresql[key] in SAME_VALUES[declared], (key, declared, postgresql[key])


async def test_nodes_starting_together_migrate_once(tmp_path, postgres):
    url = postgres.database()
    stores = [PostgresStore(url, tmp_path / str(n)) for n in range(4)]
    async with anyio.create_task_group() as group:
        for store in stores:
            group.start_soon(store.open)
    await stores[0].add_domain("example.test")
    assert [d.name for d in await stores[3].list_domains()] == ["example.test"]
    for store in stores:
        await store.close()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


async def test_a_database_from_a_newer_version_is_refused(tmp_path, postgres):
    url = postgres.database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE schema_version (version integer NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (%s)", (SCHEMA_VERSION + 1,))
    store = PostgresStore(url, tmp_path)
    with pytest.raises(SchemaTooNew, match="run a newer stalwart-py"):
        await store.open()
