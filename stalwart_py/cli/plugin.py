"""``stalwart-py plugin new NAME``: write a protocol plugin package to start from."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stalwart_py.skeleton import Names, SkeletonError, write_skeleton


def register(commands: argparse._SubParsersAction) -> None:
    plugin = commands.add_parser("plugin", help="Write protocol plugins.")
    actions = plugin.add_subparsers(dest="action", required=True, metavar="ACTION")
    new = actions.add_parser(
        "new",
        help="Write a plugin package (protocol, settings, test, pyproject) that passes its test.",
        description="Write a protocol plugin package that passes its own test out of the box.",
    )
    new.add_argument("name", help='the protocol name (what `protocol = "..."` will say)')
    new.add_argument(
        "--directory",
        type=Path,
        default=None,
        help="where to write it (default: ./stalwart-py-NAME); must not exist or be empty",
    )
    new.set_defaults(run=plugin_new, config=Path("."))


def plugin_new(args: argparse.Namespace) -> int:
    directory = args.directory or Path(Names(args.name).dist)
    try:
        written = write_skeleton(args.name, directory)
    except SkeletonError as exc:
        print(f"stalwart-py: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    print(
        f"\nnext: cd {directory} && pip install -e '.[test]' && pytest\n"
        f'then a listener with protocol = "{args.name}" serves it (docs/plugins.md)'
    )
    return 0
