"""The generated reference pages of docs/ match the code they are generated from.

docs/configuration-reference.md is made from the settings dataclasses and
docs/http-api-reference.md from the OpenAPI document (``stalwart-py reference``); a key, a
default, a bound, a route or a schema changed without regenerating fails here, naming the
command that fixes it.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from stalwart_py.cli import main
from stalwart_py.cli.reference import COMMAND, pages

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = pages()


@pytest.mark.parametrize("name", sorted(PAGES))
def test_the_committed_page_is_what_the_code_generates(name: str) -> None:
    committed = (DOCS / name).read_text(encoding="utf-8")
    diff = list(
        difflib.unified_diff(
            committed.splitlines(), PAGES[name].splitlines(), "committed", "generated", lineterm=""
        )
    )
    # The message, and the first lines of the difference; not pytest's diff of two pages.
    assert not diff, f"docs/{name} is out of date: run `{COMMAND}`\n" + "\n".join(diff[:20])


def test_every_configuration_key_is_in_the_reference() -> None:
    text = PAGES["configuration-reference.md"]
    for key in (
        "`server.listener.<id>.bind`",
        "`server.workers`",
        "`queue.mta-sts.port`",
        "`server.listener.<id>.pop3.auth.allow-plaintext`",
        '`certificate."<id>".private-key`',
        '`acme."<id>".eab.hmac-key`',
        '`filter."<id>".on-error`',
        '`queue.route."<domain>".tls`',
    ):
        assert key in text, key


def test_every_configuration_key_has_a_description() -> None:
    """A key's description is the comment on or above its field: a key without one would
    be a row a reader learns nothing from (and the house rule says every key has one)."""
    rows = [
        line for line in PAGES["configuration-reference.md"].splitlines() if line.startswith("| `")
    ]
    assert len(rows) > 100
    bare = [row.split(" | ")[0].strip("| ") for row in rows if row.rstrip().endswith("|  |")]
    assert not bare, f"keys without a description (comment their fields): {bare}"


def test_a_default_bound_and_comment_come_from_the_schema() -> None:
    row = next(
        line
        for line in PAGES["configuration-reference.md"].splitlines()
        if line.startswith("| `server.listener.<id>.socket.backlog`")
    )
    assert "| integer | `1024` | from 1 to 65535 |" in row
    linger = next(
        line
        for line in PAGES["configuration-reference.md"].splitlines()
        if line.startswith("| `server.listener.<id>.socket.linger`")
    )
    assert "SO_LINGER: seconds to wait for unsent data on close" in linger  # the field's comment


def test_every_route_is_in_the_http_reference() -> None:
    from protocols.http import Http

    text = PAGES["http-api-reference.md"]
    for path, item in Http().app.document["paths"].items():
        for method in item:
            assert f"### `{method.upper()} {path}`" in text


def test_check_names_a_stale_page_and_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, text in PAGES.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert main(["reference", "--docs", str(tmp_path), "--check"]) == 0
    stale = tmp_path / "configuration-reference.md"
    stale.write_text(PAGES["configuration-reference.md"].replace("`1024`", "`512`"))
    assert main(["reference", "--docs", str(tmp_path), "--check"]) == 1
    assert f"{stale} is out of date: run `{COMMAND}`" in capsys.readouterr().err
    assert main(["reference", "--docs", str(tmp_path)]) == 0
    assert stale.read_text(encoding="utf-8") == PAGES["configuration-reference.md"]
