"""Global Sieve scripts (RFC 6609 include :global) with sieve-connect, the command-line
ManageSieve client: an administrator uploads, lists, downloads and deletes ``global/<name>``;
an ordinary user's upload of one is refused."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import require_tool
from tests.support.managesieve import PASSWORD, config

pytestmark = pytest.mark.interop

SCRIPT = 'require "fileinto";\r\nif header :contains "subject" "[list]" { fileinto "Lists"; }\r\n'


def run(tool, server, tmp_path, user, *args):
    host, port = server.address("managesieve")
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    with secret.open() as handle:
        return subprocess.run(
            [tool, "--server", host, "--port", str(port), "--user", user,
             "--passwordfd", str(handle.fileno()), "--notlsverify", *args],
            pass_fds=(handle.fileno(),), capture_output=True, text=True, timeout=60,
            cwd=tmp_path, stdin=subprocess.DEVNULL,
        )  # fmt: skip


def test_an_administrator_manages_global_scripts_with_sieve_connect(start_server, tmp_path):
    tool = require_tool("sieve-connect")
    server = start_server(config(extra="managesieve.auth.require-tls = false\n"))
    server.add_account("admin@example.test", PASSWORD, is_admin=True)
    server.add_account("bob@example.test", PASSWORD)
    local = tmp_path / "lists.sieve"
    local.write_bytes(SCRIPT.encode())

    def admin(*args):
        result = run(tool, server, tmp_path, "admin@example.test", *args)
        assert result.returncode == 0, result.stderr
        return result.stdout

    admin("--upload", "--localsieve", str(local), "--remotesieve", "global/lists")
    assert admin("--list").split() == ['"global/lists"']
    admin("--download", "--remotesieve", "global/lists", "--localsieve", str(tmp_path / "c"))
    assert (tmp_path / "c").read_bytes() == SCRIPT.encode()
    refused = run(tool, server, tmp_path, "bob@example.test", "--upload", "--localsieve",
                  str(local), "--remotesieve", "global/lists")  # fmt: skip
    assert refused.returncode != 0
    assert "only an administrator may manage global scripts" in refused.stderr + refused.stdout
    admin("--delete", "--remotesieve", "global/lists")
    assert admin("--list").split() == []
