"""Requests and responses as the handlers see them: plain values, no I/O.

A handler takes a ``Request`` (method, decoded path, query, headers, the whole body, who is
asking) and returns a ``Response``; the connection loop (``server.py``) or any other HTTP server
(the benchmark's ASGI adapter) turns bytes into the one and the other into bytes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

if TYPE_CHECKING:
    from protocols.http.settings import HttpSettings
    from stalwart_py.connection import Address, TLSInfo
    from stalwart_py.context import ServerContext
    from stalwart_py.store import Account

JSON_TYPE = "application/json"
MAX_QUERY_FIELDS = 1100  # recipients of an injection may be given in the query


@dataclass(slots=True)
class Session:
    """Who is asking, over which connection: what a handler needs besides the request."""

    server: ServerContext
    settings: HttpSettings
    peer: Address
    tls: TLSInfo | None
    session_id: str
    listener: str
    log: logging.LoggerAdapter[logging.Logger]


@dataclass(slots=True)
class Request:
    method: str  # upper case, as sent (HEAD stays HEAD)
    target: str  # the request target as sent, for logs
    path: str  # percent-encoded, without the query
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names; repeated fields joined with ", "
    body: bytes
    session: Session
    params: dict[str, str] = field(default_factory=dict)  # path parameters, decoded
    data: Any = None  # the JSON body, once validated against the route's schema
    account: Account | None = None  # set once the caller has authenticated

    @classmethod
    def build(
        cls, method: str, target: str, headers: dict[str, str], body: bytes, session: Session
    ) -> Request:
        path, _, query = target.partition("?")
        if path.startswith(("http://", "https://")):  # absolute-form (RFC 9112 3.2.2)
            path = "/" + path.split("://", 1)[1].partition("/")[2]
        try:
            parsed = parse_qs(query, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS)
        except ValueError:
            raise HttpError(400, f"more than {MAX_QUERY_FIELDS} query parameters") from None
        return cls(method, target, path, parsed, headers, body, session)

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower case ("" when absent)."""
        return self.headers.get("content-type", "").partition(";")[0].strip().lower()

    def json(self) -> Any:
        """The body as JSON (RFC 8259); 415 for another media type, 400 when it is not JSON."""
        kind = self.content_type
        if kind and kind != JSON_TYPE and not kind.endswith("+json"):
            raise HttpError(
                415, f"expected {JSON_TYPE}, got {kind} (with curl: --json or -H 'Content-Type')"
            )
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(400, f"the body is not JSON: {exc}") from None
        except RecursionError:
            raise HttpError(400, "the body's JSON is nested too deeply") from None

    def query_value(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    def query_int(self, name: str, default: int, low: int, high: int) -> int:
        text = self.query_value(name)
        if text is None:
            return default
        value = bounded_int(text, low, high)
        if value is None:
            raise HttpError(400, f"{name}: expected an integer from {low} to {high}")
        return value


def bounded_int(text: str, low: int, high: int) -> int | None:
    """``text`` as a decimal integer from ``low`` to ``high``, or None. ASCII digits only:
    ``str.isdigit`` also takes "²", which ``int`` refuses."""
    if not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if low <= value <= high else None


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)


def json_response(status: int, data: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
    return Response(status, body, JSON_TYPE, headers or [])


def no_content() -> Response:
    return Response(204)


class HttpError(Exception):
    """An error answer: ``{"error": message}`` with ``status`` (and extra ``details``)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        headers: list[tuple[str, str]] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []
        self.details = details or {}

    def response(self) -> Response:
        return json_response(self.status, {"error": self.message, **self.details}, self.headers)


def decode_segment(segment: str) -> str:
    """A path segment, percent-decoded (RFC 3986 2.1) as UTF-8."""
    return unquote(segment, errors="strict") if "%" in segment else segment
