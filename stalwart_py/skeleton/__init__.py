"""``stalwart-py plugin new NAME``: a protocol plugin package that passes its own test.

The files are templates beside this module (``*.tmpl``); ``__NAME__`` (the protocol name),
``__PACKAGE__`` (the Python package), ``__CLASS__`` (the protocol class), ``__DIST__`` (the
distribution) and ``__METRIC__`` (the metric prefix) are filled in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

# A protocol name is what `protocol = "..."` says and the key of its settings table
# (`<name>.*`): lower-case words joined by hyphens, so it is a bare TOML key.
NAME = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")


class SkeletonError(Exception):
    """The skeleton cannot be written (a bad name, a directory in the way)."""


@dataclass(frozen=True)
class Names:
    """Every name the skeleton derives from the protocol's."""

    name: str

    @property
    def package(self) -> str:
        return self.name.replace("-", "_") + "_plugin"

    @property
    def cls(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("-"))

    @property
    def dist(self) -> str:
        return f"stalwart-py-{self.name}"

    @property
    def metric(self) -> str:
        return "stalwart_" + self.name.replace("-", "_")

    def fill(self, text: str) -> str:
        for key, value in (
            ("__PACKAGE__", self.package),
            ("__CLASS__", self.cls),
            ("__DIST__", self.dist),
            ("__METRIC__", self.metric),
            ("__NAME__", self.name),
        ):
            text = text.replace(key, value)
        return text


# template file -> where it goes in the package directory (names filled in too)
FILES = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "protocol.py.tmpl": "__PACKAGE__/__init__.py",
    "test_protocol.py.tmpl": "tests/test___NAME__.py",
}


def write_skeleton(name: str, directory: Path) -> list[Path]:
    """Write the package for protocol ``name`` into ``directory`` (which must not exist or
    be empty); the files written, in order."""
    if not NAME.fullmatch(name):
        raise SkeletonError(
            f"{name!r} is not a protocol name: lower-case letters and digits, words joined "
            'by "-", starting with a letter (e.g. "finger", "my-proto")'
        )
    if directory.exists() and any(directory.iterdir()):
        raise SkeletonError(f"{directory} exists and is not empty")
    names = Names(name)
    templates = resources.files(__package__)
    written = []
    for template, target in FILES.items():
        relative = names.fill(target)
        if relative.endswith(".py"):  # a module name cannot have a hyphen
            relative = relative.replace("-", "_")
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(names.fill(templates.joinpath(template).read_text()))
        written.append(path)
    return written
