"""``[storage]``: the backend and, for PostgreSQL, its connection settings; errors name the
file, the key path and what was expected."""

from __future__ import annotations

import pytest

from stalwart_py import server
from stalwart_py.config import ConfigError, parse_config
from stalwart_py.store import StoreError, create_store
from tests.support.protocols import PROTOCOLS


@pytest.fixture(autouse=True)
def installed_protocols(monkeypatch):
    monkeypatch.setattr(server, "discover_protocols", lambda: dict(PROTOCOLS))


def test_postgresql_settings(tmp_path):
    (tmp_path / "pg-password").write_text("s3cret\nignored\n")
    text = (
        f'[storage]\ndata-dir = "{tmp_path}"\nbackend = "postgresql"\n'
        'url = "postgresql://mail@db.example.test/mail"\npassword-file = "pg-password"\n'
        'pool-size = 4\nstatement-timeout = "5s"\n'
    )
    storage = parse_config(text, tmp_path / "c.toml", {}).storage
    assert (storage.backend, storage.url, storage.pool_size, storage.statement_timeout) == (
        "postgresql",
        "postgresql://mail@db.example.test/mail",
        4,
        5.0,
    )
    assert storage.password_file == tmp_path / "pg-password"  # relative to the file
    postgresql = pytest.importorskip("stalwart_py.store.postgresql", exc_type=ImportError)
    store = create_store(storage)
    assert isinstance(store, postgresql.PostgresStore)
    assert store._engine._password == "s3cret"
    assert store._engine._statement_timeout_ms == 5000


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ('backend = "postgresql"', 'storage: backend "postgresql" needs url'),
        ('backend = "postgresql"\nurl = "mysql://x/y"', "storage: url must be a URI starting"),
        (
            'url = "postgresql://x/y"',
            'storage: url and password-file are for backend = "postgresql"',
        ),
        ('backend = "oracle"', "storage.backend"),
        ('backend = "postgresql"\nurl = "postgresql:///m"\npool-size = 0', "storage.pool-size"),
    ],
)
def test_bad_storage_settings(tmp_path, keys, message):
    text = f'[storage]\ndata-dir = "{tmp_path}"\n{keys}\n'
    with pytest.raises(ConfigError) as info:
        parse_config(text, tmp_path / "c.toml", {})
    assert str(tmp_path / "c.toml") in str(info.value)
    assert message in str(info.value)


def test_an_unreadable_password_file_is_named(tmp_path):
    text = (
        f'[storage]\ndata-dir = "{tmp_path}"\nbackend = "postgresql"\n'
        'url = "postgresql:///mail"\npassword-file = "missing"\n'
    )
    storage = parse_config(text, tmp_path / "c.toml", {}).storage
    with pytest.raises(StoreError, match=r"cannot read storage\.password-file .*missing"):
        create_store(storage)
