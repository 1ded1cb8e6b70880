"""IDLE waits for the client's DONE and for changes in one task: changes reported meanwhile do
not postpone the autologout, which counts over the whole IDLE (RFC 9051 section 5.4)."""

from __future__ import annotations

import time

import pytest

from protocols.imap import settings as imap_settings
from tests.integration.imap_support import USER, Raw, append, message, start

IDLE_TIMEOUT = 1.5  # seconds


@pytest.fixture
def server(start_server, server_cert, monkeypatch):
    # RFC 9051 wants at least 30 minutes, which a test cannot wait for
    monkeypatch.setattr(imap_settings, "MIN_IDLE_TIMEOUT", 0.0)
    return start(start_server, server_cert, f'[server.imap]\nidle-timeout = "{IDLE_TIMEOUT}s"\n')


@pytest.mark.single_worker(reason="the idle-timeout under RFC 9051's minimum is patched in")
def test_changes_reported_in_idle_do_not_postpone_its_autologout(server):
    with Raw(server) as raw:
        raw.login()
        raw.command("SELECT INBOX")
        raw.send("i1 IDLE\r\n")
        assert raw.line() == b"+ idling"
        started = time.monotonic()
        reported = 0
        while time.monotonic() - started < 3 * IDLE_TIMEOUT:
            append(server, USER, "INBOX", message(f"during idle {reported}"))
            line = raw.line()
            if line.startswith(b"* BYE"):
                break
            assert line == b"* %d EXISTS" % (reported + 1), line
            reported += 1
            time.sleep(0.2)  # ok: paces the changes, each one reported before the next
        else:
            raise AssertionError(f"no autologout in {3 * IDLE_TIMEOUT}s of IDLE")
        assert line == b"* BYE Autologout: idle for too long"
        assert reported >= 3  # the changes were reported while it waited
        assert time.monotonic() - started < IDLE_TIMEOUT + 1.0
