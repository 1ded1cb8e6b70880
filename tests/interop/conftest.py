"""Fixtures of the interop tier: outside servers the tests compare ours with."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stalwart_py import passwords
from stalwart_py.plugin import discover_protocols
from tests.conftest import require_tool
from tests.integration.imap_support import PASSWORD, USER, config
from tests.support import dovecot as dovecot_support
from tests.support.servers import InProcessServer, write_config


@pytest.fixture(scope="session")
def dovecot() -> Iterator[dovecot_support.Dovecot]:
    """Debian's Dovecot on a loopback port, one for the session, serving USER/PASSWORD
    (each differential test module works in mailboxes of its own). Missing: skipped
    locally, a failure under CI=true (.ci/run installs dovecot-imapd)."""
    require_tool(dovecot_support.binary() or "dovecot")
    with dovecot_support.start_dovecot({USER: PASSWORD}) as server:
        yield server


@pytest.fixture(scope="session")
def stalwart(
    tmp_path_factory: pytest.TempPathFactory, server_cert: tuple[Path, Path]
) -> Iterator[InProcessServer]:
    """Our server, one for the session, as the IMAP integration tests configure it, with
    USER/PASSWORD (hashed at the tests' cheap scrypt cost: logins are many)."""
    path = write_config(tmp_path_factory.mktemp("stalwart"), config(server_cert))
    with InProcessServer(path, discover_protocols()) as server:
        # Only around the hashing: held for the session, the cheap cost leaked into
        # tests/unit/test_passwords.py, which checks the production cost.
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(passwords, "SCRYPT_LOG2_N", 8)
            server.add_account(USER, PASSWORD)
        yield server
