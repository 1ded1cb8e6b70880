"""PostgreSQL statements by libpq directly (``pg_wire``) and lookups on the event loop
(``pg_lookup``): the same rows, counts and errors as a psycopg cursor gave, prepared statements
that survive what they must, and connections that are not reused in a bad state."""

from __future__ import annotations

import sqlite3

import anyio
import pytest

pytestmark = pytest.mark.anyio
psycopg = pytest.importorskip("psycopg")
from stalwart_py.store.pg_dialect import PgConnection  # noqa: E402
from stalwart_py.store.pg_lookup import AsyncLookups  # noqa: E402
from stalwart_py.store.pg_wire import native  # noqa: E402


@pytest.fixture
def url(postgres) -> str:
    url = postgres.database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t(id bigint PRIMARY KEY, name text, data bytea, n bigint)")
    return url


def connect(url: str) -> PgConnection:
    return PgConnection(lambda: psycopg.connect(url, autocommit=True))


def test_native_placeholders_and_percent() -> None:
    assert native("SELECT %s, '%%s', x %% 2 FROM t WHERE a = %s") == (
        b"SELECT $1, '%s', x % 2 FROM t WHERE a = $2",
        2,
    )


def test_rows_counts_and_types_through_prepared_statements(url: str) -> None:
    conn = connect(url)
    try:
        # Three uses each: unnamed, then prepared with its first use of the name, then named.
        for n in range(3):
            inserted = conn.execute(
                "INSERT INTO t(id, name, data, n) VALUES (?, ?, ?, ?)",
                (n, f"n{n}", bytes([n]), True),
            )
            assert inserted.rowcount == 1
        assert conn.execute("UPDATE t SET n = n + 1 WHERE id < ?", (5,)).rowcount == 3
        for _ in range(3):
            rows = conn.execute("SELECT id, name, data, n FROM t ORDER BY id").fetchall()
            assert rows == [(0, "n0", b"\x00", 2), (1, "n1", b"\x01", 2), (2, "n2", b"\x02", 2)]
        # sum() of a bigint is a numeric, loaded as an int (as SQLite gives it)
        assert conn.execute("SELECT sum(n) FROM t").fetchone() == (6,)
        assert [
            row[0]
            for row in conn.execute(
                "SELECT id FROM t WHERE id IN (SELECT value FROM json_each(?))", ("[0, 2]",)
            )
        ] == [0, 2]
        assert conn.execute("SELECT name FROM t WHERE id = ?", (9,)).fetchone() is None
    finally:
        conn.close()


def test_errors_are_the_statements_and_leave_the_connection_usable(url: str) -> None:
    conn = connect(url)
    try:
        conn.execute("INSERT INTO t(id) VALUES (?)", (1,))
        for _ in range(3):  # unnamed, preparing, prepared: each raises the same
            with pytest.raises(sqlite3.IntegrityError):
                conn.execute("INSERT INTO t(id) VALUES (?)", (1,))
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("SELECT * FROM nowhere WHERE id = ?", (1,))
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
    finally:
        conn.close()


def test_deferred_savepoints_roll_back_one_write(url: str) -> None:
    """The engine's shape: savepoints deferred into the next statement's pipeline; a failed
    write rolled back to its savepoint, the others committed."""
    conn = connect(url)
    try:
        conn.execute("BEGIN")
        for n in (1, 2, 1, 3):
            conn.execute("SAVEPOINT job")
            try:
                conn.execute("INSERT INTO t(id) VALUES (?)", (n,))
            except sqlite3.IntegrityError:
                conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
        conn.execute("COMMIT")
        assert not conn.in_transaction
        assert conn.execute("SELECT id FROM t ORDER BY id").fetchall() == [(1,), (2,), (3,)]
    finally:
        conn.close()


def test_a_preparation_in_an_aborted_transaction_is_made_again_later(url: str) -> None:
    conn = connect(url)
    try:
        statement = "SELECT name FROM t WHERE id = ?"
        conn.execute(statement, (1,))  # first use: unnamed
        conn.execute("BEGIN")
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("SELECT 1 FROM nowhere")
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            conn.execute(statement, (1,))  # second use: its preparation fails with it
        conn.execute("ROLLBACK")
        for _ in range(2):
            assert conn.execute(statement, (1,)).fetchone() is None
    finally:
        conn.close()


def test_a_lost_connection_is_replaced_at_the_next_unit_of_work(url: str) -> None:
    conn = connect(url)
    try:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        with psycopg.connect(url, autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
        assert conn.broken
        assert conn.execute("SELECT 2").fetchone() == (2,)
    finally:
        conn.close()


async def new_async(url: str):
    return await psycopg.AsyncConnection.connect(url, autocommit=True)


async def test_lookups_replay_every_statement(url: str) -> None:
    lookups = AsyncLookups(lambda: new_async(url), 2)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO t(id, name) VALUES (1, 'one'), (2, 'two')")
        calls = 0

        def two_statements(conn) -> tuple:
            nonlocal calls
            calls += 1
            first = conn.execute("SELECT name FROM t WHERE id = ?", (1,)).fetchone()
            rows = [row for row in conn.execute("SELECT id FROM t ORDER BY id")]
            return first, rows

        assert await lookups.run(two_statements) == (("one",), [(1,), (2,)])
        assert calls == 3  # once per statement, once to return
        with pytest.raises(sqlite3.IntegrityError):
            await lookups.run(lambda conn: conn.execute("INSERT INTO t(id) VALUES (?)", (1,)))

        # Many at once, over at most two connections.
        async def one(n: int) -> None:
            row = await lookups.run(
                lambda conn: conn.execute(
                    "SELECT name FROM t WHERE id = ?", (n % 2 + 1,)
                ).fetchone()
            )
            assert row == ("one",) if n % 2 == 0 else ("two",)

        async with anyio.create_task_group() as group:
            for n in range(40):
                group.start_soon(one, n)
        assert len(lookups._all) <= 2
    finally:
        await lookups.close()


async def test_a_cancelled_lookup_does_not_leave_its_connection_behind(url: str) -> None:
    lookups = AsyncLookups(lambda: new_async(url), 1)
    try:
        with anyio.move_on_after(0.2):
            await lookups.run(lambda conn: conn.execute("SELECT pg_sleep(5)").fetchone())
        assert not lookups._all  # closed, not handed to the next lookup mid-answer
        assert await lookups.run(lambda conn: conn.execute("SELECT 7").fetchone()) == (7,)
        # A connection lost while idle is seen lost by the loop (its socket stays watched),
        # and replaced before the next lookup uses it.
        pid = await lookups.run(lambda conn: conn.execute("SELECT pg_backend_pid()").fetchone()[0])
        with psycopg.connect(url, autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with anyio.fail_after(5):
            while lookups._idle[0].idle():  # noqa: ASYNC110 - the loss is seen by a reader callback
                await anyio.sleep(0.01)  # ok: the server ends the backend asynchronously
        assert await lookups.run(lambda conn: conn.execute("SELECT 8").fetchone()) == (8,)
        assert await lookups.run(lambda conn: conn.execute("SELECT 9").fetchone()) == (9,)
    finally:
        await lookups.close()


def test_a_deferred_begin_is_a_transaction_for_whoever_ends_it(url: str) -> None:
    """BEGIN travels with the next statement; until then the connection is in a transaction
    all the same (the engine's ROLLBACK after a failure, a read's COMMIT)."""
    conn = connect(url)
    try:
        conn.execute("BEGIN")
        assert conn.in_transaction
        conn.execute("COMMIT")  # nothing in between: BEGIN and COMMIT go together
        assert not conn.in_transaction
        conn.execute("BEGIN")
        conn.execute("INSERT INTO t(id) VALUES (?)", (1,))
        conn.execute("ROLLBACK")
        assert not conn.in_transaction
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
    finally:
        conn.close()
