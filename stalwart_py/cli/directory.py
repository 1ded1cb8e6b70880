"""``stalwart-py account|domain|alias ...``: manage the directory in the configured data dir."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

from stalwart_py import app_passwords
from stalwart_py.cli.common import store_command
from stalwart_py.config import Config
from stalwart_py.config.types import parse_size
from stalwart_py.directory import Directory, normalize
from stalwart_py.files import private_dir
from stalwart_py.store import NotFound, Store
from stalwart_py.store.blobstore.filesystem import FilesystemBlobs

Command = Callable[..., argparse.ArgumentParser]


def register(commands: argparse._SubParsersAction, command: Command) -> None:
    account = commands.add_parser("account", help="Manage accounts.")
    accounts = account.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = command("add", "Create an account (its domain must be local).", accounts)
    add.add_argument("address")
    _password_option(add)
    add.add_argument("--admin", action="store_true", help="may use the admin API")
    add.add_argument(
        "--quota",
        type=_size,
        default=None,
        metavar="SIZE",
        help='storage quota such as "2G" (default: none)',
    )
    add.set_defaults(run=run(account_add))
    command("list", "List accounts.", accounts).set_defaults(run=run(account_list))
    passwd = command("passwd", "Set an account's password.", accounts)
    passwd.add_argument("address")
    _password_option(passwd)
    passwd.set_defaults(run=run(account_passwd))
    delete = command("delete", "Delete an account with all its mail.", accounts)
    delete.add_argument("address")
    delete.set_defaults(run=run(account_delete))
    _register_app_passwords(
        command("app-password", "Manage an account's app passwords.", accounts), command
    )
    two_factor = command("two-factor", "See or disable an account's two-factor sign-in.", accounts)
    two_factor_actions = two_factor.add_subparsers(
        dest="two_factor_action", required=True, metavar="ACTION"
    )
    for name, help_text, func in (
        ("status", "Whether it is enabled, and the recovery codes left.", two_factor_status),
        (
            "disable",
            "Disable it (a lost phone): the own password opens mail again.",
            two_factor_off,
        ),
    ):
        sub = command(name, help_text, two_factor_actions)
        sub.add_argument("address")
        sub.set_defaults(run=run(func))

    domain = commands.add_parser("domain", help="Manage local domains.")
    domains = domain.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, help_text, func in (
        ("add", "Add a local domain.", domain_add),
        ("delete", "Delete a local domain (it must have no accounts).", domain_delete),
    ):
        sub = command(name, help_text, domains)
        sub.add_argument("name")
        sub.set_defaults(run=run(func))
    command("list", "List local domains.", domains).set_defaults(run=run(domain_list))

    alias = commands.add_parser("alias", help="Manage aliases (@domain is a catch-all).")
    aliases = alias.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = command("add", "Point an alias at one or more addresses.", aliases)
    add.add_argument("address")
    add.add_argument("targets", nargs="+")
    add.set_defaults(run=run(alias_add))
    delete = command("delete", "Remove targets from an alias, or the whole alias.", aliases)
    delete.add_argument("address")
    delete.add_argument("targets", nargs="*")
    delete.set_defaults(run=run(alias_delete))
    command("list", "List aliases.", aliases).set_defaults(run=run(alias_list))

    backup = command(
        "backup",
        "Copy the store consistently (a snapshot, also while servers run; PostgreSQL too) and "
        "the data directory's files.",
    )
    backup.add_argument("destination", type=Path)
    backup.set_defaults(run=run(make_backup))


def _register_app_passwords(parser: argparse.ArgumentParser, command: Command) -> None:
    """``account app-password add|list|revoke`` (``stalwart_py.app_passwords``)."""
    actions = parser.add_subparsers(dest="app_password_action", required=True, metavar="ACTION")
    add = command(
        "add", "Generate an app password for some mail protocols; shown this once.", actions
    )
    add.add_argument("address")
    add.add_argument("name", help="what it is for, e.g. the device")
    add.add_argument(
        "--protocol",
        dest="protocols",
        action="append",
        required=True,
        choices=app_passwords.PROTOCOLS,
        help="a mail protocol it may log in to (repeat for several)",
    )
    add.set_defaults(run=run(app_password_add))
    listing = command("list", "List an account's app passwords (never the passwords).", actions)
    listing.add_argument("address")
    listing.set_defaults(run=run(app_password_list))
    revoke = command("revoke", "Revoke an app password, at once.", actions)
    revoke.add_argument("address")
    revoke.add_argument("id", type=int, help="its id, as list shows")
    revoke.set_defaults(run=run(app_password_revoke))


def _password_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--password-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="read the password from FILE (- for standard input); default: ask",
    )


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected a size such as "2G", got {text!r}') from None


def run(
    func: Callable[[Directory, argparse.Namespace], Awaitable[None]],
) -> Callable[[argparse.Namespace], int]:
    """A command on the directory; ``args.data_dir`` is the configured data directory."""

    async def on_directory(store: Store, config: Config, args: argparse.Namespace) -> None:
        args.data_dir = config.storage.data_dir
        await func(Directory(store, config.directory), args)

    return store_command(on_directory)


def read_password(args: argparse.Namespace) -> str:
    if args.password_file is not None:
        text = (
            sys.stdin.read() if str(args.password_file) == "-" else (args.password_file.read_text())
        )
        return text.rstrip("\r\n")
    import getpass  # (termios) for this command only, not every command's parser

    password = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != password:
        raise ValueError("the two passwords differ")
    return password


def _show(value: Any) -> str:
    return "-" if value is None else str(value)


async def account_add(directory: Directory, args: argparse.Namespace) -> None:
    password = read_password(args)
    account = await directory.add_account(
        args.address, password, is_admin=args.admin, quota_bytes=args.quota
    )
    print(f"created {account.address}" + (" (administrator)" if account.is_admin else ""))


async def account_list(directory: Directory, _args: argparse.Namespace) -> None:
    for account in await directory.store.list_accounts():
        role = "admin" if account.is_admin else "user"
        print(
            f"{account.address}\t{role}\t{account.used_messages} messages\t"
            f"{account.used_bytes}/{_show(account.quota_bytes)} bytes"
        )


async def account_passwd(directory: Directory, args: argparse.Namespace) -> None:
    account = await directory.set_password(args.address, read_password(args))
    print(f"password of {account.address} changed")


async def account_delete(directory: Directory, args: argparse.Namespace) -> None:
    await directory.delete_account(args.address)
    print(f"deleted {args.address} and all its mail")


async def app_password_add(directory: Directory, args: argparse.Namespace) -> None:
    record, password = await directory.add_app_password(args.address, args.name, args.protocols)
    print(f"app password {record.id} ({record.name}; {', '.join(record.protocols)}):")
    print(password)
    print("It is shown only this once.")


async def app_password_list(directory: Directory, args: argparse.Namespace) -> None:
    for record in await directory.list_app_passwords(args.address):
        created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(record.created))
        print(f"{record.id}\t{record.name}\t{','.join(record.protocols)}\t{created} UTC")


async def app_password_revoke(directory: Directory, args: argparse.Namespace) -> None:
    await directory.revoke_app_password(args.address, args.id)
    print(f"revoked app password {args.id} of {args.address}")


async def _account_id(directory: Directory, address: str) -> int:
    account = await directory.store.get_account(normalize(address))
    if account is None:
        raise NotFound(f"no account {normalize(address)}")
    return account.id


async def two_factor_status(directory: Directory, args: argparse.Namespace) -> None:
    """``enabled (N recovery codes left)``, ``pending confirmation`` or ``disabled``."""
    state = await directory.two_factor.status(await _account_id(directory, args.address))
    if state is None:
        print("disabled")
    elif state.enabled:
        print(f"enabled ({state.recovery_codes_left} recovery codes left)")
    else:
        print("pending confirmation")


async def two_factor_off(directory: Directory, args: argparse.Namespace) -> None:
    await directory.two_factor.disable(await _account_id(directory, args.address))
    print(f"two-factor sign-in disabled for {normalize(args.address)}")


async def domain_add(directory: Directory, args: argparse.Namespace) -> None:
    print(f"added {(await directory.add_domain(args.name)).name}")


async def domain_delete(directory: Directory, args: argparse.Namespace) -> None:
    await directory.delete_domain(args.name)
    print(f"deleted {args.name}")


async def domain_list(directory: Directory, _args: argparse.Namespace) -> None:
    for domain in await directory.list_domains():
        print(domain.name)


async def alias_add(directory: Directory, args: argparse.Namespace) -> None:
    alias = await directory.add_alias(args.address, args.targets)
    print(f"{alias.address} -> {', '.join(alias.targets)}")


async def alias_delete(directory: Directory, args: argparse.Namespace) -> None:
    await directory.delete_alias(args.address, args.targets)
    print(f"deleted {args.address}" + (f" -> {', '.join(args.targets)}" if args.targets else ""))


async def alias_list(directory: Directory, _args: argparse.Namespace) -> None:
    for alias in await directory.store.list_aliases():
        print(f"{alias.address} -> {', '.join(alias.targets)}")


# Files of the data directory that are not data: the running server's, or the database's
# own (the backup copies the database through the store).
NOT_COPIED = {"stalwart-py.pid", "stalwart-py.status.json"}


async def make_backup(directory: Directory, args: argparse.Namespace) -> None:
    await anyio.to_thread.run_sync(_check_empty, args.destination)
    written = await directory.store.backup(args.destination)
    database = {path.name for path in written}
    # Bodies in files are the store's to copy (those the backup refers to, not orphans).
    backend = directory.store.blob_backend
    bodies = backend.directory if isinstance(backend, FilesystemBlobs) else None
    written += await anyio.to_thread.run_sync(
        _copy_other_files, args.data_dir, args.destination, database, bodies
    )
    for path in written:
        print(path)


def _check_empty(destination: Path) -> None:
    if destination.exists() and any(destination.iterdir()):
        raise ValueError(f"{destination} is not empty")


def _copy_other_files(
    data_dir: Path, destination: Path, database: set[str], bodies: Path | None = None
) -> list[Path]:
    """Certificates, keys and the like: every file but the database's, the server's and the
    message bodies' (under ``bodies``)."""
    copied = []
    for source in sorted(data_dir.rglob("*")):
        if not source.is_file() or source.name in NOT_COPIED:
            continue
        if bodies is not None and source.is_relative_to(bodies):
            continue
        if source.name.split("-")[0] in database:  # the database, its -wal and -shm
            continue
        target = destination / source.relative_to(data_dir)
        private_dir(target.parent)
        shutil.copy2(source, target)  # with the source's mode
        copied.append(target)
    return copied
