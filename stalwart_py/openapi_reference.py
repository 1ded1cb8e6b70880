"""docs/http-api-reference.md, generated from the OpenAPI document of the ``http`` protocol
(``protocols/http/openapi.py``; the core takes it from the protocol's entry point, since it
never imports a protocol).

The document is itself generated from the routes, so this page lists exactly what the server
answers: each path and method, its summary, who may call it, its parameters, the schema of its
request body and every response. ``tests/unit/test_docs_reference.py`` fails when the committed
page differs from :func:`render`; ``stalwart-py reference`` writes it.
"""

from __future__ import annotations

import html
import json
from typing import Any

METHODS = ("get", "put", "post", "patch", "delete")


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def schema_text(schema: dict[str, Any]) -> str:
    """A schema in a few words: its component's name, else its type and bounds."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            return " or ".join(
                schema_text({k: v for k, v in sub.items() if k != "description"})
                for sub in schema[combinator]
            )
    if schema.get("type") == "array" and "items" in schema:
        return f"array of {schema_text(schema['items'])}"
    extra = {k: v for k, v in schema.items() if k != "type"}
    kind = schema.get("type", "any")
    if isinstance(kind, list):  # OpenAPI 3.1: ["integer", "null"]
        kind = " or ".join(kind)
    if not extra:
        return str(kind)
    return f"{kind} ({', '.join(_code(f'{k} {json.dumps(v)}') for k, v in sorted(extra.items()))})"


def _code(text: str) -> str:
    """A code span; as HTML when the text has ``](`` (a pattern such as ``[a-z](?:...)``),
    which a Markdown reader, and the link check of tests/unit/test_readme.py, takes for a
    link."""
    if "](" not in text:
        return f"`{text}`"
    return "<code>" + html.escape(text, quote=False).replace("]", "&#93;") + "</code>"


def _access(document: dict[str, Any], op: dict[str, Any]) -> str:
    security = op.get("security", document.get("security", []))
    if not security:
        return "public"
    if {} in security:
        return "administrator, or public as the description says"
    return "administrator (HTTP Basic)"


def _operation(document: dict[str, Any], path: str, method: str, op: dict[str, Any]) -> list[str]:
    out = [f"### `{method.upper()} {path}`", "", _cell(op.get("summary", ""))]
    if op.get("description"):
        out += ["", _cell(op["description"])]
    out += ["", f"Tag `{op['tags'][0]}`; access: {_access(document, op)}.", ""]
    if op.get("parameters"):
        out += ["| parameter | in | required | schema | description |", "|---|---|---|---|---|"]
        for p in op["parameters"]:
            cells = [f"`{p['name']}`", p["in"], "yes" if p["required"] else "no"]
            cells += [schema_text(p["schema"]), p.get("description", "")]
            out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        out.append("")
    if "requestBody" in op:
        bodies = [
            f"`{media}`: {schema_text(c['schema'])}"
            for media, c in op["requestBody"]["content"].items()
        ]
        out += ["Request body: " + "; ".join(bodies) + ".", ""]
    out += ["| status | description | body |", "|---|---|---|"]
    for status, response in op["responses"].items():
        body = ", ".join(
            f"`{media}` {schema_text(c['schema'])}"
            for media, c in response.get("content", {}).items()
        )
        out.append(f"| {status} | {_cell(response['description'])} | {body} |")
    return [*out, ""]


def _schema(name: str, schema: dict[str, Any]) -> list[str]:
    out = [f"### {name}", ""]
    if schema.get("description"):
        out += [_cell(schema["description"]), ""]
    properties = schema.get("properties")
    if not properties:
        return [*out, f"Type: {schema_text(schema)}.", ""]
    required = set(schema.get("required", ()))
    out += ["| property | required | schema | description |", "|---|---|---|---|"]
    for prop, sub in properties.items():
        description = sub.get("description", "")
        sub = {k: v for k, v in sub.items() if k != "description"}
        cells = [f"`{prop}`", "yes" if prop in required else "no", schema_text(sub), description]
        out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return [*out, ""]


def render(document: dict[str, Any]) -> str:
    """The page, deterministically (the document's own order; no version number)."""
    out = [
        "# HTTP API reference",
        "",
        "<!-- Generated from the OpenAPI document by `stalwart-py reference`: do not edit;",
        "     tests/unit/test_docs_reference.py fails when this page is out of date. -->",
        "",
        "Every route of the `http` protocol, generated from the OpenAPI document the server",
        "serves at `/api/openapi.json`. The listener, authentication and examples:",
        "[http-api.md](http-api.md).",
        "",
        document["info"]["description"].strip(),
        "",
        "## Routes",
        "",
        "| method | path | summary |",
        "|---|---|---|",
    ]
    operations = [
        (path, method, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]
    for path, method, op in operations:
        anchor = f"{method} {path}".lower()
        anchor = "".join(c for c in anchor if c.isalnum() or c in " -_").replace(" ", "-")
        out.append(f"| {method.upper()} | [`{path}`](#{anchor}) | {_cell(op.get('summary', ''))} |")
    out += ["", "## Operations", ""]
    for path, method, op in operations:
        out += _operation(document, path, method, op)
    out += ["## Schemas", ""]
    for name, schema in sorted(document["components"]["schemas"].items()):
        out += _schema(name, schema)
    return "\n".join(out).rstrip("\n") + "\n"
