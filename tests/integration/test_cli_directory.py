"""``stalwart-py domain|account|alias ...`` against a data directory, and the first start."""

from __future__ import annotations

import io
import re
import sqlite3
import sys
from pathlib import Path

import anyio
import pytest

from stalwart_py import cli, server
from stalwart_py.config import DirectorySettings, ThrottleSettings
from stalwart_py.directory import Directory
from stalwart_py.passwords import verify_password
from stalwart_py.queue.dkim import make_key
from stalwart_py.sasl import AuthFailed
from stalwart_py.store.sqlite import DATABASE_FILE, SqliteStore
from tests.support.nodes import configured_store
from tests.support.servers import ServerProcess, write_config

# The directory of a command's process: no delay after a failed login (the test makes some).
NO_DELAY = DirectorySettings(throttle=ThrottleSettings(failure_delay=0))
# What a server started on the data directory needs besides: a listener.
SERVED = (
    '[server]\nhostname = "mx.example.test"\n\n'
    '[server.listener.smtp]\nbind = "127.0.0.1:0"\nprotocol = "smtp"\n'
)


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.setattr(server, "discover_protocols", dict)
    return write_config(tmp_path, '[server]\nhostname = "mx.example.test"\n')


def run(capsys, config, *args, stdin: str | None = None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = cli.main([*args, "--config", str(config)])
    out, err = capsys.readouterr()
    return code, out, err


def test_domains_accounts_and_aliases(capsys, config, monkeypatch):
    assert run(capsys, config, "domain", "add", "Example.TEST")[1] == "added example.test\n"
    code, _, err = run(
        capsys,
        config,
        "account",
        "add",
        "bob@nowhere.test",
        "--password-file",
        "-",
        stdin="password123\n",
        monkeypatch=monkeypatch,
    )
    assert code == 1
    assert "nowhere.test is not a local domain; add it first" in err
    code, out, _ = run(
        capsys,
        config,
        "account",
        "add",
        "bob@example.test",
        "--admin",
        "--quota",
        "1G",
        "--password-file",
        "-",
        stdin="password123\n",
        monkeypatch=monkeypatch,
    )
    assert (code, out) == (0, "created bob@example.test (administrator)\n")
    code, out, _ = run(capsys, config, "account", "list")
    assert out == "bob@example.test\tadmin\t0 messages\t0/1073741824 bytes\n"
    assert run(capsys, config, "alias", "add", "@example.test", "bob@example.test")[1] == (
        "@example.test -> bob@example.test\n"
    )
    assert run(capsys, config, "alias", "list")[1] == "@example.test -> bob@example.test\n"
    code, _, err = run(capsys, config, "domain", "delete", "example.test")
    assert (code, err) == (
        1,
        "stalwart-py: domain example.test still has accounts; delete them first\n",
    )
    code, out, _ = run(
        capsys,
        config,
        "account",
        "passwd",
        "bob@example.test",
        "--password-file",
        "-",
        stdin="another password\n",
        monkeypatch=monkeypatch,
    )
    assert out == "password of bob@example.test changed\n"
    code, _, err = run(
        capsys,
        config,
        "account",
        "passwd",
        "bob@example.test",
        "--password-file",
        "-",
        stdin="short\n",
        monkeypatch=monkeypatch,
    )
    assert "at least 8 characters" in err
    assert run(capsys, config, "alias", "delete", "@example.test")[0] == 0
    assert run(capsys, config, "account", "delete", "bob@example.test")[0] == 0
    assert run(capsys, config, "domain", "delete", "example.test")[0] == 0
    assert run(capsys, config, "domain", "list")[1] == ""


EVIL = "e.x/../../../../evil"


@pytest.mark.own_store_backend("puts a domain in the SQLite file behind the directory's back")
def test_hostile_names_are_refused_by_every_command(capsys, config, monkeypatch):
    """The field failure: a domain named like a path was added, and ``dkim generate`` then
    wrote its key outside the data directory. Names are checked when they are added, and a
    key's path is proven to stay inside the data directory even for a domain already stored
    (here put in the database behind the directory's back, as an older version let it in)."""
    for name in (EVIL, "..", "a/b.example", "e\x01x.test"):
        code, _, err = run(capsys, config, "domain", "add", name)
        assert code == 1 and "not a valid domain name" in err, err
    assert run(capsys, config, "domain", "add", "example.test")[0] == 0
    for address in ("../../etc/passwd@example.test", "a\x00b@example.test", "x\r\ny@example.test"):
        code, _, err = run(
            capsys,
            config,
            "account",
            "add",
            address,
            "--password-file",
            "-",
            stdin="password123\n",
            monkeypatch=monkeypatch,
        )
        assert code == 1 and "the local part" in err, err
    code, _, err = run(capsys, config, "alias", "add", "x@example.test", "../y@example.test")
    assert code == 1 and "the local part" in err, err

    data_dir = config.parent / "var"
    with sqlite3.connect(data_dir / DATABASE_FILE) as db:
        db.execute("INSERT INTO domains(name, created) VALUES (?, 0)", (EVIL,))
    before = set(config.parent.parent.rglob("*.pem"))
    code, _, err = run(capsys, config, "dkim", "generate", EVIL, "--algorithm", "ed25519")
    assert code == 1 and "not a valid domain name" in err, err
    assert set(config.parent.parent.rglob("*.pem")) == before  # no key written anywhere
    with pytest.raises(ValueError, match="not a valid domain name"):
        make_key(EVIL)


def test_the_first_start_creates_and_shows_an_administrator(tmp_path):
    path = write_config(tmp_path, SERVED)
    with ServerProcess(path) as running:
        shown = re.search(
            r"Created the administrator account (\S+) with the password\n\n    (\S+)\n",
            running.log(),
        )
        assert shown is not None, running.log()
        address, password = shown.groups()
    assert address == "admin@mx.example.test"
    assert verify_password(password, anyio.run(stored_secret, path, address))
    with ServerProcess(path) as again:  # only the first time
        assert "Created the administrator" not in again.log()


async def stored_secret(config: Path, address: str) -> str:
    async with configured_store(config) as store:
        return (await store.get_credentials(address)).secret


def test_backup_while_a_server_runs(tmp_path, capsys):
    path = write_config(tmp_path, SERVED)
    with ServerProcess(path):  # holds the data directory, writes nothing meanwhile
        assert cli.main(["domain", "add", "example.test", "--config", str(path)]) == 0
        code = cli.main(["backup", str(tmp_path / "copy"), "--config", str(path)])
    out = capsys.readouterr().out
    assert code == 0
    copied = {line.rpartition("/copy/")[2] for line in out.splitlines() if "/copy/" in line}
    assert "stalwart.sqlite3" in copied
    assert not any(name.endswith(("-wal", "-shm", ".pid", ".status.json")) for name in copied)
    assert anyio.run(backed_up_domains, tmp_path / "copy") == ["example.test", "mx.example.test"]
    code = cli.main(["backup", str(tmp_path / "copy"), "--config", str(path)])
    assert code == 1
    assert "is not empty" in capsys.readouterr().err


async def backed_up_domains(directory) -> list[str]:
    store = SqliteStore(directory)
    await store.open()
    try:
        assert await store.integrity_check() == "ok"
        return [domain.name for domain in await store.list_domains()]
    finally:
        await store.close()


def test_app_passwords(capsys, config, monkeypatch):
    """``account app-password add|list|revoke``: the password shown once logs in over the
    protocols given, and no longer once revoked."""
    run(capsys, config, "domain", "add", "example.test")
    created = run(
        capsys,
        config,
        "account",
        "add",
        "bob@example.test",
        "--password-file",
        "-",
        stdin="password123\n",
        monkeypatch=monkeypatch,
    )
    assert created[0] == 0, created
    add = ("account", "app-password", "add", "bob@example.test", "phone")
    code, out, err = run(capsys, config, *add, "--protocol", "imap", "--protocol", "pop3")
    assert code == 0, err
    shown = re.fullmatch(
        r"app password (\d+) \(phone; imap, pop3\):\n(\S+)\nIt is shown only this once.\n", out
    )
    assert shown is not None, out
    number, password = shown.groups()
    code, _, err = run(capsys, config, *add, "--protocol", "imap")
    assert code == 1 and "exists already" in err, err
    code, out, _ = run(capsys, config, "account", "app-password", "list", "bob@example.test")
    assert re.fullmatch(rf"{number}\tphone\timap,pop3\t\d{{4}}-\d\d-\d\d \d\d:\d\d UTC\n", out)
    assert password not in out

    async def logins() -> list[bool]:
        async with configured_store(config) as store:
            directory = Directory(store, NO_DELAY)
            results = []
            for protocol in ("imap", "smtp", None):
                try:
                    await directory.login("bob@example.test", password, None, protocol=protocol)
                    results.append(True)
                except AuthFailed:
                    results.append(False)
            return results

    assert anyio.run(logins) == [True, False, False]  # IMAP only: not SMTP, not HTTP
    revoke = ("account", "app-password", "revoke", "bob@example.test")
    assert (
        run(capsys, config, *revoke, number)[1]
        == f"revoked app password {number} of bob@example.test\n"
    )
    assert anyio.run(logins) == [False, False, False]
    code, _, err = run(capsys, config, *revoke, number)
    assert code == 1 and f"no app password {number}" in err


def test_two_factor_status_and_disable(capsys, config, monkeypatch):
    """``account two-factor status|disable``: the administrator's way out for an account that
    lost its phone and its recovery codes; the own password then opens IMAP again."""
    from tests.support.totp import rfc6238

    run(capsys, config, "domain", "add", "example.test")
    add = ("account", "add", "bob@example.test", "--password-file", "-")
    assert run(capsys, config, *add, stdin="password123\n", monkeypatch=monkeypatch)[0] == 0
    status = ("account", "two-factor", "status", "bob@example.test")
    assert run(capsys, config, *status)[1] == "disabled\n"

    async def directory_do(action):
        async with configured_store(config) as store:
            directory = Directory(store, NO_DELAY)
            return await action(directory, (await store.get_account("bob@example.test")).id)

    async def start(directory, account_id):
        return await directory.two_factor.start(account_id, "bob@example.test", "mx")

    async def confirm(directory, account_id):
        step = int(directory.two_factor.clock()) // 30
        await directory.two_factor.confirm(account_id, rfc6238(enrolment.secret, step))

    async def imap_login(directory, account_id):
        try:
            await directory.login("bob@example.test", "password123", None, protocol="imap")
        except AuthFailed as refusal:
            return str(refusal)
        return "ok"

    enrolment = anyio.run(directory_do, start)
    assert run(capsys, config, *status)[1] == "pending confirmation\n"
    anyio.run(directory_do, confirm)
    assert run(capsys, config, *status)[1] == "enabled (10 recovery codes left)\n"
    assert "use an app password" in anyio.run(directory_do, imap_login)
    disable = ("account", "two-factor", "disable", "bob@example.test")
    assert run(capsys, config, *disable)[1] == "two-factor sign-in disabled for bob@example.test\n"
    assert run(capsys, config, *status)[1] == "disabled\n"
    assert anyio.run(directory_do, imap_login) == "ok"
    code, _, err = run(capsys, config, *disable)
    assert code == 1 and "not set up" in err, err
    code, _, err = run(capsys, config, "account", "two-factor", "status", "nobody@example.test")
    assert code == 1 and "no account nobody@example.test" in err, err
