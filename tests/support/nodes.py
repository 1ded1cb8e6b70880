"""Configurations of whole servers for the tests that run them as real processes: one node
with ``server.workers = N`` (tests/integration/test_workers*.py), or a pair of nodes on one
PostgreSQL database (tests/integration/test_pg_node_*.py). One builder, so that what such a
node is configured with (its listeners, its [server] table) is written once; each test adds
only what it is about (a rate limit, a queue that sends to its peer, a throttle).

The listeners bind ephemeral ports on loopback; a test reads the ports from the node's
``ready`` event (``ServerProcess.address``), so two nodes on one machine never collide.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import http.client
import json
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path

from stalwart_py import cli
from stalwart_py.certificates import CertificateStore
from stalwart_py.config import StorageSettings
from stalwart_py.server import load
from stalwart_py.store import Store, create_store
from tests.support.servers import WAIT, ServerProcess, write_config

# What a listener of each id is, in the tests that start nodes.
LISTENERS: dict[str, str] = {
    "smtp": 'protocol = "smtp"',
    "imap": 'protocol = "imap"\nimap.auth.allow-plaintext = true',
    "imaps": 'protocol = "imap"\ntls.implicit = true',
    "http": 'protocol = "http"',
    # an MX listener: loopback is no relay host here, so its mail is checked as a
    # stranger's and the smtp.rate limits apply to it (docs/inbound.md)
    "mx": 'protocol = "smtp"\nsmtp.relay-hosts = []',
}


def node_config(
    listeners: Iterable[str],
    *,
    hostname: str = "mx.example.test",
    workers: int = 1,
    server: str = "",
    listener_keys: dict[str, str] | None = None,
    tables: str = "",
) -> str:
    """A node's configuration: ``listeners`` (ids of ``LISTENERS``, each with more keys from
    ``listener_keys``), a [server] table with ``hostname``, ``workers`` and the keys in
    ``server``, then ``tables``. No [storage] table: ``write_config`` adds this run's, or
    ``node_pair`` PostgreSQL's."""
    keys = listener_keys or {}
    parts = [f'[server]\nhostname = "{hostname}"\nworkers = {workers}\n{server}']
    for name in listeners:
        body = f"{LISTENERS[name]}\n{keys.get(name, '')}".rstrip()
        parts.append(f'[server.listener.{name}]\nbind = ["127.0.0.1:0"]\n{body}\n')
    parts.append(tables)
    return "\n".join(parts)


def queue_tables(peer_port: int, dns_port: int, *, hold: bool = False) -> str:
    """A queue that sends to a test's peer (``mail_peers.Peer``) on ``peer_port``, asking the
    test's name server (``ZoneServer``) on ``dns_port``; the first retry an hour away."""
    return (
        f'[queue]\nport = {peer_port}\nretry = ["1h"]\nhold = {str(hold).lower()}\n\n'
        f'[queue.dns]\nnameservers = ["127.0.0.1:{dns_port}"]\n'
    )


def postgres_storage(url: str, data_dir: Path, blob: str = "") -> str:
    """A [storage] table on the PostgreSQL database of ``url``, the node's own files in
    ``data_dir``; ``blob``: keys of a [storage.blob] table (the bodies elsewhere, as S3)."""
    table = f'[storage]\ndata-dir = "{data_dir}"\nbackend = "postgresql"\nurl = "{url}"\n'
    return table + (f"\n[storage.blob]\n{blob}\n" if blob else "") + "\n"


def add_accounts(config: Path, accounts: Iterable[tuple[str, str, bool]], scratch: Path) -> None:
    """``stalwart-py domain add example.test`` and ``account add`` for each (address,
    password, administrator?) with the configuration ``config``, as an administrator would."""
    assert cli.main(["domain", "add", "example.test", "--config", str(config)]) == 0
    secret = scratch / "secret"
    for address, password, admin in accounts:
        secret.write_text(password)
        command = ["account", "add", address, "--password-file", str(secret)]
        command += ["--admin"] if admin else []
        assert cli.main([*command, "--config", str(config)]) == 0


@contextlib.contextmanager
def node_pair(
    url: str,
    tmp_path: Path,
    config: Callable[[str], str],
    *,
    blob: str = "",
    accounts: Iterable[tuple[str, str, bool]] = (),
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Nodes a and b, running as two ``stalwart-py serve`` processes on the database of
    ``url``: each with a data directory of its own (``tmp_path``/a, /b), the configuration
    ``config(name)`` (``node_config``) with a [storage] table on that database (``blob``: the
    keys of their shared [storage.blob]). The domain example.test and ``accounts`` are made
    with the CLI on a before they start: in the database, so b has them too. A node's
    configuration file is its ``config_path``."""
    paths = []
    for name in ("a", "b"):
        directory = tmp_path / name
        directory.mkdir()
        text = postgres_storage(url, directory / "var", blob) + config(name)
        paths.append(write_config(directory, text))
    add_accounts(paths[0], accounts, tmp_path)
    with ServerProcess(paths[0]) as a, ServerProcess(paths[1]) as b:
        yield a, b


def storage_of(config: Path, data_dir: Path | None = None) -> StorageSettings:
    """The [storage] table of the configuration file ``config`` (SQLite or PostgreSQL, as the
    file says, ``--store-backend`` included); ``data_dir``: another directory for the files of
    the process that opens it, as another node's (on PostgreSQL: another node id)."""
    storage = load(config).storage
    return storage if data_dir is None else dataclasses.replace(storage, data_dir=data_dir)


@contextlib.asynccontextmanager
async def configured_store(config: Path, data_dir: Path | None = None) -> AsyncIterator[Store]:
    """The store of a server with the configuration file ``config``, opened in this process
    (``storage_of``), as another process of the node or, with ``data_dir``, another node."""
    store = create_store(storage_of(config, data_dir))
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def certificates_of(
    config: Path, data_dir: Path | None = None
) -> AsyncIterator[CertificateStore]:
    """A certificate store on ``configured_store(config, data_dir)``: what it installs is
    announced to the server's processes (and nodes), as the ACME worker's installs are."""
    async with configured_store(config, data_dir) as store:
        certificates = CertificateStore(storage_of(config, data_dir).data_dir)
        certificates.store = store
        yield certificates


def change_password(
    node: ServerProcess, admin: tuple[str, str], address: str, password: str
) -> None:
    """``PATCH /api/accounts/{address}`` with the new ``password`` on ``node``'s ``http``
    listener, as the administrator ``admin`` (address, password); the answer must be 200. A
    request left without an answer fails with the node's log: seen once under load
    (RemoteDisconnected, test_pg_node_processes) and not reproduced since, so the next time
    the server's side of it (its debug log says how each session ended) is at hand."""
    host, port = node.address("http")
    api = http.client.HTTPConnection(host, port, timeout=WAIT)
    token = base64.b64encode(":".join(admin).encode()).decode()
    try:
        api.request(
            "PATCH",
            f"/api/accounts/{address}",
            body=json.dumps({"password": password}),
            headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
        )
        response = api.getresponse()
        assert response.status == 200, response.read()
    except (http.client.HTTPException, ConnectionError) as exc:
        raise AssertionError(f"{exc!r}; the node's log ends:\n{node.log()[-20000:]}") from exc
    finally:
        api.close()
