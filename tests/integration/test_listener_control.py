"""``stalwart-py listener list|enable|disable`` reaches the running server through its control
socket: a way back for an administrator who disabled the listener serving the API, and for
anyone on the server's machine without API credentials."""

from __future__ import annotations

import json
import os
import smtplib
import socket
import stat
from pathlib import Path

import pytest

from protocols.http import Http
from stalwart_py import control
from stalwart_py.control import SOCKET_FILE
from tests.support.clients import LineClient
from tests.support.http import BASE, ApiClient, Referee, http_listener
from tests.support.servers import ServerProcess, stalwart_cli, write_config

REFEREE = Referee(Http().app.document)
PASSWORD = "a-long-enough-secret"
ADMIN_OF_PROCESS = ("admin@mail.example.test", PASSWORD)  # made at the first start
SMTP = '[server.listener.smtp]\nbind = "127.0.0.1:0"\nprotocol = "smtp"\n\n'
PROBE = '[server.listener.probe]\nbind = "127.0.0.1:0"\nprotocol = "probe"\n\n'


@pytest.fixture
def process(tmp_path):
    """``stalwart-py serve`` with an http and an smtp listener."""
    path = write_config(tmp_path, BASE + http_listener() + SMTP)
    with ServerProcess(path, env={"STALWART_ADMIN_PASSWORD": PASSWORD}) as server:
        yield server


def test_the_listener_command(process):
    path = process.config_path
    host, port = process.address("smtp")
    with smtplib.SMTP(host, port, timeout=10) as session:  # an open session shows in the list
        result = stalwart_cli(path, "listener", "list")
        assert result.returncode == 0, result.stderr
        lines = sorted(result.stdout.splitlines())
        http_host, http_port = process.address("http")
        assert lines == [
            f"http\thttp\tenabled\t0 open\t{http_host}:{http_port}",
            f"smtp\tsmtp\tenabled\t1 open\t{host}:{port}",
        ]
        disabled = stalwart_cli(path, "listener", "disable", "smtp")
        assert disabled.returncode == 0, disabled.stderr
        assert disabled.stdout == f"smtp\tsmtp\tdisabled\t1 open\t{host}:{port}\n"
        assert disabled.stderr == ""
        assert session.noop()[0] == 250  # the open session goes on
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        smtplib.SMTP(host, port, timeout=10)
    assert refused.value.smtp_code == 421
    assert stalwart_cli(path, "listener", "enable", "smtp").returncode == 0
    with smtplib.SMTP(host, port, timeout=10) as session:
        assert session.noop()[0] == 250
    # The last http listener: done (the command is the server's user, no force), with a warning.
    last = stalwart_cli(path, "listener", "disable", "http")
    assert last.returncode == 0
    assert "warning: http was the last enabled http listener" in last.stderr
    with ApiClient(process.address("http")) as client:
        assert client.get("/healthz").status == 503
    assert stalwart_cli(path, "listener", "enable", "http").returncode == 0
    with ApiClient(process.address("http")) as client:
        assert client.get("/healthz").status == 200
    unknown = stalwart_cli(path, "listener", "disable", "nope")
    assert unknown.returncode == 1
    assert unknown.stderr == "stalwart-py: no running listener nope\n"
    assert "control socket: disable smtp (pid " in process.log()


def test_the_control_socket_is_private_and_goes_with_the_server(tmp_path):
    path = write_config(tmp_path, BASE + SMTP)
    socket_path = tmp_path / "var" / SOCKET_FILE
    env = {"STALWART_ADMIN_PASSWORD": PASSWORD}
    with ServerProcess(path, env=env) as server:
        mode = socket_path.stat().st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
        server.kill()  # no chance to clean up: the socket file stays
    assert socket_path.is_socket()
    assert stalwart_cli(path, "listener", "list").stderr == (
        f"stalwart-py: no server is running on {tmp_path / 'var'}\n"
    )
    with ServerProcess(path, env=env):  # the next start replaces it
        assert stalwart_cli(path, "listener", "list").returncode == 0
    assert not socket_path.exists()


def ask_raw(data_dir: Path, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(20)
        sock.connect(str(data_dir / SOCKET_FILE))
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_bad_requests_get_an_answer_and_slow_ones_a_timeout(start_server, monkeypatch):
    server = start_server(PROBE)
    data_dir = server.context.config.storage.data_dir
    for request, error in [
        (b"not json\n", "a request is a JSON object"),
        (b"[" * 60000 + b"\n", "a request is a JSON object"),  # past Python's recursion limit
        (b"[1, 2]\n", 'a request is a JSON object with a "command"'),
        (
            b'{"command": "shutdown"}\n',
            "unknown command; the commands are: acme-renew, acme-status, disable, enable, ",
        ),
        (b'{"command": "disable"}\n', "no running listener None"),
        (b'{"command": "x", "pad": "' + b"a" * 70000 + b'"}\n', "at most 65536 bytes"),
    ]:
        answer = json.loads(ask_raw(data_dir, request))
        assert answer["ok"] is False and error in answer["error"], answer
    monkeypatch.setattr(control, "TIMEOUT", 0.2)
    with socket.socket(socket.AF_UNIX) as sock:  # says nothing: closed without an answer
        sock.settimeout(20)
        sock.connect(str(data_dir / SOCKET_FILE))
        assert sock.recv(100) == b""
    answer = control.request(data_dir, {"command": "listeners"})  # and the next one is served
    assert [item["id"] for item in answer["listeners"]] == ["probe"]


def test_a_data_dir_too_deep_for_a_socket_address(start_server, tmp_path):
    data_dir = tmp_path / ("d" * 60) / ("e" * 60) / "var"
    server = start_server(f'[storage]\ndata-dir = "{data_dir}"\n\n' + PROBE)
    assert len(os.fsencode(data_dir / SOCKET_FILE)) > control.SUN_PATH_MAX
    answer = control.request(data_dir, {"command": "disable", "listener": "probe"})
    assert answer["listener"]["enabled"] is False
    with LineClient(server.address("probe")) as client:
        assert client.readline() == b"REFUSED disabled\n"
