"""ACME HTTP-01 answers (RFC 8555 8.3): ``GET /.well-known/acme-challenge/<token>``.

The CA fetches this over plain HTTP on port 80, without credentials, from whatever address
the domain resolves to, so every HTTP listener answers it, TLS or not, and before the API's
authentication. The answer (the key authorization) is what the ACME renewal task kept in the
store for the token (``stalwart_py.acme.challenges``), so any worker process of any node can
serve it; an unknown or malformed token is a 404.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from protocols.http.messages import HttpError, Request, Response
from stalwart_py.acme.challenges import HTTP01_PATH, http01_answer

LABEL = f"GET {HTTP01_PATH}{{token}}"


def match(request: Request) -> tuple[str, Callable[[Request], Awaitable[Response]]] | None:
    """The handler of an HTTP-01 request, with its metrics label; None for other paths."""
    if request.path.startswith(HTTP01_PATH):
        return LABEL, answer
    return None


async def answer(request: Request) -> Response:
    if request.method not in ("GET", "HEAD"):
        raise HttpError(
            405, f"{request.method} is not allowed here", headers=[("Allow", "GET, HEAD")]
        )
    token = request.path[len(HTTP01_PATH) :]
    body = await http01_answer(request.session.server.store, token)
    if body is None:
        raise HttpError(404, "no such ACME challenge")
    return Response(200, body, "application/octet-stream")
