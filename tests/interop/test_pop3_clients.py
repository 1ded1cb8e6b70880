"""POP3 with the clients people use to empty a maildrop: fetchmail and getmail6 (Debian
packages) each download 200 messages and delete them; IMAP then finds INBOX empty."""

from __future__ import annotations

import imaplib
import os
import subprocess

import pytest

from tests.conftest import require_tool
from tests.support.pop3 import PASSWORD, USER, config, fill, message

pytestmark = [pytest.mark.interop]
COUNT = 200


@pytest.fixture
def server(start_server, server_cert):
    server = start_server(config(server_cert))
    server.add_account(USER, PASSWORD)
    fill(server, [message(n, size=3000) for n in range(COUNT)])
    return server


def inbox_count(server) -> int:
    imap = imaplib.IMAP4(*server.address("imap"), timeout=20)
    imap.login(USER, PASSWORD)
    typ, data = imap.select("INBOX")
    assert typ == "OK"
    imap.logout()
    return int(data[0])


def run_client(args: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    """Run a POP3 client; one that hangs fails the test with what it printed so far (under
    the test's own 120 s timeout, which would show only the test's stack)."""
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=90, **kwargs)
    except subprocess.TimeoutExpired as exc:
        printed = (exc.stdout or "")[-3000:] + (exc.stderr or "")[-3000:]
        pytest.fail(f"{args[0]} still ran after 90 s; it printed:\n{printed}")


def test_fetchmail_downloads_and_deletes_200_messages(server, tmp_path, ca):
    fetchmail = require_tool("fetchmail")
    host, port = server.address("pop3")
    ca_path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    out = tmp_path / "out.mbox"
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        f"poll {host} service {port} protocol pop3 auth password timeout 60\n"
        f'  user "{USER}" password "{PASSWORD}" is root here\n'
        f"  sslproto '' fetchall nokeep\n"
        f"  mda \"/bin/sh -c 'cat >> {out}'\"\n"
    )
    rc.chmod(0o600)
    result = run_client(
        [fetchmail, "-f", str(rc), "--nosyslog", "--nodetach", "-v", "--idfile",
         str(tmp_path / "ids"), "--pidfile", str(tmp_path / "pid")],
        env={**os.environ, "HOME": str(tmp_path), "FETCHMAILHOME": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    subjects = out.read_bytes().split(b"Subject: message ")[1:]
    assert sorted(int(subject.split(b"\n")[0]) for subject in subjects) == list(range(COUNT))
    assert inbox_count(server) == 0


@pytest.mark.heavy  # about 15 s: getmail starts a shell per message
def test_getmail6_downloads_and_deletes_200_messages(server, tmp_path):
    getmail = require_tool("getmail")
    host, port = server.address("pop3")
    out = tmp_path / "out.mbox"
    out.touch()
    rc = tmp_path / "getmailrc"
    rc.write_text(
        f"[retriever]\ntype = SimplePOP3Retriever\nserver = {host}\nport = {port}\n"
        f"username = {USER}\npassword = {PASSWORD}\n\n"
        # An external command: getmail's mbox and Maildir writers refuse to run as root.
        f"[destination]\ntype = MDA_external\npath = /bin/sh\n"
        f"arguments = ('-c', 'cat >> {out}')\nallow_root_commands = true\n\n"
        "[options]\ndelete = true\nread_all = true\nverbose = 2\n"
    )
    result = run_client([getmail, "--getmaildir", str(tmp_path), "--rcfile", str(rc)])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    subjects = out.read_bytes().split(b"Subject: message ")[1:]
    assert sorted(int(subject.split(b"\n")[0]) for subject in subjects) == list(range(COUNT))
    assert inbox_count(server) == 0
