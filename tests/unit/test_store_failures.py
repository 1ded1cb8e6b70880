"""``database_failure``: which errors are the database's (one log line, no traceback) and
which are bugs (None: their traceback is logged)."""

from __future__ import annotations

import sqlite3

import pytest

from stalwart_py.store.model import database_failure


def test_the_databases_failures_are_one_line_naming_the_error():
    locked = sqlite3.OperationalError("database is locked")
    assert database_failure(locked) == "OperationalError: database is locked"
    refused = ConnectionRefusedError(111, "Connection refused")
    assert database_failure(refused) == "ConnectionRefusedError: [Errno 111] Connection refused"


def test_libpqs_lines_are_joined():
    psycopg = pytest.importorskip("psycopg")
    error = psycopg.OperationalError(
        "consuming input failed: server closed the connection unexpectedly\n\tThis probably"
        " means the server terminated abnormally\n\tbefore or while processing the request."
    )
    assert database_failure(error) == (
        "OperationalError: consuming input failed: server closed the connection unexpectedly"
        " This probably means the server terminated abnormally before or while processing"
        " the request."
    )
    assert database_failure(psycopg.errors.AdminShutdown("terminating")) is not None


def test_a_bug_is_not_the_databases():
    assert database_failure(TypeError("'NoneType' object is not subscriptable")) is None
    assert database_failure(sqlite3.ProgrammingError("closed cursor")) is None
