"""The pytest plugin of the test kit, registered under the ``pytest11`` entry point.

It only defines fixtures, and imports nothing of the server until a test asks for one, so
having stalwart-py installed changes no other project's test run. See
:mod:`stalwart_py.testing` for what they give and ``docs/plugins.md`` for a walkthrough.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import trustme

    from stalwart_py.plugin import Protocol
    from stalwart_py.testing.factory import ServerFactory
    from stalwart_py.testing.server import RunningServer


# The name stalwart_py.testing.workers reads; this module imports nothing of the server early.
WORKERS_ENVIRONMENT = "STALWART_TEST_WORKERS"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--server-workers",
        type=int,
        default=None,
        metavar="N",
        help="every stalwart-py server the tests start runs N worker processes "
        "(server.workers = N, unless a test's configuration sets it; also "
        f"${WORKERS_ENVIRONMENT}=N)",
    )


def pytest_configure(config: pytest.Config) -> None:
    workers = config.getoption("--server-workers", default=None)
    if workers is not None:
        # an environment variable, so that servers started as child processes see it too
        os.environ[WORKERS_ENVIRONMENT] = str(workers)


def pytest_report_header(config: pytest.Config) -> str | None:
    workers = os.environ.get(WORKERS_ENVIRONMENT)
    return f"stalwart-py servers: server.workers = {workers}" if workers else None


@pytest.fixture
def stalwart_protocols() -> dict[str, type[Protocol]]:
    """The protocols servers started by the kit can serve: every installed one (found by
    entry point). Override it to add a protocol class that is not installed."""
    from stalwart_py.plugin import discover_protocols

    return discover_protocols()


@pytest.fixture(scope="session")
def stalwart_ca() -> trustme.CA:
    """A test certificate authority (trustme), one per test session."""
    import trustme

    return trustme.CA()


@pytest.fixture(scope="session")
def stalwart_certificate(
    stalwart_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """(certificate chain, private key) files for localhost, mail.example.test, 127.0.0.1
    and ::1, signed by ``stalwart_ca``."""
    cert = stalwart_ca.issue_cert("mail.example.test", "localhost", "127.0.0.1", "::1")
    directory = tmp_path_factory.mktemp("tls")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return cert_path, key_path


@pytest.fixture(scope="session")
def stalwart_client_tls(stalwart_ca: trustme.CA) -> ssl.SSLContext:
    """A client TLS context that trusts ``stalwart_ca`` only."""
    context = ssl.create_default_context()
    stalwart_ca.configure_trust(context)
    return context


@pytest.fixture
def stalwart_servers(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    stalwart_protocols: dict[str, type[Protocol]],
    stalwart_certificate: tuple[Path, Path],
    stalwart_client_tls: ssl.SSLContext,
) -> Iterator[ServerFactory]:
    """Starts servers: ``stalwart_servers.start(toml)`` returns a running server (stopped at the end
    of the test). Passwords are hashed at a cheap scrypt cost meanwhile."""
    from stalwart_py import passwords
    from stalwart_py.testing.factory import ServerFactory

    monkeypatch.setattr(passwords, "SCRYPT_LOG2_N", min(passwords.SCRYPT_LOG2_N, 8))
    factory = ServerFactory(
        tmp_path,
        stalwart_protocols,
        certificate=stalwart_certificate,
        client_tls=stalwart_client_tls,
    )
    with factory:
        yield factory


@pytest.fixture
def stalwart_config() -> str:
    """The configuration ``stalwart_server`` starts with: override it in your test module
    (or conftest) with a TOML snippet of the listeners you test."""
    raise pytest.UsageError(
        "stalwart_server needs a stalwart_config fixture returning the TOML to start with"
    )


@pytest.fixture
def stalwart_server(stalwart_servers: ServerFactory, stalwart_config: str) -> RunningServer:
    """A server started from ``stalwart_config`` with the test CA's certificate."""
    return stalwart_servers.start(stalwart_config, tls=True)
