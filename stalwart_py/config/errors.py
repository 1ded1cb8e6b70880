"""Configuration errors: every one names the file, the full key path and what was expected."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem found in a configuration file."""

    file: str
    path: str  # full dotted key path, e.g. "server.listener.smtp.socket.backlog"; "" for the file
    message: str

    def __str__(self) -> str:
        return (
            f"{self.file}: {self.path}: {self.message}"
            if self.path
            else (f"{self.file}: {self.message}")
        )


class ConfigError(Exception):
    """A configuration that cannot be used; carries every issue found, not just the first."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(issue) for issue in issues))


def describe(value: object) -> str:
    """How a TOML value is shown in an error: the value and its TOML type."""
    kind = {
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)
    if isinstance(value, dict):
        return kind
    shown = repr(value) if not isinstance(value, str) else '"' + value + '"'
    if isinstance(value, bool):
        shown = "true" if value else "false"
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{shown} ({kind})"
