"""Servers started by the kit on PostgreSQL instead of SQLite (``--store-backend postgresql``).

When ``STALWART_TEST_POSTGRESQL`` holds the libpq URL of a maintenance database (``postgres``)
on a server the tests may create databases on, :func:`with_store` gives every configuration
the kit writes ``backend = "postgresql"`` and the URL of a database of its own: one per data
directory, so a server started again on the same directory finds the data of the one before it
(as it finds its SQLite file), and two servers in two directories see nothing of each other.
``STALWART_TEST_POSTGRESQL_TEMPLATE`` may name a database already migrated: the new ones are
copies of it (``CREATE DATABASE ... TEMPLATE``, ~0.07 s, where migrating an empty one takes
~0.3 s). A configuration that names a ``backend`` itself is left as it is.

The databases are named after the data directory (``kit_`` and a digest of its path);
:func:`drop_databases` removes every one of them, for a test's teardown.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tomllib
from pathlib import Path

ENVIRONMENT = "STALWART_TEST_POSTGRESQL"
TEMPLATE_ENVIRONMENT = "STALWART_TEST_POSTGRESQL_TEMPLATE"
PREFIX = "kit_"


def requested_server() -> str | None:
    """The maintenance database's URL, when the tests run on PostgreSQL."""
    return os.environ.get(ENVIRONMENT) or None


def database_url(server: str, name: str) -> str:
    """``server``'s URL with ``name`` as the database (the path of a libpq URI)."""
    # not urlunsplit: it writes postgresql:///db as postgresql:/db, which libpq refuses
    scheme, _, rest = server.partition("://")
    location, _, query = rest.partition("?")
    host = location.partition("/")[0]
    return f"{scheme}://{host}/{name}" + (f"?{query}" if query else "")


def database_for(server: str, data_dir: Path) -> str:
    """The URL of the database of ``data_dir``, created (from the template, if one is named)
    when it does not exist yet."""
    import psycopg
    from psycopg import errors

    name = PREFIX + hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:24]
    template = os.environ.get(TEMPLATE_ENVIRONMENT)
    with psycopg.connect(server, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists is None:
            clause = f' TEMPLATE "{template}"' if template else ""
            # made meanwhile by another writer of the same directory's configuration: fine
            with contextlib.suppress(errors.DuplicateDatabase):
                conn.execute(f'CREATE DATABASE "{name}"{clause}')
    return database_url(server, name)


def with_store(text: str, directory: Path) -> str:
    """``text`` on a PostgreSQL database of its own when the tests ask for one (above), else
    unchanged. ``directory`` is where the configuration file goes: a relative ``data-dir``
    is read from there."""
    server = requested_server()
    if server is None:
        return text
    try:
        storage = tomllib.loads(text).get("storage", {})
    except tomllib.TOMLDecodeError:
        return text  # a test of invalid configurations: the server will say what is wrong
    if not isinstance(storage, dict) or "backend" in storage or "data-dir" not in storage:
        return text
    data_dir = Path(storage["data-dir"])
    if not data_dir.is_absolute():
        data_dir = directory / data_dir
    url = database_for(server, data_dir)
    keys = f'backend = "postgresql"\nurl = "{url}"\n'
    header = re.search(r"^\s*\[storage\][ \t]*(#.*)?$", text, re.MULTILINE)
    if header is not None:
        return text[: header.end()] + "\n" + keys.rstrip("\n") + text[header.end() :]
    # storage.data-dir as a dotted key: the others go beside it, before any table header
    return "".join(f"storage.{line}\n" for line in keys.splitlines()) + text


def drop_databases(server: str) -> None:
    """Drop every database :func:`database_for` made (servers using them must be stopped:
    ``FORCE`` ends any connection still open)."""
    import psycopg

    with psycopg.connect(server, autocommit=True) as conn:
        names = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (PREFIX + "%",)
        ).fetchall()
        for (name,) in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
