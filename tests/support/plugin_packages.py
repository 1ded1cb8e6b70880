"""Plugin packages as their users get them: pip-installed into a directory of their own, and
their own tests run by pytest in a child process (where only the entry points can find them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PIP_ENV = {"PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def pip_install(source: Path, target: Path, build: Path) -> dict[str, str]:
    """``pip install SOURCE --target TARGET`` without dependencies or build isolation (quick,
    offline: stalwart-py and setuptools are in this environment already); the environment
    variables that put the result on a child process's path."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-cache-dir",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        cwd=build,
        env={**os.environ, **PIP_ENV},
    )
    path = os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path}


def run_pytest(directory: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The package's own tests (pytest in ``directory``, its configuration only), with
    ``env`` added; the output as text."""
    return subprocess.run(
        # schemathesis's and hypothesis's pytest plugins, installed here for our own tests,
        # take most of a child pytest's start-up (15 s of 25 on a loaded machine); a plugin
        # author's environment has neither. The kit itself still loads by its entry point.
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:schemathesis",
            "-p",
            "no:hypothesispytest",
            "--rootdir",
            ".",
        ],
        cwd=directory,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )
