"""ManageSieve with sieve-connect, the command-line client: upload, list, activate, download,
delete, STARTTLS with the test CA, and a refused password.

sieve-connect always upgrades with STARTTLS when the server offers it (its ``--notls`` of old
recipes is an abbreviation of ``--notlsverify``); the first tests skip verification of the
self-signed certificate, the last one verifies against the test CA."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import require_tool
from tests.support.managesieve import PASSWORD, config

pytestmark = pytest.mark.interop

SCRIPT = 'require "fileinto";\r\nif header :is "x-list" "a" {\r\n  fileinto "A";\r\n}\r\n'


@pytest.fixture
def sieve_connect():
    return require_tool("sieve-connect")


def run(tool, server, tmp_path, *args, password=PASSWORD, tls_args=("--notlsverify",)):
    host, port = server.address("managesieve")
    secret = tmp_path / "password"
    secret.write_text(password + "\n")
    with secret.open() as handle:
        return subprocess.run(
            [tool, "--server", host, "--port", str(port), "--user", "bob@example.test",
             "--passwordfd", str(handle.fileno()), *tls_args, *args],
            pass_fds=(handle.fileno(),), capture_output=True, text=True, timeout=60,
            cwd=tmp_path, stdin=subprocess.DEVNULL,
        )  # fmt: skip


def test_upload_list_activate_download_delete(sieve_connect, start_server, tmp_path):
    server = start_server(config(extra="managesieve.auth.require-tls = false\n"))
    server.add_account("bob@example.test", PASSWORD)
    local = tmp_path / "filter.sieve"
    local.write_bytes(SCRIPT.encode())

    def ok(*args):
        result = run(sieve_connect, server, tmp_path, *args)
        assert result.returncode == 0, result.stderr
        return result.stdout

    ok("--upload", "--localsieve", str(local), "--remotesieve", "filter")
    assert ok("--list").split() == ['"filter"']  # sieve-connect prints the server's lines
    ok("--activate", "--remotesieve", "filter")
    assert ok("--list").split() == ['"filter"', "ACTIVE"]
    ok("--download", "--remotesieve", "filter", "--localsieve", str(tmp_path / "copy.sieve"))
    assert (tmp_path / "copy.sieve").read_bytes() == SCRIPT.encode()
    ok("--deactivate")
    ok("--delete", "--remotesieve", "filter")
    assert ok("--list").split() == []


def test_a_wrong_password_is_refused(sieve_connect, start_server, tmp_path):
    server = start_server(config(extra="managesieve.auth.require-tls = false\n"))
    server.add_account("bob@example.test", PASSWORD)
    result = run(sieve_connect, server, tmp_path, "--list", password="wrong password")
    assert result.returncode != 0
    assert "Authentication refused by server" in result.stderr


def test_starttls_with_the_test_ca(sieve_connect, start_server, server_cert, ca, tmp_path):
    server = start_server(config(server_cert))
    server.add_account("bob@example.test", PASSWORD)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    local = tmp_path / "filter.sieve"
    local.write_bytes(SCRIPT.encode())
    tls = ("--tlscafile", str(ca_file))
    result = run(sieve_connect, server, tmp_path, "--upload", "--localsieve", str(local),
                 "--remotesieve", "filter", tls_args=tls)  # fmt: skip
    assert result.returncode == 0, result.stderr
    listed = run(sieve_connect, server, tmp_path, "--list", tls_args=tls)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == ['"filter"']
    untrusted = run(sieve_connect, server, tmp_path, "--list", tls_args=())
    assert untrusted.returncode != 0  # the system CAs do not vouch for the test certificate
