"""The ``stalwart-py`` command.

Every subcommand takes ``--config PATH``; the default is ``$STALWART_PY_CONFIG``, else
``/etc/stalwart-py/config.toml``. Directory commands work on the configured data directory
directly, whether or not a server is running on it.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from stalwart_py import __version__
from stalwart_py.cli import (
    acme,
    directory,
    dns,
    listener,
    migrate,
    plugin,
    queue,
    reference,
    server,
)

DEFAULT_CONFIG = "/etc/stalwart-py/config.toml"


def default_config() -> str:
    return os.environ.get("STALWART_PY_CONFIG") or DEFAULT_CONFIG


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stalwart-py", description="A personal multi-protocol mail server."
    )
    parser.add_argument("--version", action="version", version=f"stalwart-py {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, help_text: str, parent: argparse._SubParsersAction | None = None
    ) -> argparse.ArgumentParser:
        sub = (parent or commands).add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "--config",
            type=Path,
            default=None,
            help=f"configuration file (default: $STALWART_PY_CONFIG, else {DEFAULT_CONFIG})",
        )
        return sub

    server.register(command)
    directory.register(commands, command)
    queue.register(commands, command)
    listener.register(commands, command)
    dns.register(commands, command)
    acme.register(commands, command)
    migrate.register(commands, command)
    plugin.register(commands)
    reference.register(commands)  # docs/*-reference.md, generated
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.config is None:
        args.config = Path(default_config())
    return args.run(args)
