"""House rules a machine can check: style, the dependency direction, module size."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_ruff_check_is_clean():
    result = ruff("check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean():
    result = ruff("format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_core_never_imports_protocols():
    pattern = re.compile(r"^\s*(from|import)\s+protocols\b", re.MULTILINE)
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "stalwart_py").rglob("*.py")
        if pattern.search(p.read_text())
    ]
    assert offenders == []


def test_protocols_use_only_the_core_and_not_each_other():
    for package in (ROOT / "protocols").iterdir() if (ROOT / "protocols").exists() else []:
        if not package.is_dir() or package.name.startswith("_"):
            continue
        others = re.compile(
            rf"^\s*(from|import)\s+protocols\.(?!{package.name}\b)\w+", re.MULTILINE
        )
        for path in package.rglob("*.py"):
            assert not others.search(path.read_text()), f"{path} imports another protocol"


def test_modules_stay_small():
    big = {
        str(p.relative_to(ROOT)): n
        for p in [*ROOT.glob("stalwart_py/**/*.py"), *ROOT.glob("protocols/**/*.py")]
        if (n := len(p.read_text().splitlines())) > 600
    }
    assert big == {}, "split these where a seam exists"
