"""What running a server asks of a configuration beyond being valid.

A file may be valid and still no good to serve: one without any enabled listener starts a
server that serves nothing (and, as a reload, would stop every listener of a running one).
Commands that only work on the data directory (``account add``, ``queue list``) take such a
file; ``serve``, ``check-config`` and every reload do not.

And some keys are read once, at start: ``[storage]`` says which database the running server
has open, so a reload that changes it is refused ("needs a restart") rather than reported as
applied while the old database stays in use. Every other key takes effect on reload:
listeners through the registry, ``[directory]``, ``[queue]`` and ``[dkim]`` through their
``configure``, ``[logging]`` by the server, and the ``[server]`` keys are read where used.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from stalwart_py.config.convert import toml_key
from stalwart_py.config.errors import ConfigError, ConfigIssue
from stalwart_py.config.loader import Config

# The tables a running server cannot switch; every key in them needs a restart.
RESTART_SECTIONS = ("storage",)


def require_listener(config: Config) -> None:
    """Raise ConfigError unless ``config`` has at least one enabled listener."""
    file = str(config.file)
    if not config.listeners:
        message = (
            "expected at least one listener: a [server.listener.<id>] table with bind and "
            "protocol (without one the server serves nothing)"
        )
        raise ConfigError([ConfigIssue(file, "server.listener", message)])
    disabled = [lid for lid, listener in config.listeners.items() if not listener.enable]
    if len(disabled) == len(config.listeners):
        verb = "has" if len(disabled) == 1 else "have"
        message = (
            f"expected at least one enabled listener; {', '.join(disabled)} {verb} "
            "enable = false (without one the server serves nothing)"
        )
        raise ConfigError([ConfigIssue(file, "server.listener", message)])


def needs_restart(running: Config, new: Config) -> list[ConfigIssue]:
    """The keys whose value in ``new`` differs from the running server's and that only a
    restart can apply, each as an issue naming the key and both values."""
    issues = []
    for section in RESTART_SECTIONS:
        before, after = getattr(running, section), getattr(new, section)
        for field in dataclasses.fields(before):
            old, wanted = getattr(before, field.name), getattr(after, field.name)
            if _same(old, wanted):
                continue
            issues.append(
                ConfigIssue(
                    str(new.file),
                    f"{section}.{toml_key(field)}",
                    f"cannot change on a running server (it is {old}, the file says {wanted}): "
                    "it needs a restart",
                )
            )
    return issues


def _same(old: Any, new: Any) -> bool:
    if isinstance(old, Path) and isinstance(new, Path):
        # "var" and "./var" (made absolute against the file's directory) name one directory.
        return os.path.realpath(old) == os.path.realpath(new)
    return old == new
