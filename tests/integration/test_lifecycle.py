"""The server as a program: a plugin found by entry point, signals, the reload command."""

from __future__ import annotations

import json
import os
import re
import signal
import smtplib
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.clients import LineClient, connect
from tests.support.servers import ServerProcess, write_config

ROOT = Path(__file__).resolve().parents[2]


ECHO = """
[server]
hostname = "mx.example.test"
shutdown-timeout = "{grace}"

[server.listener.echo]
bind = ["127.0.0.1:0"]
protocol = "echo"
echo.greeting = "{greeting}"
"""


def echo_config(tmp_path: Path, greeting: str = "hi", grace: str = "10s") -> Path:
    return write_config(tmp_path, ECHO.format(greeting=greeting, grace=grace))


def test_a_plugin_package_is_discovered_by_entry_point(tmp_path, echo_plugin):
    with ServerProcess(echo_config(tmp_path, "from a plugin"), env=echo_plugin) as server:
        with LineClient(server.address("echo")) as client:
            assert client.readline() == b"+OK mx.example.test from a plugin\r\n"
            client.send(b"hello\r\n")
            assert client.readline() == b"hello\r\n"
            client.send(b"QUIT\r\n")
            assert client.readline() == b"+OK bye\r\n"
        assert "listener echo (echo) bound 127.0.0.1:" in server.log()
        assert "ready: 1 listener(s); administrator account(s): admin@mx.example.test (a " in (
            server.log()
        )


def test_unknown_protocol_lists_the_installed_ones(tmp_path, echo_plugin):
    path = write_config(
        tmp_path, '[server.listener.x]\nbind = "127.0.0.1:0"\nprotocol = "nosuch"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "stalwart_py", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, **echo_plugin},
        timeout=60,
    )
    assert result.returncode == 1
    assert 'server.listener.x.protocol: unknown protocol "nosuch"; installed protocols:' in (
        result.stderr
    )
    assert "echo" in result.stderr.split("installed protocols:")[1]


def test_sigterm_lets_an_open_session_finish(tmp_path, echo_plugin):
    with ServerProcess(echo_config(tmp_path), env=echo_plugin) as server:
        address = server.address("echo")
        session = LineClient(address)
        session.readline()
        server.signal(signal.SIGTERM)
        server.wait_event("stopping")
        with pytest.raises(ConnectionRefusedError):
            connect(address, timeout=2)
        session.send(b"still here\r\n")
        assert session.readline() == b"still here\r\n"
        session.send(b"QUIT\r\n")
        assert session.readline() == b"+OK bye\r\n"
        session.close()
        assert server.wait_exit() == 0
        assert "waiting up to 10s for 1 open sessions" in server.log()


def test_sigterm_closes_sessions_left_after_the_grace_period(tmp_path, echo_plugin):
    with ServerProcess(echo_config(tmp_path, grace="300ms"), env=echo_plugin) as server:
        session = LineClient(server.address("echo"))
        session.readline()
        server.signal(signal.SIGTERM)
        assert session.readline() == b"-ERR Server shutting down\r\n"  # the protocol's refuse()
        assert session.readline() == b""
        assert server.wait_exit() == 0


def test_sighup_and_the_reload_command(tmp_path, echo_plugin):
    path = echo_config(tmp_path, "first")
    with ServerProcess(path, env=echo_plugin) as server:
        address = server.address("echo")
        echo_config(tmp_path, "second")
        server.signal(signal.SIGHUP)
        assert server.wait_event("reloaded")["changes"]["updated"] == ["echo"]
        with LineClient(address) as client:
            assert client.readline().endswith(b" second\r\n")

        echo_config(tmp_path, "third")
        command = [sys.executable, "-m", "stalwart_py", "reload", "--config", str(path)]
        env = {**os.environ, **echo_plugin}
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "reloaded (pid" in result.stdout and "updated: echo" in result.stdout
        with LineClient(address) as client:
            assert client.readline().endswith(b" third\r\n")

        # A file that fails validation: the command refuses before signalling anything.
        path.write_text(path.read_text().replace('"third"', "3"))
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
        assert result.returncode == 1
        assert "server.listener.echo.echo.greeting: expected a string, found 3" in result.stderr
        # SIGHUP with that file: the server logs the errors and keeps running as it was.
        server.signal(signal.SIGHUP)
        failed = server.wait_event("reload-failed")
        assert any("echo.greeting" in error for error in failed["errors"])
        with LineClient(address) as client:
            assert client.readline().endswith(b" third\r\n")


def test_a_second_server_on_the_same_data_dir_is_refused(tmp_path, echo_plugin):
    with ServerProcess(echo_config(tmp_path), env=echo_plugin) as server:
        result = subprocess.run(
            [sys.executable, "-m", "stalwart_py", "serve", "--config", str(server.config_path)],
            capture_output=True,
            text=True,
            env={**os.environ, **echo_plugin},
            timeout=60,
        )
        assert result.returncode == 1
        assert f"another stalwart-py server (pid {server.process.pid})" in result.stderr


def test_an_address_in_use_stops_the_start_with_a_clear_message(tmp_path, echo_plugin):
    with connect_listener() as (host, port):
        path = write_config(
            tmp_path, f'[server.listener.echo]\nbind = "{host}:{port}"\nprotocol = "echo"\n'
        )
        result = subprocess.run(
            [sys.executable, "-m", "stalwart_py", "serve", "--config", str(path)],
            capture_output=True,
            text=True,
            env={**os.environ, **echo_plugin},
            timeout=60,
        )
    assert result.returncode == 1
    assert f"cannot start: cannot bind {host}:{port}: Address already in use" in result.stderr


class connect_listener:  # a context manager named like the function it stands for
    def __enter__(self) -> tuple[str, int]:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        return self.sock.getsockname()

    def __exit__(self, *exc_info: object) -> None:
        self.sock.close()


def test_the_health_command(tmp_path, echo_plugin):
    path = echo_config(tmp_path)
    command = [sys.executable, "-m", "stalwart_py", "health", "--config", str(path)]
    env = {**os.environ, **echo_plugin}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1
    assert "unhealthy: no server is running on" in result.stderr
    with ServerProcess(path, env=echo_plugin) as server:
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"ok: pid {server.process.pid}, 1 listener(s)\n"


def test_the_administrator_password_from_the_environment(tmp_path, echo_plugin):
    secret = tmp_path / "admin-password"
    secret.write_text("from a docker secret\n")
    env = {**echo_plugin, "STALWART_ADMIN_PASSWORD_FILE": str(secret)}
    with ServerProcess(echo_config(tmp_path), env=env) as server:
        log = server.log()
    assert "created the administrator account admin@mx.example.test with the given password" in (
        log
    )
    assert "from a docker secret" not in log
    too_short = {**echo_plugin, "STALWART_ADMIN_PASSWORD": "short"}
    other = tmp_path / "other"
    other.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "stalwart_py", "serve", "--config", str(echo_config(other))],
        capture_output=True,
        text=True,
        env={**os.environ, **too_short},
        timeout=60,
    )
    assert result.returncode == 1
    assert "cannot create the administrator account: the password must have at least 8" in (
        result.stderr
    )


def test_json_logs_name_the_session_on_every_line_about_it(tmp_path):
    path = write_config(
        tmp_path,
        '[logging]\nformat = "json"\n\n[server]\nhostname = "mx.example.test"\n\n'
        '[server.listener.smtp]\nbind = "127.0.0.1:0"\nprotocol = "smtp"\n',
    )
    # The administrator's password set, so that no first-start banner (text for people) shows.
    with ServerProcess(path, env={"STALWART_ADMIN_PASSWORD": "a-long-enough-secret"}) as server:
        host, port = server.address("smtp")
        with smtplib.SMTP(host, port, timeout=10) as client:
            client.ehlo("client.test")
            assert client.docmd("FOO")[0] == 500  # a line about the session, besides its start
    entries = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    assert entries and all({"ts", "level", "logger", "msg"} <= set(e) for e in entries)
    assert not [line for line in server.log().splitlines() if not line.startswith("{")]
    sessions = {e["session"] for e in entries if "session" in e}
    assert len(sessions) == 1, sessions  # the one connection, on each of its lines
    [session] = sessions
    assert re.fullmatch(r"[0-9a-f]{8}", session)
    about = [e["msg"] for e in entries if e.get("session") == session]
    assert about[0].startswith("connection from 127.0.0.1:")
    assert about[1].startswith("bad command from 127.0.0.1:")
    assert about[-1].endswith(" ended")
