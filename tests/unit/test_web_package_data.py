"""Every template and static file of the web pages is in the package data pyproject.toml
declares, so an installed server (a wheel, the container) has them: a template in a new
subdirectory is missed by a pattern without it, and the page then fails only once installed."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "protocols" / "http" / "web"


def test_every_template_and_static_file_is_package_data():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["protocols.http.web"]
    declared = {path for pattern in patterns for path in WEB.glob(pattern) if path.is_file()}
    present = {
        path
        for folder in ("templates", "static")
        for path in (WEB / folder).rglob("*")
        if path.is_file()
    }
    assert present, "no templates found"
    assert sorted(str(p.relative_to(WEB)) for p in present - declared) == []
