"""``stalwart-py reference``: write the generated reference pages of docs/.

docs/configuration-reference.md comes from the settings dataclasses
(``stalwart_py.config.reference``) and docs/http-api-reference.md from the HTTP API's OpenAPI
document (``stalwart_py.openapi_reference``); ``--check`` only compares, for CI and the test that
keeps them from drifting (tests/unit/test_docs_reference.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

COMMAND = "stalwart-py reference"


def pages() -> dict[str, str]:
    """``file name -> text`` of every generated page."""
    from stalwart_py.config.reference import render as render_config
    from stalwart_py.config.reference import shipped
    from stalwart_py.openapi_reference import render as render_http

    http = shipped("stalwart_py.protocols")["http"]()  # its app holds the OpenAPI document
    return {
        "configuration-reference.md": render_config(),
        "http-api-reference.md": render_http(http.app.document),
    }


def stale(docs: Path) -> list[str]:
    """The pages under ``docs`` that differ from what the code generates."""
    return [
        name
        for name, text in pages().items()
        if not (docs / name).is_file() or (docs / name).read_text(encoding="utf-8") != text
    ]


def register(commands: argparse._SubParsersAction) -> None:
    sub = commands.add_parser(
        "reference",
        help="Write docs/configuration-reference.md and docs/http-api-reference.md.",
        description="Generate the reference pages of docs/ from the configuration schema and "
        "the OpenAPI document.",
    )
    sub.add_argument(
        "--docs", type=Path, default=Path("docs"), help="the docs directory (default: ./docs)"
    )
    sub.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a page is out of date"
    )
    sub.set_defaults(run=run, config=Path("."))


def run(args: argparse.Namespace) -> int:
    if args.check:
        names = stale(args.docs)
        for name in names:
            print(f"{args.docs / name} is out of date: run `{COMMAND}`", file=sys.stderr)
        return 1 if names else 0
    for name, text in pages().items():
        (args.docs / name).write_text(text, encoding="utf-8")
        print(f"wrote {args.docs / name}")
    return 0
