"""docs/configuration-reference.md, generated from the settings dataclasses themselves.

Every key the loader accepts is a field of a settings dataclass (``schema.py``, the other
modules of this package, each protocol plugin's ``settings`` and each filter type's), so the
reference is a walk over those classes: the key path (the field name with ``_`` written as
``-``), the type and its bounds or choices (from the ``Annotated`` metadata the converter
reads), the default, and the description the source gives: the class docstring for a table,
and for a key the comment lines just above its field and the comment on the field's line.
Nothing is written by hand, so the page cannot drift from the code; ``tests/unit/
test_docs_reference.py`` fails when the committed page differs from what this module makes.

Regenerate with ``stalwart-py reference`` (docs/configuration-reference.md and
docs/http-api-reference.md).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib.metadata
import inspect
import io
import operator
import re
import textwrap
import tokenize
import types
import typing
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from stalwart_py.config.convert import toml_key
from stalwart_py.config.explain import render_value
from stalwart_py.config.loader import SECTIONS
from stalwart_py.config.schema import (
    LISTENER_ONLY_KEYS,
    ListenerSettings,
    ServerSettings,
)
from stalwart_py.config.types import Bind, Range, ValueParser
from stalwart_py.filters.config import FilterSettings

DISTRIBUTION = "stalwart-py"  # only plugins shipped with it: the page must not vary by host


@dataclass(frozen=True, slots=True)
class ListenerOnlySettings:
    """Keys of a ``[server.listener.<id>]`` table only (not ``[server]``, not peer scopes)."""

    # loader.py reads these itself (_listener); sections() checks this class names them all.

    # The addresses to listen on: one, or a list.
    bind: tuple[Bind, ...] = field(metadata={"one_or_many": True})
    # The protocol plugin serving the listener (an entry point in stalwart_py.protocols).
    protocol: str
    # false: configured but not listening (`stalwart-py listener enable` turns it on).
    enable: bool = True


@dataclass(frozen=True, slots=True)
class Row:
    key: str
    type: str
    default: str
    bounds: str
    description: str


# -- descriptions from the source ------------------------------------------------------------


@cache
def _field_comments(cls: type) -> dict[str, str]:
    """``field name -> comment text`` for the fields written in ``cls``'s own source."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    lines = source.splitlines()
    found: dict[str, str] = {}
    for node in ast.parse(source).body[0].body:  # type: ignore[attr-defined]
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        above = []
        line = node.lineno - 1
        while line >= 1 and lines[line - 1].strip().startswith("#"):
            above.insert(0, comments[line])
            line -= 1
        beside = [comments[n] for n in range(node.lineno, node.end_lineno + 1) if n in comments]
        found[node.target.id] = " ".join([*above, *beside])
    return found


def field_description(cls: type, name: str) -> str:
    for klass in cls.__mro__:  # a subclass that changes a default may say nothing new
        if name in inspect.get_annotations(klass) and _field_comments(klass).get(name):
            return _field_comments(klass)[name]
    return ""


def class_description(cls: type) -> str:
    doc = cls.__dict__.get("__doc__") or ""
    if doc.startswith(cls.__name__ + "("):  # the signature dataclass writes when there is none
        return ""
    text = inspect.cleandoc(doc)
    module = inspect.getmodule(cls)
    if "module docstring" in text and module is not None and module.__doc__:
        text = text.replace("the module docstring", "below")  # it follows here
        text += "\n\n" + inspect.cleandoc(module.__doc__)
    return markdown(text)


def markdown(text: str) -> str:
    """reStructuredText's ``literal`` as Markdown's `literal`."""
    text = re.sub(r"(?<!`)``(?!`)(.+?)(?<!`)``(?!`)", r"`\1`", text, flags=re.S)  # not ```
    return re.sub(r"::$", ":", text, flags=re.M)  # an RST literal block: indented, as here


# -- types, bounds and defaults -------------------------------------------------------------


def _strip(hint: Any) -> tuple[Any, list[Any], bool]:
    """``(base type, Annotated metadata, optional)`` of a field's type."""
    meta: list[Any] = []
    optional = False
    while True:
        if get_origin(hint) is Annotated:
            meta.extend(hint.__metadata__)
            hint = get_args(hint)[0]
        elif get_origin(hint) in (typing.Union, types.UnionType) and type(None) in get_args(hint):
            optional = True
            rest = [a for a in get_args(hint) if a is not type(None)]
            hint = functools.reduce(operator.or_, rest)
        else:
            return hint, meta, optional


def value_type_name(parser: ValueParser) -> str:
    return parser.parse.__name__.lstrip("_").removeprefix("parse_").replace("_", " ")


def type_name(hint: Any, one_or_many: bool = False) -> str:
    base, meta, _ = _strip(hint)
    parsers = [m for m in meta if isinstance(m, ValueParser)]
    if parsers:
        return value_type_name(parsers[-1])
    origin = get_origin(base)
    if origin is tuple:
        args = get_args(base)
        if len(args) == 2 and args[1] is Ellipsis:
            item = type_name(args[0])
            return f"{item} or list of {item}" if one_or_many else f"list of {item}"
        return "list"
    if origin is dict:
        return f"table of {type_name(get_args(base)[1])}"
    if origin is Literal:
        return "string"
    names = {bool: "boolean", int: "integer", float: "number", str: "string", Path: "path"}
    return names.get(base, getattr(base, "__name__", str(base)))


def bounds(hint: Any) -> str:
    base, meta, _ = _strip(hint)
    if get_origin(base) is Literal:
        return ", ".join(render_value(v) for v in get_args(base))
    ranges = [m for m in meta if isinstance(m, Range)]
    return " ".join(_range(r) for r in ranges)


def _range(r: Range) -> str:
    """``Range.describe`` with whole numbers written out (1048576, not 1.04858e+06)."""

    def number(value: float) -> str:
        return str(int(value)) if float(value).is_integer() else f"{value}"

    if r.low is not None and r.high is not None:
        return f"from {number(r.low)} to {number(r.high)}"
    if r.low is not None:
        return f"of at least {number(r.low)}"
    return f"of at most {number(r.high)}"  # type: ignore[arg-type]


def _units(value: float, units: list[tuple[str, float]]) -> str | None:
    for unit, size in units:
        if value and value % size == 0:
            return f'"{value / size:g}{unit}"'
    return None


def default_text(f: dataclasses.Field[Any], kind: str) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        if not isinstance(f.default_factory, type):  # computed where it runs: name the function
            return f"computed (`{f.default_factory.__name__}()`)"
        value = f.default_factory()
    else:
        return "required"
    if value is None:
        return "unset"
    durations = [("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1), ("ms", 0.001)]
    if kind == "duration" and isinstance(value, int | float) and value:
        return f"`{_units(value, durations) or value}`"
    if kind == "list of duration" and isinstance(value, tuple):
        return f"`[{', '.join(_units(v, durations) or str(v) for v in value)}]`"
    if kind == "size" and isinstance(value, int) and value:
        units = [("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)]
        return f"`{_units(value, units) or value}`"
    return f"`{render_value(value)}`"


# -- the walk -------------------------------------------------------------------------------


def _nested(hint: Any) -> tuple[str, type] | None:
    """``("table", cls)`` for a nested dataclass, ``("map", cls)`` for ``dict[K, cls]``."""
    base, _, _ = _strip(hint)
    if isinstance(base, type) and dataclasses.is_dataclass(base):
        return "table", base
    if get_origin(base) is dict:
        value = _strip(get_args(base)[1])[0]
        if isinstance(value, type) and dataclasses.is_dataclass(value):
            return "map", value
    return None


def placeholder(hint: Any) -> str:
    """The name a ``dict`` table's keys stand for: a domain or an id."""
    key = get_args(_strip(hint)[0])[0]
    parsers = [m for m in _strip(key)[1] if isinstance(m, ValueParser)]
    return '"<domain>"' if parsers and value_type_name(parsers[0]) == "hostname" else '"<id>"'


@dataclass
class Section:
    title: str
    cls: type
    description: str
    rows: list[Row] = field(default_factory=list)


def walk(cls: type, path: str, title: str, out: list[Section], note: str = "") -> None:
    """Append the section of ``cls`` (at ``path``) and, after it, those of its sub-tables."""
    description = " ".join(p for p in (class_description(cls), markdown(note)) if p)
    section = Section(title, cls, description)
    out.append(section)
    later: list[tuple[type, str, str, str]] = []
    hints = typing.get_type_hints(cls, include_extras=True)
    for f in dataclasses.fields(cls):
        if not f.init or not f.metadata.get("toml", True):
            continue
        key = f"{path}.{toml_key(f)}"
        nested = _nested(hints[f.name])
        description = markdown(field_description(cls, f.name))
        if nested is not None:
            kind, sub = nested
            if kind == "map":
                key = f"{key}.{placeholder(hints[f.name])}"
            optional = _strip(hints[f.name])[2]
            later.append((sub, key, description, "Optional table." if optional else ""))
            continue
        kind = type_name(hints[f.name], f.metadata.get("one_or_many", False))
        section.rows.append(
            Row(key, kind, default_text(f, kind), bounds(hints[f.name]), description)
        )
    for sub, key, description, note in later:
        walk(sub, key, f"[{key}]", out, " ".join(p for p in (description, note) if p))


def shipped(group: str) -> dict[str, type]:
    """The plugins of ``group`` that this distribution ships, by name."""
    found = {}
    for entry in importlib.metadata.entry_points(group=group):
        name = entry.dist.name if entry.dist is not None else ""
        if re.sub(r"[-_.]+", "-", name).lower() == DISTRIBUTION:  # PEP 503 normalized
            found[entry.name] = entry.load()
    return dict(sorted(found.items()))


def sections() -> list[Section]:
    """Every table of the configuration file, in the order of the page."""
    out: list[Section] = []
    walk(ServerSettings, "server", "[server]", out)
    listener = "server.listener.<id>"
    walk(ListenerOnlySettings, listener, f"[{listener}]", out)
    assert tuple(toml_key(f) for f in dataclasses.fields(ListenerOnlySettings)) == (
        LISTENER_ONLY_KEYS
    ), "ListenerOnlySettings must state loader.py's LISTENER_ONLY_KEYS"
    walk(
        ListenerSettings,
        listener,
        f"[{listener}]",
        out,
        'Set in `[server]` they are the default of every listener; in `peer."<cidr>"` tables '
        "of the server or of a listener they apply to the connections from that network.",
    )
    for name, protocol in shipped("stalwart_py.protocols").items():
        if protocol.settings is not None:
            note = f'`protocol = "{name}"` listeners; `[server.{name}]` holds their defaults.'
            module = inspect.getmodule(protocol.settings)
            if module is not None and module.__name__.endswith(".settings") and module.__doc__:
                note += "\n\n" + inspect.cleandoc(module.__doc__)  # a settings module's own
            walk(protocol.settings, f"{listener}.{name}", f"[{listener}.{name}]", out, note)
    for name, cls in sorted(SECTIONS.items()):
        nested = _nested(cls)
        if nested is not None and nested[0] == "map":
            key = f"{name}.{placeholder(cls)}"
            walk(nested[1], key, f"[{key}]", out)
        else:
            walk(cls, name, f"[{name}]", out)
    walk(FilterSettings, 'filter."<id>"', '[filter."<id>"]', out)
    for name, filter_cls in shipped("stalwart_py.filters").items():
        if filter_cls.settings is not None:
            path = 'filter."<id>"'
            walk(filter_cls.settings, path, f'[filter."<id>"] type = "{name}"', out)
    return out


def _outside_code(text: str, change: typing.Callable[[str], str]) -> str:
    """``change`` applied to the text outside `code spans` (a comment's <data-dir> would be
    taken for an HTML tag)."""
    parts = text.split("`")
    return "`".join(change(p) if i % 2 == 0 else p for i, p in enumerate(parts))


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render() -> str:
    """The whole page, deterministically."""
    all_sections = sections()
    kinds: dict[str, str] = {}
    for section in all_sections:
        for hint in typing.get_type_hints(section.cls, include_extras=True).values():
            _collect_types(hint, kinds)
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated from the settings dataclasses by `stalwart-py reference`: do not edit;",
        "     tests/unit/test_docs_reference.py fails when this page is out of date. -->",
        "",
        "Every key of the configuration file, generated from the code that reads it. How the",
        "file is laid out and merged: [configuration.md](configuration.md).",
        "",
        "## Value types",
        "",
        "| type | written as |",
        "|---|---|",
    ]
    out += [f"| {name} | {_cell(kinds[name])} |" for name in sorted(kinds)]
    for section in all_sections:
        out += ["", f"## `{section.title}`", ""]
        if section.description:
            out += [section.description, ""]
        if not section.rows:
            out.append("(tables only; see below)")
            continue
        out += ["| key | type | default | bounds | description |", "|---|---|---|---|---|"]
        for row in section.rows:
            description = _outside_code(row.description, lambda t: t.replace("<", "&lt;"))
            cells = [f"`{row.key}`", row.type, row.default, row.bounds, description]
            out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(out) + "\n"


def _collect_types(hint: Any, kinds: dict[str, str]) -> None:
    base, meta, _ = _strip(hint)
    for m in meta:
        if isinstance(m, ValueParser):
            kinds[value_type_name(m)] = m.expected
    for arg in get_args(base):
        if not isinstance(arg, str | int | float | bool):
            _collect_types(arg, kinds)
