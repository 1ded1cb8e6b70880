"""What the commands that work on the data directory share: open the configured store, run,
close, and turn the errors a person can act on into one line and exit status 1."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable

import anyio

from stalwart_py.config import Config, ConfigError
from stalwart_py.files import private_umask
from stalwart_py.queue.dkim import import_key_files
from stalwart_py.server import load
from stalwart_py.store import Store, StoreError, create_store

StoreCommand = Callable[[Store, Config, argparse.Namespace], Awaitable[None]]


def store_command(
    func: StoreCommand, *, errors: tuple[type[Exception], ...] = ()
) -> Callable[[argparse.Namespace], int]:
    """An argparse ``run`` that opens the store of ``--config`` around ``func``. StoreError,
    ValueError and ``errors`` are reported as a message, not a traceback."""
    reported = (StoreError, ValueError, *errors)

    def command(args: argparse.Namespace) -> int:
        try:
            config = load(args.config)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 1

        async def main() -> None:
            store = create_store(config.storage)
            await store.open()
            try:
                # keys of an earlier version's data directory, before anything lists them
                await import_key_files(store, config.storage.data_dir)
                await func(store, config, args)
            finally:
                await store.close()

        try:
            # Belt to the explicit modes: whatever else a command writes is private too.
            with private_umask():
                anyio.run(main)
        except reported as exc:
            print(f"stalwart-py: {exc}", file=sys.stderr)
            return 1
        return 0

    return command
