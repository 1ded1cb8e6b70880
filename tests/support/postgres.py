"""A real PostgreSQL server for the tests, from the installed binaries, in a temporary directory.

The Debian package ``postgresql`` (``.ci/run`` installs it) puts ``initdb``, ``pg_ctl`` and
``postgres`` under ``/usr/lib/postgresql/<major>/bin``, not on PATH; other systems put them on
PATH. ``initdb`` refuses to run as root (a server run by root could be made to run anything as
root), so as root the cluster is made and run by the ``postgres`` user the package creates,
through ``runuser``; as anyone else, by that user.

The server listens on a Unix socket only, in the cluster's own directory (no port to collide
with a neighbour's), with ``fsync = on``: the tests are about durability, and a server that
lies about it would hide the bugs they look for. Each test gets a database of its own
(``CREATE DATABASE``), so tests cannot see each other's rows.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SERVER_USER = "postgres"  # the Debian package's user, for when the tests run as root
START_TIMEOUT = 60  # seconds for pg_ctl to see the server accept connections
# UTF-8, and the C locale: citext then folds ASCII letters only, as SQLite's NOCASE does
INITDB = ("--encoding=UTF8", "--locale=C", "--no-instructions")


class Unavailable(Exception):
    """No PostgreSQL binaries here, or no unprivileged user to run them as."""


def find_binaries() -> Path:
    """The directory of initdb, pg_ctl and postgres: on PATH, else the newest Debian major."""
    on_path = shutil.which("initdb")
    if on_path is not None and shutil.which("pg_ctl") is not None:
        return Path(os.path.realpath(on_path)).parent
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    if not candidates:
        raise Unavailable("PostgreSQL is not installed (.ci/run installs it: apt-get postgresql)")
    return candidates[-1].parent


@dataclass
class PostgresCluster:
    """A running server; ``database()`` makes a fresh database and returns its URL."""

    base: Path
    bindir: Path
    run_as: list[str]
    _counter: itertools.count = None  # type: ignore[assignment]

    @property
    def socket_dir(self) -> Path:
        return self.base

    def url(self, database: str) -> str:
        return f"postgresql:///{database}?host={self.socket_dir}&user={SERVER_USER}"

    def database(self, prefix: str = "test") -> str:
        """A new, empty database; returns its URL."""
        import psycopg

        if self._counter is None:
            self._counter = itertools.count(1)
        name = f"{prefix}_{os.getpid()}_{next(self._counter)}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    @contextlib.contextmanager
    def refusing(self, url: str) -> Iterator[None]:
        """While inside, the database of ``url`` is out of reach, as for a node whose
        PostgreSQL went away: its sessions are ended and new ones refused (``ALLOW_CONNECTIONS
        false``); the other tests' databases on the session's server go on."""
        import psycopg

        name = url.partition("///")[2].partition("?")[0]
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
        try:
            yield
        finally:
            with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
                conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')

    def crash_and_restart(self) -> None:
        """Stop the server as a crash would (no shutdown checkpoint: the restart replays the
        WAL) and start it again."""
        self.stop()
        self.start()

    def start(self) -> None:
        options = (
            f"-c listen_addresses='' -c unix_socket_directories='{self.base}' -c fsync=on"
            " -c synchronous_commit=on -c max_connections=300 -c shared_buffers=32MB"
        )
        started = subprocess.run(
            [
                *self.run_as,
                self.bindir / "pg_ctl",
                "start",
                "-D",
                self.base / "data",
                "-w",
                "-t",
                str(START_TIMEOUT),
                "-o",
                options,
                "-l",
                self.base / "server.log",
            ],
            capture_output=True,
            timeout=START_TIMEOUT + 10,
            check=False,
        )
        if started.returncode != 0:
            log = (self.base / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"PostgreSQL did not start: {started.stderr.decode()}\n{log}")

    def stop(self) -> None:
        subprocess.run(
            # immediate: no shutdown checkpoint, the files are removed next
            [
                *self.run_as,
                self.bindir / "pg_ctl",
                "stop",
                "-D",
                self.base / "data",
                "-m",
                "immediate",
            ],
            check=False,
            capture_output=True,
            timeout=START_TIMEOUT,
        )


def _run_as() -> tuple[list[str], int | None, int | None]:
    if os.geteuid() != 0:
        return [], None, None
    try:
        user = pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise Unavailable(
            f"running as root and there is no {SERVER_USER!r} user to run PostgreSQL as "
            "(the Debian package postgresql creates it)"
        ) from None
    runuser = shutil.which("runuser") or shutil.which("setpriv")
    if runuser is None:
        raise Unavailable("running as root and neither runuser nor setpriv is installed")
    if runuser.endswith("runuser"):
        return [runuser, "-u", SERVER_USER, "--"], user.pw_uid, user.pw_gid
    return (
        [runuser, f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups"],
        user.pw_uid,
        user.pw_gid,
    )


@contextlib.contextmanager
def running_cluster() -> Iterator[PostgresCluster]:
    """initdb, start, yield, stop and remove."""
    bindir = find_binaries()
    run_as, uid, gid = _run_as()
    base = Path(tempfile.mkdtemp(prefix="stalwart-pg-"))
    try:
        if uid is not None and gid is not None:
            os.chown(base, uid, gid)
        data = base / "data"
        subprocess.run(
            [*run_as, bindir / "initdb", "-D", data, "-U", SERVER_USER, "--auth=trust", *INITDB],
            check=True,
            capture_output=True,
            timeout=120,
        )
        cluster = PostgresCluster(base, bindir, run_as)
        cluster.start()
        try:
            yield cluster
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)
