"""The application: every route, authentication, body validation, and errors as JSON.

``Application.dispatch(request) -> response`` is all an HTTP server needs to serve the API:
the connection loop (``server.py``) calls it, and so does the benchmark's ASGI adapter. No
exception escapes it: an ``HttpError`` becomes its JSON answer, anything else a 500 whose
details go to the log with the session id, never to the client.
"""

from __future__ import annotations

import importlib.metadata
import json
import weakref
from typing import Any

from prometheus_client import Counter

from protocols.http import acme_challenge, autoconfig, web
from protocols.http.auth import Authenticator
from protocols.http.handlers import (
    acme,
    app_passwords,
    certificates,
    control,
    directory,
    dns,
    health,
    inject,
    queue,
    sieve,
    two_factor,
)
from protocols.http.messages import HttpError, Request, Response, json_response
from protocols.http.openapi import build_document
from protocols.http.router import Access, Route, Router, RouteTable
from protocols.http.schemas import COMPONENTS, components_for
from protocols.http.validation import SchemaError, validate
from stalwart_py.metrics import Metrics


def request_counter(metrics: Metrics) -> Counter:
    return metrics.counter(
        "stalwart_http_requests", "HTTP requests answered, by route and status", ["route", "status"]
    )


ROUTE_TABLES = (
    health.routes,
    directory.routes,
    app_passwords.routes,
    two_factor.routes,
    control.routes,
    queue.routes,
    inject.routes,
    dns.routes,
    sieve.routes,
    acme.routes,
    certificates.routes,
)


def _version() -> str:
    try:
        return importlib.metadata.version("stalwart-py")
    except importlib.metadata.PackageNotFoundError:
        return "0"


class Application:
    def __init__(self) -> None:
        self.auth = Authenticator()
        own = RouteTable()
        own.get(
            "/api/openapi.json",
            access=Access.PUBLIC,
            tag="api",
            summary="This OpenAPI 3.1 document",
            responses={200: ("the document", {"type": "object"})},
        )(self.openapi)
        routes: list[Route] = [route for table in (*ROUTE_TABLES, own) for route in table.routes]
        self.router = Router(routes)
        self.document = build_document(self.router.routes, _version(), COMPONENTS)
        # the document as served, by directory.min-password-length (which it states)
        self._document_bodies: dict[int, bytes] = {}
        # the labelled children of the request counter, per server (its Metrics)
        self._counters: weakref.WeakKeyDictionary[Metrics, dict[tuple[str, int], Any]] = (
            weakref.WeakKeyDictionary()
        )

    def document_for(self, min_password_length: int) -> bytes:
        """The document as served when the directory asks for passwords of at least
        ``min_password_length`` characters."""
        body = self._document_bodies.get(min_password_length)
        if body is None:
            components = components_for(min_password_length)
            document = build_document(self.router.routes, _version(), components)
            body = json.dumps(document, indent=1).encode() + b"\n"
            self._document_bodies[min_password_length] = body
        return body

    async def openapi(self, request: Request) -> Response:
        length = request.session.server.directory.settings.min_password_length
        return Response(200, self.document_for(length), "application/json")

    async def dispatch(self, request: Request) -> Response:
        route: Route | None = None
        label = "unmatched"
        try:
            # Client setup and MTA-STS (autoconfig.py), ACME HTTP-01 answers (acme_challenge.py),
            # the web pages with their own sessions (web/): by path and Host, before the API
            # and its authentication.
            special = (
                autoconfig.match(request) or acme_challenge.match(request) or web.match(request)
            )
            if special is not None:
                label, handler = special
                response = await handler(request)
                return self._count(request, label, response)
            route, request.params = self.router.match(request.method, request.path)
            label = route.label
            if route.access is Access.ADMIN or (
                route.access is Access.METRICS and not request.session.settings.public_metrics
            ):
                request.account = await self.auth.admin(request)
            elif route.access is Access.ACCOUNT:
                request.account = await self.auth.account(request)
            if route.query and (unknown := set(request.query) - {p.name for p in route.query}):
                # A misspelt option (?forse=true) must not be ignored by a route that acts.
                raise HttpError(400, f"unknown query parameter {sorted(unknown)[0]!r}")
            if route.body is not None:
                directory = request.session.server.directory
                self._read_body(route, request, directory.settings.min_password_length)
            response = await route.handler(request)
        except HttpError as exc:
            response = exc.response()
        except Exception:
            request.session.log.exception("%s %s failed", request.method, request.target)
            response = json_response(500, {"error": "internal error; the server log says more"})
        return self._count(request, label, response)

    @staticmethod
    def _count(request: Request, label: str, response: Response) -> Response:
        request.session.server.metrics.counter(
            "stalwart_http_requests",
            "HTTP requests answered, by route and status",
            ["route", "status"],
        ).labels(label, str(response.status)).inc()
        return response

    @staticmethod
    def _read_body(route: Route, request: Request, min_password_length: int) -> None:
        kind = request.content_type
        if kind in route.body_types and kind != "application/json":
            return  # the handler reads it as it is
        if kind and kind != "application/json" and not kind.endswith("+json"):
            accepted = ", ".join(route.body_types)
            raise HttpError(415, f"expected {accepted}, got {kind}")
        data = request.json()
        try:
            validate(data, route.body or {}, components_for(min_password_length))
        except SchemaError as exc:
            raise HttpError(400, str(exc)) from None
        request.data = data
