"""What a running server must not take from its configuration file: nothing to serve (an empty
file was accepted, and a reload then stopped every listener), and a change that only a restart
can apply (a new storage.data-dir was reported reloaded while the old database stayed in use)."""

from __future__ import annotations

import dataclasses
import json
import signal
from pathlib import Path

import pytest

from stalwart_py.config import ConfigError, parse_config
from stalwart_py.config.running import needs_restart, require_listener
from stalwart_py.server import STATUS_FILE
from tests.support.clients import LineClient
from tests.support.servers import ServerProcess, stalwart_cli, write_config

ECHO = """
[server]
hostname = "mx.example.test"

[server.listener.echo]
bind = ["127.0.0.1:0"]
protocol = "echo"
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "expected at least one listener"),
        ('[server]\nhostname = "mx.example.test"\n', "expected at least one listener"),
        (ECHO + "enable = false\n", "expected at least one enabled listener; echo has enable"),
    ],
)
def test_check_config_refuses_a_file_that_serves_nothing(tmp_path, echo_plugin, text, expected):
    path = tmp_path / "config.toml"
    path.write_text(text)
    result = stalwart_cli(path, "check-config", env=echo_plugin)
    assert result.returncode == 1, result.stdout
    assert f"{path}: server.listener: {expected}" in result.stderr


def test_a_reload_to_an_empty_file_keeps_every_listener(tmp_path, echo_plugin):
    path = write_config(tmp_path, ECHO)
    with ServerProcess(path, env=echo_plugin) as server:
        address = server.address("echo")
        path.write_text("")
        result = stalwart_cli(path, "reload", env=echo_plugin)  # refused before signalling
        assert result.returncode == 1
        assert f"{path}: server.listener: expected at least one listener" in result.stderr
        server.signal(signal.SIGHUP)  # and the server refuses it too
        failed = server.wait_event("reload-failed")
        assert [e for e in failed["errors"] if "server.listener: expected at least" in e]
        assert [item["id"] for item in failed["listeners"]] == ["echo"]
        with LineClient(address) as client:
            assert client.readline().startswith(b"+OK ")


def test_a_new_data_dir_needs_a_restart(tmp_path, echo_plugin):
    path = write_config(tmp_path, ECHO)
    old, new = tmp_path / "var", tmp_path / "elsewhere"
    with ServerProcess(path, env=echo_plugin) as server:
        path.write_text(path.read_text().replace(str(old), str(new)))
        server.signal(signal.SIGHUP)
        failed = server.wait_event("reload-failed")
        reason = (
            f"{path}: storage.data-dir: cannot change on a running server "
            f"(it is {old}, the file says {new}): it needs a restart"
        )
        assert failed["errors"] == [reason]
        status = json.loads((old / STATUS_FILE).read_text())
        assert status["event"] == "reload-failed" and status["errors"] == [reason]
        assert not new.exists()  # nothing was made of the new one
        # The command finds no server on the new directory, and says why that may be.
        result = stalwart_cli(path, "reload", env=echo_plugin)
        assert result.returncode == 1
        assert f"no server is running on {new}" in result.stderr
        assert "changing storage.data-dir needs a restart" in result.stderr
        with LineClient(server.address("echo")) as client:
            assert client.readline().startswith(b"+OK ")
        # Back to the old directory and another change: the reload goes through.
        write_config(tmp_path, ECHO.replace("mx.example.test", "mx2.example.test"))
        result = stalwart_cli(path, "reload", env=echo_plugin)
        assert result.returncode == 0, result.stderr
    assert "storage.data-dir: cannot change on a running server" in server.log()


def test_every_storage_key_needs_a_restart(tmp_path):
    old = parse_config(ECHO, tmp_path / "config.toml", {"echo": None})
    assert needs_restart(old, old) == []
    moved = dataclasses.replace(
        old,
        storage=dataclasses.replace(old.storage, data_dir=Path("/elsewhere"), backend="postgres"),
    )
    problems = needs_restart(old, moved)
    assert [issue.path for issue in problems] == ["storage.data-dir", "storage.backend"]
    assert "(it is sqlite, the file says postgres): it needs a restart" in problems[1].message
    # The same directory written another way is no change.
    spelled = old.storage.data_dir.parent / "x" / ".." / old.storage.data_dir.name
    same = dataclasses.replace(old, storage=dataclasses.replace(old.storage, data_dir=spelled))
    assert needs_restart(old, same) == []
    with pytest.raises(ConfigError, match=r"server\.listener: expected at least one listener"):
        require_listener(parse_config("", tmp_path / "config.toml", {}))


def test_a_reload_applies_the_logging_format(tmp_path, echo_plugin):
    path = write_config(tmp_path, ECHO)
    with ServerProcess(path, env=echo_plugin) as server:
        path.write_text(path.read_text() + '\n[logging]\nformat = "json"\n')
        server.signal(signal.SIGHUP)
        server.wait_event("reloaded")
    entries = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    assert any(entry["msg"].startswith("reloaded ") for entry in entries), server.log()
