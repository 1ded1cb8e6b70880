"""Variables (RFC 5229) and the ``global`` scope of include (RFC 6609 section 3.5).

``${name}`` in a string is replaced by the variable's value when the string is used; an
unknown variable is the empty string; ``${0}``...``${n}`` are the match variables of the
last successful ``:matches``; ``${global.name}`` is a global variable. A ``${`` that does not
start a valid reference stays as written. Names are case-insensitive. Values are truncated
at ``max_variable_size`` characters and a scope holds at most ``max_variables`` names.

``set`` modifiers apply by precedence, highest first (section 4.1): ``:lower``/``:upper``
(40), ``:lowerfirst``/``:upperfirst`` (30), ``:quotewildcard`` (20), ``:encodeurl`` (15, RFC
5435 section 6), ``:length`` (10).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import quote

from stalwart_py.sieve.actions import Limits, SieveRuntimeError
from stalwart_py.sieve.regex_match import quote_regex

_REFERENCE = re.compile(r"\$\{([^{}]*)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_MODIFIERS = (
    ("lower", str.lower),
    ("upper", str.upper),
    ("lowerfirst", lambda text: text[:1].lower() + text[1:]),
    ("upperfirst", lambda text: text[:1].upper() + text[1:]),
    ("quotewildcard", lambda text: re.sub(r"([*?\\])", r"\\\1", text)),
    ("encodeurl", lambda text: quote(text.encode("utf-8", "surrogatepass"), safe="-._~")),
    ("quoteregex", quote_regex),
    ("length", lambda text: str(len(text))),
)


@dataclass
class Scope:
    """The variables of one script run (an included script gets its own)."""

    values: dict[str, str] = field(default_factory=dict)
    global_names: set[str] = field(default_factory=set)  # declared with "global"


class Variables:
    def __init__(self, limits: Limits, globals_: dict[str, str]) -> None:
        self.limits = limits
        self.globals = globals_
        self.scope = Scope()
        self.matched: list[str] = []  # ${0}, ${1}, ...

    def _target(self, name: str) -> tuple[dict[str, str], str]:
        lowered = name.lower()
        if lowered.startswith("global."):
            return self.globals, lowered[7:]
        if lowered in self.scope.global_names:
            return self.globals, lowered
        return self.scope.values, lowered

    def get(self, name: str) -> str:
        target, key = self._target(name)
        return target.get(key, "")

    def set(self, name: str, value: str) -> None:
        target, key = self._target(name)
        if key not in target and len(target) >= self.limits.max_variables:
            raise SieveRuntimeError(f"more than {self.limits.max_variables} variables")
        target[key] = value[: self.limits.max_variable_size]

    def declare_global(self, names: tuple[str, ...]) -> None:
        self.scope.global_names.update(name.lower() for name in names)

    def expand(self, text: str) -> str:
        if "${" not in text:
            return text
        return _REFERENCE.sub(self._replace, text)[: self.limits.max_variable_size * 4]

    def _replace(self, match: re.Match[str]) -> str:
        name = match.group(1)
        if name.isdigit():
            index = int(name)
            return self.matched[index] if index < len(self.matched) else ""
        lowered = name.lower()
        if _NAME.match(name) or (lowered.startswith("global.") and _NAME.match(name[7:])):
            return self.get(name)
        return match.group(0)


def apply_modifiers(value: str, tags: dict[str, object]) -> str:
    for name, function in _MODIFIERS:
        if name in tags:
            value = function(value)
    return value
