"""Routes: method + path template -> handler, with what the OpenAPI document says about each.

A route carries its own documentation (summary, parameters, request and response schemas,
who may call it), and the OpenAPI document is generated from the routes (``openapi.py``), so
the two cannot drift. Matching is by path segments: ``/api/accounts/{address}`` matches
``/api/accounts/alice%40example.com`` with ``address = "alice@example.com"``. Where a literal
segment and a parameter could both match (``/api/queue/retry`` and ``/api/queue/{id}``), the
literal wins, whatever the method: ``/api/queue/retry`` names the one resource the document
lists under that path, so ``GET /api/queue/retry`` is a 405, not a read of a message whose
id is "retry". A path that matches with another method is a 405 with ``Allow`` (RFC 9110
15.5.6); HEAD is served by the GET route (RFC 9110 9.3.2).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from protocols.http.messages import HttpError, Request, Response, decode_segment

Handler = Callable[[Request], Awaitable[Response]]


class Access(Enum):
    PUBLIC = "public"  # no credentials
    ADMIN = "admin"  # HTTP Basic, an administrator account
    ACCOUNT = "account"  # HTTP Basic, any account (the handler checks which it may touch)
    METRICS = "metrics"  # ADMIN unless http.public-metrics is true for this peer


@dataclass(frozen=True, slots=True)
class Param:
    """A path or query parameter, for the document and for matching."""

    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False  # query parameters; path parameters are always required


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    template: str
    handler: Handler
    access: Access
    summary: str
    tag: str
    responses: dict[int, tuple[str, dict[str, Any] | None]]  # status -> (description, schema)
    params: tuple[Param, ...] = ()  # the {names} of the template, in order
    query: tuple[Param, ...] = ()
    body: dict[str, Any] | None = None  # the JSON request schema
    body_types: tuple[str, ...] = ("application/json",)  # other media types the body may have
    response_type: str = "application/json"

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.template.strip("/").split("/"))

    @property
    def name(self) -> str:
        return self.handler.__name__

    @property
    def label(self) -> str:
        """``GET /api/accounts/{address}``: a metric label of bounded cardinality."""
        return f"{self.method} {self.template}"


class RouteTable:
    """Collects the routes of a handler module with decorators::

    routes = RouteTable()

    @routes.get("/healthz", summary="...", tag="health", responses={200: ("...", schema)})
    async def healthz(request: Request) -> Response: ...
    """

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, template: str, **info: Any) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            info.setdefault("access", Access.ADMIN)
            self.routes.append(Route(method, template, handler, **info))
            return handler

        return register

    def get(self, template: str, **info: Any) -> Callable[[Handler], Handler]:
        return self.add("GET", template, **info)

    def post(self, template: str, **info: Any) -> Callable[[Handler], Handler]:
        return self.add("POST", template, **info)

    def patch(self, template: str, **info: Any) -> Callable[[Handler], Handler]:
        return self.add("PATCH", template, **info)

    def delete(self, template: str, **info: Any) -> Callable[[Handler], Handler]:
        return self.add("DELETE", template, **info)


class Router:
    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = list(routes)
        # by segment count, so that a request is compared with few templates
        self._by_length: dict[int, list[Route]] = {}
        seen = set()
        for route in self.routes:
            key = (route.method, tuple("{}" if s.startswith("{") else s for s in route.segments))
            if key in seen:
                raise ValueError(f"two routes for {route.label}")
            seen.add(key)
            names = [s[1:-1] for s in route.segments if s.startswith("{")]
            if names != [p.name for p in route.params]:
                raise ValueError(f"{route.label}: params must describe {names}")
            self._by_length.setdefault(len(route.segments), []).append(route)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route for a request, with its decoded path parameters; HttpError 404 or 405."""
        segments = path.strip("/").split("/")
        wanted = "GET" if method == "HEAD" else method
        # The templates that match the path, the most specific first: at the first segment
        # where two differ, the literal one (a parameter sorts after any literal).
        bound = []
        for route in self._by_length.get(len(segments), ()):
            params = _bind(route.segments, segments)
            if params is not None:
                bound.append((tuple(s.startswith("{") for s in route.segments), route, params))
        bound.sort(key=lambda item: item[0])
        allowed: list[str] = []
        for shape, route, params in bound:
            if shape != bound[0][0]:
                break  # a less specific template: the path is not its resource
            if route.method == wanted:
                return route, params
            allowed.append(route.method)
        if allowed:
            if "GET" in allowed:
                allowed.append("HEAD")
            methods = ", ".join(sorted(set(allowed)))
            raise HttpError(405, f"{method} is not allowed here", headers=[("Allow", methods)])
        raise HttpError(404, f"no such resource: {path}")


def _bind(template: tuple[str, ...], segments: list[str]) -> dict[str, str] | None:
    params: dict[str, str] = {}
    for pattern, segment in zip(template, segments, strict=True):
        if pattern.startswith("{"):
            try:
                value = decode_segment(segment)
            except UnicodeDecodeError:
                return None
            if not value:
                return None
            params[pattern[1:-1]] = value
        elif pattern != segment:
            return None
    return params
