"""The README shows the two commands first, and its plugin walkthrough is the real plugin."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_the_two_commands_come_first():
    head = "\n".join(README.splitlines()[:8])
    assert "make run" in head
    assert "make test" in head


def test_every_embedded_file_matches_the_file():
    blocks = re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", README, re.DOTALL)
    assert len(blocks) >= 2
    for path, text in blocks:
        assert (ROOT / path).read_text() == text, f"README's copy of {path} is out of date"
