"""Turn merged TOML tables into typed, frozen settings dataclasses, collecting every error.

A settings class is a plain dataclass. Each field's TOML key is its name with ``_`` written as
``-`` (``max_connections`` -> ``max-connections``) unless ``metadata={"key": ...}`` says
otherwise. Supported field types: bool, int, float, str, ``Path`` (relative paths are taken
from the configuration file's directory), ``Literal[...]``, ``X | None``, ``tuple[X, ...]``
(``metadata={"one_or_many": True}`` also accepts a single value), ``dict[str, X]`` (the key
may be an ``Annotated`` type with a ``ValueParser``), nested dataclasses, and ``Annotated``
types carrying a ``ValueParser`` or a ``Range`` (see ``types.py``).

A class may list keys it no longer has in a ``renamed_keys`` class variable (old key ->
message): such a key is an error with that message rather than "unknown key".

Values arrive wrapped in ``Sourced`` so that an error names the key where the value was
*written* (``server.socket.backlog``), not every listener that inherited it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from stalwart_py.config.errors import ConfigIssue, describe
from stalwart_py.config.types import Range, ValueParser


@dataclass(frozen=True, slots=True)
class Sourced:
    """A TOML value with the key path it was written at and a label of its layer."""

    value: Any  # a leaf value, or a dict[str, Sourced] for a table
    path: str
    origin: str


def wrap(raw: Any, path: str, origin: str) -> Sourced:
    """Wrap a raw TOML tree so that every node remembers where it was written."""
    if isinstance(raw, dict):
        return Sourced(
            {key: wrap(value, join(path, key), origin) for key, value in raw.items()}, path, origin
        )
    return Sourced(raw, path, origin)


def unwrap(node: Sourced) -> Any:
    if isinstance(node.value, dict):
        return {key: unwrap(child) for key, child in node.value.items()}
    return node.value


def join(path: str, key: str) -> str:
    """Append a key to a dotted path, quoting it when TOML would (``peer."10.0.0.0/8"``)."""
    bare = key and all(ch.isalnum() or ch in "-_" for ch in key)
    part = key if bare else '"' + key.replace('"', '\\"') + '"'
    return f"{path}.{part}" if path else part


def toml_key(field: dataclasses.Field[Any]) -> str:
    return field.metadata.get("key", field.name.replace("_", "-"))


class Invalid:
    """Marks a value that failed conversion (an issue has been recorded for it)."""


INVALID = Invalid()


class Converter:
    """Builds settings objects and records every issue; one per configuration load."""

    def __init__(
        self, file: str, base_dir: Path, overrides: typing.Mapping[str, str] | None = None
    ) -> None:
        self.file = file
        self.base_dir = base_dir
        self.overrides = overrides or {}  # key path -> environment variable that set it
        self.issues: list[ConfigIssue] = []
        self._seen: set[tuple[str, str]] = set()

    def error(self, path: str, message: str) -> None:
        if (path, message) not in self._seen:
            self._seen.add((path, message))
            self.issues.append(ConfigIssue(self.source_of(path), path, message))

    def source_of(self, path: str) -> str:
        """The file, or the environment variable, that wrote the value at ``path``."""
        key = path
        while key:
            variable = self.overrides.get(key)
            if variable is not None:
                return f"environment variable {variable}"
            key = key.rpartition("[")[0] if key.endswith("]") else key.rpartition(".")[0]
        return self.file

    def build(
        self,
        cls: type,
        table: Sourced,
        origins: dict[str, str] | None = None,
        also_valid: typing.Iterable[str] = (),
    ) -> Any:
        """Build dataclass ``cls`` from a table; unknown keys are errors with a suggestion.

        ``origins``, when given, receives ``relative.key -> origin`` for every field that was
        set, which is what ``check-config --explain`` prints. ``also_valid`` names keys of the
        table that the caller handles itself, so that a typo of one is suggested too.
        """
        return self._build(cls, table, "", origins, tuple(also_valid))

    def _build(
        self,
        cls: type,
        table: Sourced,
        rel: str,
        origins: dict[str, str] | None,
        also_valid: tuple[str, ...] = (),
    ) -> Any:
        if not isinstance(table.value, dict):
            self.error(table.path, f"expected a table, found {describe(table.value)}")
            return INVALID
        fields = {
            toml_key(f): f
            for f in dataclasses.fields(cls)
            if f.init and f.metadata.get("toml", True)
        }
        hints = typing.get_type_hints(cls, include_extras=True)
        renamed: dict[str, str] = getattr(cls, "renamed_keys", {})
        for key, node in table.value.items():
            if key in renamed:  # a key that was: say what it became, not "did you mean"
                self.error(node.path, renamed[key])
            elif key not in fields:
                self.error(node.path, unknown_key_message(key, [*fields, *also_valid]))
        kwargs: dict[str, Any] = {}
        failed = False
        for key, field in fields.items():
            node = table.value.get(key)
            if node is None:
                continue
            sub_rel = f"{rel}.{key}" if rel else key
            value = self.convert(hints[field.name], node, field.metadata, sub_rel, origins)
            if value is INVALID:
                failed = True
                continue
            if origins is not None and not _is_dataclass_type(hints[field.name]):
                origins[sub_rel] = node.origin
            kwargs[field.name] = value
        if failed:  # already reported; a required field left out is not "missing"
            return INVALID
        try:
            return cls(**kwargs)
        except TypeError as exc:  # a required field is missing
            missing = [toml_key(f) for f in dataclasses.fields(cls) if f.name in str(exc)]
            self.error(join(table.path, missing[0]) if missing else table.path, "is required")
            return INVALID
        except ValueError as exc:  # a cross-field check in __post_init__
            self.error(table.path, str(exc))
            return INVALID

    def convert(
        self,
        tp: Any,
        node: Sourced,
        meta: typing.Mapping[str, Any] | None = None,
        rel: str = "",
        origins: dict[str, str] | None = None,
    ) -> Any:
        meta = meta or {}
        raw = node.value
        origin = get_origin(tp)
        if origin is Annotated:
            base, *extras = get_args(tp)
            parser = next((x for x in extras if isinstance(x, ValueParser)), None)
            if parser is not None:
                try:
                    return parser.parse(raw if not isinstance(raw, dict) else unwrap(node))
                except ValueError as exc:
                    detail = f" ({exc})" if str(exc) else ""
                    self.error(
                        node.path, f"expected {parser.expected}, found {describe(raw)}{detail}"
                    )
                    return INVALID
            bounds = next((x for x in extras if isinstance(x, Range)), None)
            if bounds is None or base not in (int, float):
                return self.convert(base, node, meta, rel, origins)
            numeric = isinstance(raw, int | float) and not isinstance(raw, bool)
            if numeric and (base is float or isinstance(raw, int)) and _in_range(raw, bounds):
                return base(raw)
            kind = "an integer" if base is int else "a number"
            self.error(node.path, f"expected {kind} {bounds.describe()}, found {describe(raw)}")
            return INVALID
        if origin in (types.UnionType, typing.Union):
            options = [arg for arg in get_args(tp) if arg is not type(None)]
            return self.convert(options[0], node, meta, rel, origins)
        if origin is Literal:
            choices = get_args(tp)
            if raw in choices and type(raw) is type(choices[0]):
                return raw
            listed = ", ".join(f'"{c}"' if isinstance(c, str) else str(c) for c in choices)
            self.error(node.path, f"expected one of {listed}, found {describe(raw)}")
            return INVALID
        if origin is tuple:
            (item_type, _ellipsis) = get_args(tp)
            if meta.get("one_or_many") and not isinstance(raw, list):
                items = [node]
            elif isinstance(raw, list):
                items = [Sourced(v, f"{node.path}[{i}]", node.origin) for i, v in enumerate(raw)]
            else:
                self.error(node.path, f"expected an array, found {describe(raw)}")
                return INVALID
            converted = [self.convert(item_type, item, None, rel, None) for item in items]
            return INVALID if INVALID in converted else tuple(converted)
        if origin is dict:
            key_type, value_type = get_args(tp)
            if not isinstance(raw, dict):
                self.error(node.path, f"expected a table, found {describe(raw)}")
                return INVALID
            result: dict[Any, Any] = {}
            for key, child in raw.items():
                parsed_key = self.convert(key_type, Sourced(key, child.path, child.origin))
                value = self.convert(value_type, child, None, f"{rel}.{key}", origins)
                if parsed_key is not INVALID and value is not INVALID:
                    result[parsed_key] = value
            return result
        if dataclasses.is_dataclass(tp):
            return self._build(tp, node, rel, origins)
        return self._scalar(tp, node)

    def _scalar(self, tp: Any, node: Sourced) -> Any:
        raw = node.value
        if tp is bool:
            ok, expected = isinstance(raw, bool), "true or false"
        elif tp is int:
            ok, expected = isinstance(raw, int) and not isinstance(raw, bool), "an integer"
        elif tp is float:
            ok = isinstance(raw, int | float) and not isinstance(raw, bool)
            expected = "a number"
            raw = float(raw) if ok else raw
        elif tp is str:
            ok, expected = isinstance(raw, str), "a string"
        elif tp is Path:
            ok, expected = isinstance(raw, str) and raw != "", "a file path"
            raw = (self.base_dir / raw) if ok else raw
        elif tp is Any:
            ok, expected = True, ""
        else:  # pragma: no cover - a settings class used an unsupported type
            raise TypeError(f"unsupported settings type {tp!r}")
        if not ok:
            self.error(node.path, f"expected {expected}, found {describe(node.value)}")
            return INVALID
        return raw


def unknown_key_message(key: str, known: typing.Iterable[str]) -> str:
    import difflib  # for a configuration with a mistake only, not at every start

    message = "unknown key"
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    if close:
        message += f' (did you mean "{close[0]}"?)'
    return message


def _in_range(value: float, bounds: Range) -> bool:
    return (bounds.low is None or value >= bounds.low) and (
        bounds.high is None or value <= bounds.high
    )


def _is_dataclass_type(tp: Any) -> bool:
    if get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    if get_origin(tp) in (types.UnionType, typing.Union):
        tp = next(arg for arg in get_args(tp) if arg is not type(None))
    return dataclasses.is_dataclass(tp)
