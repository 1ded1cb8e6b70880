"""The data directory holds all mail and the password verifiers: nobody but the server's user
may read it, whatever the umask it was started under (found with umask 022: a 0755
directory and 0644 database files)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from stalwart_py.server import STATUS_FILE
from stalwart_py.store.sqlite import DATABASE_FILE
from tests.support.servers import ServerProcess, stalwart_cli, write_config

# smtp offers STARTTLS, so a start without a certificate writes a self-signed one and its key.
CONFIG = """
[server]
hostname = "mx.example.test"

[server.listener.smtp]
bind = "127.0.0.1:0"
protocol = "smtp"
"""


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask of a shell, for this process and the children it starts."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def modes(directory: Path) -> dict[str, str]:
    """Every entry under ``directory`` (itself as ".") with its permission bits, in octal."""
    found = {".": oct(stat.S_IMODE(directory.stat().st_mode))}
    for path in directory.rglob("*"):
        found[str(path.relative_to(directory))] = oct(stat.S_IMODE(path.lstat().st_mode))
    return found


def loose(found: dict[str, str]) -> dict[str, str]:
    return {name: mode for name, mode in found.items() if int(mode, 8) & 0o077}


def test_serve_under_umask_022_writes_nothing_others_can_read(tmp_path, umask_022):
    config = write_config(tmp_path, CONFIG)
    data_dir = tmp_path / "var"
    env = {"STALWART_ADMIN_PASSWORD": "a-long-enough-secret"}
    with ServerProcess(config, env=env):
        running = modes(data_dir)  # the -wal and -shm files exist while the database is open
    assert {DATABASE_FILE, f"{DATABASE_FILE}-wal", f"{DATABASE_FILE}-shm"} <= running.keys()
    assert {"tls", "stalwart-py.pid", STATUS_FILE} <= running.keys()
    assert any(name.endswith(".key") for name in running), running
    assert loose(running) == {}
    assert running["."] == "0o700"
    assert loose(modes(data_dir)) == {}


def test_the_cli_under_umask_022_creates_a_private_data_directory(tmp_path, umask_022):
    config = write_config(tmp_path, '[server]\nhostname = "mx.example.test"\n')
    data_dir = tmp_path / "var"
    assert stalwart_cli(config, "domain", "add", "example.test").returncode == 0
    added = stalwart_cli(
        config, "account", "add", "bob@example.test", "--password-file", "-", stdin="secret123\n"
    )
    assert added.returncode == 0, added.stderr
    assert DATABASE_FILE in modes(data_dir)
    generated = stalwart_cli(config, "dkim", "generate", "example.test", "--algorithm", "ed25519")
    assert generated.returncode == 0, generated.stderr
    found = modes(data_dir)
    assert not any(name.startswith("dkim") for name in found), found  # in the store
    assert loose(found) == {}
    assert found["."] == "0o700"
    backup = tmp_path / "backup"
    assert stalwart_cli(config, "backup", str(backup)).returncode == 0
    assert loose(modes(backup)) == {}  # a copy of the same secrets


def test_the_embedded_server_sets_the_modes_itself(start_server, tmp_path, umask_022):
    """Without the command's umask (a server embedded in another program): explicit modes."""
    server = start_server(CONFIG)
    data_dir = server.context.config.storage.data_dir
    assert loose(modes(data_dir)) == {}


def test_a_loose_data_directory_is_named_at_start(tmp_path, umask_022):
    data_dir = tmp_path / "var"
    data_dir.mkdir(mode=0o755)
    (data_dir / DATABASE_FILE).touch(mode=0o644)
    config = write_config(tmp_path, CONFIG)
    env = {"STALWART_ADMIN_PASSWORD": "a-long-enough-secret"}
    with ServerProcess(config, env=env) as server:
        log = server.log()
    assert f"{data_dir} is mode 0755" in log
    assert f"{data_dir / DATABASE_FILE} is mode 0644" in log
    # An existing directory is the operator's: named, not changed behind their back.
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o755
