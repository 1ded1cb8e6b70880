"""The README is the front door (the two commands first, short, every link working); the
reference lives in docs/, whose embedded copies of real files must match those files."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md")), ROOT / "deploy" / "README.md"]
# The front door stays a front door: reference text goes to a docs/ page (docs/README.md lists
# them). 32 KB of README was what made a newcomer lose their way.
README_LIMIT = 12_000


def test_the_two_commands_come_first():
    head = "\n".join(README.read_text().splitlines()[:8])
    assert "make run" in head
    assert "make test" in head


def test_the_readme_stays_short():
    size = len(README.read_text().encode())
    assert size <= README_LIMIT, (
        f"README.md is {size} bytes (limit {README_LIMIT}): put reference sections in the "
        "docs/ page of their topic (docs/README.md lists them) and link it from the README"
    )


def test_every_embedded_file_matches_the_file():
    blocks = []
    for page in PAGES:
        for path, text in re.findall(
            r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", page.read_text(), re.DOTALL
        ):
            blocks.append((page, path, text))
    assert len(blocks) >= 3
    for page, path, text in blocks:
        assert (ROOT / path).read_text() == text, f"{page.name}'s copy of {path} is out of date"


def test_every_relative_link_leads_somewhere():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = target.split("#", 1)[0]
            assert (page.parent / path).exists(), f"{page.relative_to(ROOT)} links to {target}"


def test_every_docs_page_is_listed_in_the_index():
    index = (DOCS / "README.md").read_text()
    for page in DOCS.glob("*.md"):
        if page.name != "README.md":
            assert f"]({page.name})" in index, f"docs/README.md does not list {page.name}"
