"""swaks against the smtp and lmtp listeners: plain SMTP, STARTTLS + AUTH, implicit TLS, and
LMTP over a Unix socket. swaks prints the dialogue; the server's lines start with ``<-``
(``<~`` inside TLS, ``<**`` for an error reply)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.support.smtp import PASSWORD, mailbox_messages, smtp_config

pytestmark = pytest.mark.interop


@pytest.fixture
def socket_path():
    directory = Path(tempfile.mkdtemp(prefix="swaks", dir="/tmp"))
    yield directory / "lmtp.sock"
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def server(start_server, server_cert, socket_path):
    server = start_server(smtp_config(server_cert, socket_path))
    server.add_account("alice@example.test", PASSWORD)
    return server


def swaks(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("swaks"), "--from", "someone@remote.test", "--h-Subject", "swaks", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def server_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [
        line[4:] for line in result.stdout.splitlines() if line.startswith(("<- ", "<~ ", "<**"))
    ]


def test_plain_smtp(server):
    host, port = server.address("smtp")
    result = swaks("--server", f"{host}:{port}", "--to", "alice@example.test")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = server_lines(result)
    assert lines[0] == "220 mail.example.test ESMTP stalwart-py"
    assert any(line.startswith("250 2.0.0 Message accepted") for line in lines)
    assert len(mailbox_messages(server, "alice@example.test")) == 1


def test_relay_is_refused(server):
    host, port = server.address("smtp")
    result = swaks("--server", f"{host}:{port}", "--to", "victim@elsewhere.test")
    assert result.returncode != 0
    assert "554 5.7.1 Relay access denied" in server_lines(result)


def test_starttls_and_auth(server, ca, tmp_path):
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    host, port = server.address("submission")
    result = swaks(
        "--server",
        f"{host}:{port}",
        "--to",
        "alice@example.test",
        "--from",
        "alice@example.test",
        "--tls",
        "--tls-ca-path",
        str(ca_file),
        "--tls-verify",
        "--tls-sni",
        "mail.example.test",
        "--auth",
        "PLAIN",
        "--auth-user",
        "alice@example.test",
        "--auth-password",
        PASSWORD,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = server_lines(result)
    assert "220 2.0.0 Ready to start TLS" in lines
    assert "235 2.7.0 Authentication successful" in lines
    [stored] = mailbox_messages(server, "alice@example.test")
    assert b"with ESMTPSA id" in stored


def test_implicit_tls_with_auth_login(server):
    host, port = server.address("submissions")
    result = swaks(
        "--server",
        f"{host}:{port}",
        "--tlsc",
        "--to",
        "alice@example.test",
        "--from",
        "alice@example.test",
        "--auth",
        "LOGIN",
        "--auth-user",
        "alice@example.test",
        "--auth-password",
        PASSWORD,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "235 2.7.0 Authentication successful" in server_lines(result)


def test_lmtp_over_a_unix_socket(server, socket_path):
    result = swaks("--socket", str(socket_path), "--protocol", "LMTP", "--to", "alice@example.test")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = server_lines(result)
    assert lines[0] == "220 mail.example.test LMTP stalwart-py"
    assert "250 2.0.0 <alice@example.test> Delivered" in lines
    [stored] = mailbox_messages(server, "alice@example.test")
    assert b"with LMTP id" in stored
