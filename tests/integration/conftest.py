"""Fixtures the IMAP integration modules share; each module brings its own ``server``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.imap_support import Raw


@pytest.fixture
def raw(server) -> Iterator[Raw]:
    """A raw IMAP session on the module's ``server``, logged in, with INBOX selected."""
    with Raw(server) as session:
        session.login()
        session.command("SELECT INBOX")
        yield session
