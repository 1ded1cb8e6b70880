"""fail2ban itself (fail2ban-regex, Debian's fail2ban) reads the shipped filter against the log a
server wrote while refusing logins over every protocol, in the text and the JSON format, with
user names that carry a forged log line."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import require_tool
from tests.support.logs import capture_log
from tests.support.refusals import (
    CONFIG,
    FILTER,
    INJECTED_USER,
    PASSWORD,
    USER,
    refuse_everywhere,
)


def fail2ban_addresses(tool: str, log_text: str, tmp_path, name: str) -> list[str]:
    path = tmp_path / name
    path.write_text(log_text)
    result = subprocess.run(
        [tool, "-o", "ip", str(path), str(FILTER)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.split()


@pytest.mark.parametrize("user", [USER, INJECTED_USER], ids=["plain", "forged"])
def test_fail2ban_finds_every_refused_client_and_nobody_else(start_server, tmp_path, user):
    tool = require_tool("fail2ban-regex")
    server = start_server(CONFIG)
    server.add_account(USER, PASSWORD)
    with capture_log() as log:
        done = refuse_everywhere(server, user)
    expected = list(done.values())
    assert fail2ban_addresses(tool, log.text, tmp_path, "text.log") == expected, log.text
    json_text = "\n".join(log.json_lines()) + "\n"
    assert fail2ban_addresses(tool, json_text, tmp_path, "json.log") == expected, json_text
