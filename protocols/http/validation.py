"""Check a JSON request body against the schema the OpenAPI document publishes for it.

The API's request schemas are the ones in the OpenAPI 3.1 document (JSON Schema 2020-12), so a
request is accepted exactly when the published schema says it is valid: the document and the
server cannot disagree. Only the keywords our schemas use are implemented (``type``,
``properties``, ``required``, ``additionalProperties``, ``items``, ``minItems``, ``maxItems``,
``minLength``, ``maxLength``, ``minimum``, ``maximum``, ``enum``, ``pattern``, ``anyOf``,
``oneOf``, ``allOf`` and local ``$ref``); ``SUPPORTED`` lists them and the tests check every
schema of the document uses no other and that this validator agrees with a full JSON Schema
implementation.

``format`` is asserted for the two formats the names of the directory have (JSON Schema
2020-12 7.2.3 lets a validator assert a format): ``idn-email`` is an address as
``stalwart_py.names.mailbox`` takes it (RFC 5321/6531; an address literal is taken here, and
refused by the directory for an account or an alias) and
``idn-hostname`` a domain name as ``names.domain`` takes it (IDNA 2008); ``FORMATS`` holds the
checks, and the tests give the same ones to the full implementation. Other formats annotate.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from typing import Any

from stalwart_py import names

SUPPORTED = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "enum",
        "pattern",
        "anyOf",
        "oneOf",
        "allOf",
        "$ref",
        # annotations, which do not constrain
        "description",
        "title",
        "format",
        "examples",
        "default",
        "readOnly",
        "writeOnly",
    }
)

_TYPE_NAMES = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


# format -> a check that raises ValueError, saying why, for a string not in the format
FORMATS: dict[str, Callable[[str], object]] = {
    "idn-email": functools.partial(names.mailbox, literal=True),
    "idn-hostname": names.domain,
}


class SchemaError(ValueError):
    """The value does not match; the message names where (``body.to[2]``) and why."""


@functools.lru_cache(maxsize=64)
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _is_type(value: Any, kind: str) -> bool:
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    if isinstance(value, bool):
        return False
    if kind == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if kind == "number":
        return isinstance(value, int | float)
    raise ValueError(f"unknown JSON Schema type {kind!r}")


def validate(
    value: Any, schema: Mapping[str, Any], components: Mapping[str, Any], where: str = "body"
) -> None:
    """Raise SchemaError when ``value`` does not match ``schema``; ``components`` resolves
    ``{"$ref": "#/components/schemas/Name"}``."""
    ref = schema.get("$ref")
    if ref is not None:
        validate(value, components[ref.rsplit("/", 1)[1]], components, where)
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is_type(value, kind) for kind in kinds):
            expected = " or ".join(_TYPE_NAMES[kind] for kind in kinds)
            raise SchemaError(f"{where}: expected {expected}")
    if "enum" in schema and value not in schema["enum"]:
        choices = ", ".join(repr(choice) for choice in schema["enum"])
        raise SchemaError(f"{where}: expected one of {choices}")
    if "anyOf" in schema:
        problems = []
        for option in schema["anyOf"]:
            try:
                validate(value, option, components, where)
                break
            except SchemaError as exc:
                problems.append(str(exc))
        else:
            raise SchemaError(_problem(value, schema, "anyOf", problems, components, where))
    if "oneOf" in schema:
        _one_of(value, schema, components, where)
    for option in schema.get("allOf", ()):
        validate(value, option, components, where)
    if isinstance(value, dict):
        _validate_object(value, schema, components, where)
    elif isinstance(value, list):
        _validate_array(value, schema, components, where)
    elif isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            raise SchemaError(f"{where}: at least {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise SchemaError(f"{where}: at most {schema['maxLength']} characters")
        if "pattern" in schema and not _pattern(schema["pattern"]).search(value):
            expected = schema.get("description", f"text matching {schema['pattern']}")
            raise SchemaError(f"{where}: expected {expected}")
        check = FORMATS.get(schema.get("format", ""))
        if check is not None:
            try:
                check(value)
            except ValueError as exc:
                raise SchemaError(f"{where}: {exc}") from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise SchemaError(f"{where}: at least {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise SchemaError(f"{where}: at most {schema['maximum']}")


def _one_of(
    value: Any, schema: Mapping[str, Any], components: Mapping[str, Any], where: str
) -> None:
    """Exactly one of the ``oneOf`` options must match (forms that exclude each other)."""
    problems = []
    matched = 0
    for option in schema["oneOf"]:
        try:
            validate(value, option, components, where)
            matched += 1
        except SchemaError as exc:
            problems.append(str(exc))
    if matched == 0:
        raise SchemaError(_problem(value, schema, "oneOf", problems, components, where))
    if matched > 1:
        raise SchemaError(f"{where}: matches more than one of its forms")


def _resolve(schema: Mapping[str, Any], components: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    return components[ref.rsplit("/", 1)[1]] if ref else schema


def _problem(
    value: Any,
    schema: Mapping[str, Any],
    keyword: str,
    problems: list[str],
    components: Mapping[str, Any],
    where: str,
) -> str:
    """What to say when no option matched: the problem of the one option the value was meant
    for (the only one of its type; for an object, the only one that knows all its fields),
    else the schema's description when the value fits none, else every problem."""
    options = [_resolve(option, components) for option in schema[keyword]]
    if all(set(option) == {"required"} for option in options):
        fields = ", ".join(name for option in options for name in option["required"])
        return f"{where}: one of {fields} is required"
    meant = [
        index
        for index, option in enumerate(options)
        if "type" not in option or any(_is_type(value, kind) for kind in _kinds(option["type"]))
    ]
    if isinstance(value, dict):
        meant = [
            index for index in meant if set(value) <= set(options[index].get("properties", value))
        ]
        if not meant and "description" in schema:
            return f"{where}: expected {schema['description']}"
    if len(meant) == 1:
        return problems[meant[0]]
    return "; or ".join(dict.fromkeys(problems))


def _kinds(kinds: str | list[str]) -> list[str]:
    return [kinds] if isinstance(kinds, str) else kinds


def _validate_object(
    value: dict[str, Any], schema: Mapping[str, Any], components: Mapping[str, Any], where: str
) -> None:
    properties = schema.get("properties", {})
    for name in schema.get("required", ()):
        if name not in value:
            raise SchemaError(f"{where}: {name} is required")
    for name, item in value.items():
        if name in properties:
            validate(item, properties[name], components, f"{where}.{name}")
        elif schema.get("additionalProperties", True) is False:
            known = ", ".join(properties) or "none"
            raise SchemaError(f"{where}: unknown field {name!r} (known: {known})")
        elif isinstance(schema.get("additionalProperties"), dict):
            validate(item, schema["additionalProperties"], components, f"{where}.{name}")


def _validate_array(
    value: list[Any], schema: Mapping[str, Any], components: Mapping[str, Any], where: str
) -> None:
    if "minItems" in schema and len(value) < schema["minItems"]:
        raise SchemaError(f"{where}: at least {schema['minItems']} items")
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        raise SchemaError(f"{where}: at most {schema['maxItems']} items")
    if "items" in schema:
        for index, item in enumerate(value):
            validate(item, schema["items"], components, f"{where}[{index}]")


def keywords(schema: Any) -> set[str]:
    """Every keyword used anywhere in ``schema`` (for the test that SUPPORTED covers them)."""
    found: set[str] = set()
    if isinstance(schema, dict):
        for key, child in schema.items():
            found.add(key)
            if key == "properties":
                for item in child.values():
                    found |= keywords(item)
            elif key in ("items", "additionalProperties") and isinstance(child, dict):
                found |= keywords(child)
            elif key in ("anyOf", "oneOf", "allOf"):
                for item in child:
                    found |= keywords(item)
    return found
