"""Shared fixtures: servers on ephemeral ports, a test CA, and the interop tool gate."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

from stalwart_py import passwords
from stalwart_py.plugin import discover_protocols
from tests.support.protocols import PROTOCOLS
from tests.support.servers import InProcessServer, write_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def cheap_password_hashing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """scrypt at its production cost takes ~80 ms a hash; in-process tests use a cheaper one
    (servers started as child processes keep the real cost, and test_passwords checks it)."""
    if request.module.__name__ != "tests.unit.test_passwords":
        monkeypatch.setattr(passwords, "SCRYPT_LOG2_N", 8)


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def server_cert(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A certificate for mail.example.test and localhost signed by the test CA: (cert, key)."""
    cert = ca.issue_cert("mail.example.test", "localhost", "127.0.0.1", "::1")
    directory = tmp_path_factory.mktemp("tls")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return cert_path, key_path


@pytest.fixture(scope="session")
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    """A client context that trusts the test CA only."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., InProcessServer]]:
    """Start an in-process server on a configuration text; stopped at the end of the test."""
    started: list[InProcessServer] = []

    def start(text: str, protocols: dict | None = None) -> InProcessServer:
        """``protocols`` defaults to every installed protocol plus the test probe."""
        path = write_config(tmp_path, text)
        if protocols is None:
            protocols = {**discover_protocols(), **PROTOCOLS}
        server = InProcessServer(path, protocols)
        started.append(server.__enter__())
        return server

    yield start
    for server in reversed(started):
        server.__exit__(None, None, None)


def heavy_tiers_enabled() -> bool:
    """The heavier tiers run in CI (.ci/run, CI=true) or when asked for with STALWART_HEAVY=1;
    a local `make test` stays under ten minutes without them."""
    return os.environ.get("CI") == "true" or os.environ.get("STALWART_HEAVY") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if heavy_tiers_enabled():
        return
    skip = pytest.mark.skip(reason="heavy tier: runs with CI=true (.ci/run) or STALWART_HEAVY=1")
    for item in items:
        if item.get_closest_marker("heavy") is not None:
            item.add_marker(skip)


def require_tool(name: str) -> str:
    """The path of an interop tool. Missing: skip locally, fail under CI=true."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (.ci/run installs it with apt-get)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def echo_plugin(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The example plugin (examples/echo-plugin), pip-installed as its own distribution into
    a directory the server's environment then has on its path."""
    target = tmp_path_factory.mktemp("site")
    build = tmp_path_factory.mktemp("build")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-cache-dir",
            "--target",
            str(target),
            str(ROOT / "examples" / "echo-plugin"),
        ],
        check=True,
        cwd=build,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert list(target.glob("stalwart_py_echo-*.dist-info/entry_points.txt"))
    path = os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path}
