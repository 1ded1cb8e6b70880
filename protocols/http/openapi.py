"""The OpenAPI 3.1 document of the API, generated from the routes themselves.

Each route declares its parameters, request schema, responses and access (``router.py``);
this module adds what is common to every route of a kind, so that the document lists every
status a route can answer: 401, 403 and 429 for authenticated routes; 400, 413 and 415 for
routes with a body; 400 for routes with query parameters; 404 for routes with path parameters.
"""

from __future__ import annotations

from typing import Any

from protocols.http.router import Access, Route
from protocols.http.schemas import COMPONENTS, ref

DESCRIPTION = """The management API of a running stalwart-py server, and message injection.

Authenticated routes take HTTP Basic credentials (RFC 7617) of an administrator account of the
server's directory. Over plain HTTP they are accepted only from the networks in
`http.allow-plaintext-from` (loopback by default); use the listener's TLS otherwise.
"""

TAGS = {
    "health": "liveness, readiness and metrics",
    "accounts": "mail accounts",
    "domains": "local domains",
    "aliases": "aliases and catch-alls",
    "listeners": "the running listeners, and suspending them at run time",
    "server": "configuration: reload and the effective settings",
    "queue": "the outbound queue and the reports received",
    "inject": "message injection",
    "dns": "the DNS records of hosted domains, and checking them",
    "sieve": "the global Sieve scripts (RFC 6609 include :global)",
    "certificates": "TLS certificates: those in use, and ACME renewal",
    "api": "this document",
}

AUTH_RESPONSES = {
    401: "no credentials, or wrong ones (WWW-Authenticate says how)",
    403: "not an administrator, or credentials over plain HTTP from a network not allowed",
    429: "too many failed logins from this client or for this account",
}
BODY_RESPONSES = {
    400: "the body is not valid for its schema",
    413: "the body is larger than http.max-body-size",
    415: "the body's media type is not one this route takes",
}


def _json(schema: dict[str, Any], media: str = "application/json") -> dict[str, Any]:
    return {media: {"schema": schema}}


def _parameter(param: Any, where: str) -> dict[str, Any]:
    return {
        "name": param.name,
        "in": where,
        "required": where == "path" or param.required,
        "description": param.description,
        "schema": param.schema,
    }


def operation(route: Route) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, (description, schema) in sorted(route.responses.items()):
        response: dict[str, Any] = {"description": description}
        if status != 204:
            content = schema if schema is not None else {"type": "string"}
            media = route.response_type if schema is None else "application/json"
            response["content"] = _json(content, media)
        responses[str(status)] = response
    generic: dict[int, str] = {}
    if route.access is not Access.PUBLIC:
        generic |= AUTH_RESPONSES
    if route.body is not None:
        generic |= BODY_RESPONSES
    if route.query:
        generic[400] = generic.get(400, "a query parameter is not valid")
    if route.params:
        generic[404] = f"no such {route.params[0].name}"
    for status, description in generic.items():
        responses.setdefault(
            str(status), {"description": description, "content": _json(ref("Error"))}
        )
    op: dict[str, Any] = {
        "operationId": route.name,
        "summary": route.summary,
        "tags": [route.tag],
        "responses": dict(sorted(responses.items())),
    }
    parameters = [_parameter(p, "path") for p in route.params]
    parameters += [_parameter(p, "query") for p in route.query]
    if parameters:
        op["parameters"] = parameters
    if route.body is not None:
        content = _json(route.body)
        for media in route.body_types:
            if media != "application/json":
                content[media] = {"schema": {"type": "string"}}
        op["requestBody"] = {"required": True, "content": content}
    if route.access is Access.PUBLIC:
        op["security"] = []
    elif route.access is Access.METRICS:
        op["security"] = [{"basic": []}, {}]
        op["description"] = "Without credentials when http.public-metrics is true."
    elif route.access is Access.ACCOUNT:
        op["description"] = "By an administrator, or by the account itself."
    return op


def build_document(
    routes: list[Route], version: str, components: dict[str, Any] = COMPONENTS
) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.template, {})[route.method.lower()] = operation(route)
    used_tags = {route.tag for route in routes}
    return {
        "openapi": "3.1.0",
        "info": {"title": "stalwart-py", "version": version, "description": DESCRIPTION},
        "tags": [{"name": n, "description": d} for n, d in TAGS.items() if n in used_tags],
        "security": [{"basic": []}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"basic": {"type": "http", "scheme": "basic"}},
        },
    }
