"""``stalwart-py migrate --to postgresql://...``: copy the SQLite store of ``--config`` into a
PostgreSQL database, verify the copy and print a summary (``stalwart_py/store/pg_migrate.py``).

The configuration is read as by every other command; its ``storage.data-dir`` holds the
SQLite store to copy. The exit status is 0 only if every table's row count and every body's
SHA-256 are the same in the target.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio

from stalwart_py.config import Config, ConfigError
from stalwart_py.server import load
from stalwart_py.store import StoreError

Command = Callable[..., argparse.ArgumentParser]


def register(commands: argparse._SubParsersAction, command: Command) -> None:
    del commands  # a top-level command: ``command`` adds it with --config
    migrate = command(
        "migrate",
        "Copy the SQLite store into a PostgreSQL database (UIDs, flags, bodies, queue...), "
        "then verify row counts and every body's SHA-256.",
    )
    migrate.add_argument("--to", required=True, metavar="URL", help="postgresql://... (libpq URI)")
    migrate.add_argument(
        "--password-file", type=Path, default=None, help="the target's password (first line)"
    )
    migrate.add_argument(
        "--blob-to",
        choices=("s3", "filesystem"),
        default=None,
        help="move the bodies kept in the SQLite database to the backend configured in "
        "[storage.blob] (which must name the same backend)",
    )
    migrate.add_argument(
        "--force", action="store_true", help="replace whatever the target database holds"
    )
    migrate.set_defaults(run=run_migrate)


def run_migrate(args: argparse.Namespace) -> int:
    if not args.to.startswith(("postgresql://", "postgres://")):
        print("stalwart-py: --to must be a URI starting with postgresql://", file=sys.stderr)
        return 2
    try:
        config = load(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    try:
        # Imported here: psycopg is the optional "postgresql" extra.
        from stalwart_py.store import pg_migrate
    except ImportError as exc:
        print(f'stalwart-py: migrate needs psycopg: pip install "stalwart-py[postgresql]" ({exc})')
        return 1
    blob = config.storage.blob
    if args.blob_to is not None and blob.backend != args.blob_to:
        print(
            f"stalwart-py: --blob-to {args.blob_to} needs [storage.blob] backend = "
            f'"{args.blob_to}" with its settings in {args.config} (it is "{blob.backend}")',
            file=sys.stderr,
        )
        return 2
    try:
        password = None
        if args.password_file is not None:
            text = args.password_file.read_text(encoding="utf-8")
            password = text.splitlines()[0] if text else ""
        summary = anyio.run(copy, pg_migrate, config, args, password)
    except (StoreError, OSError, pg_migrate.psycopg.Error) as exc:
        print(f"stalwart-py: {exc}", file=sys.stderr)
        return 1
    for line in summary.lines():
        print(line)
    if summary.mismatches:
        print(f"stalwart-py: the copy did not verify ({len(summary.mismatches)} mismatches)")
        return 1
    print("verified: every table's rows and every body are the same in PostgreSQL")
    return 0


async def _import_key_files(config: Config) -> None:
    """DKIM keys, ACME certificates and account keys an earlier version kept as files go
    into the SQLite store first (as a start of the server would), so that the copy carries
    them."""
    from stalwart_py.acme.imports import ACME_DIR, CERTIFICATES_DIR, import_acme_files
    from stalwart_py.queue.dkim import KEY_DIR, import_key_files
    from stalwart_py.store.sqlite import DATABASE_FILE, SqliteStore

    data_dir = config.storage.data_dir
    kept = [data_dir / name for name in (KEY_DIR, CERTIFICATES_DIR, ACME_DIR)]
    if not any(p.is_dir() for p in kept) or not (data_dir / DATABASE_FILE).is_file():
        return
    store = SqliteStore(data_dir)
    await store.open()
    try:
        await import_key_files(store, data_dir)
        await import_acme_files(store, data_dir)
    finally:
        await store.close()


async def copy(
    pg_migrate: ModuleType, config: Config, args: argparse.Namespace, password: str | None
) -> Any:
    """The copy runs in a worker thread (it blocks on both databases); the blob backend, an
    async client, stays on the event loop, reached from the thread by ``from_thread``."""
    from stalwart_py.store.blobstore import create_blob_backend
    from stalwart_py.store.sqlite import DATABASE_FILE

    await _import_key_files(config)
    backend = create_blob_backend(config.storage.blob, config.storage.data_dir)
    if backend is not None:
        await backend.open()
    try:

        def put_body(digest: bytes, data: bytes) -> None:
            assert backend is not None
            anyio.from_thread.run(backend.put, digest, data)

        def get_body(digest: bytes) -> bytes:
            assert backend is not None
            return anyio.from_thread.run(backend.get, digest)

        def run() -> Any:
            source = pg_migrate.open_source(config.storage.data_dir, DATABASE_FILE)
            try:
                target = pg_migrate.open_target(args.to, password)
                try:
                    return pg_migrate.copy_store(
                        source,
                        target,
                        force=args.force,
                        put_body=put_body if args.blob_to is not None else None,
                        get_body=get_body if backend is not None else None,
                        progress=lambda table, rows: print(
                            f"copied {table}: {rows} rows", flush=True
                        ),
                    )
                finally:
                    target.close()
            finally:
                source.close()

        return await anyio.to_thread.run_sync(run)
    finally:
        if backend is not None:
            await backend.close()
