"""``/healthz``, ``/readyz`` and ``/metrics``.

Liveness answers without touching anything (the process and its event loop run). Readiness
means every address of every enabled listener of the configuration in force is bound and the
store answers a query. ``/metrics`` is the Prometheus text exposition (format 0.0.4) of every
metric of the server: the core's per-listener connection counters, each protocol's own
counters, and two gauges read at scrape time, the outbound queue and the store's size on disk.
With several worker processes the figures are the server's, summed over the workers
(``stalwart_py.metrics``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio

from protocols.http.messages import Request, Response, json_response
from protocols.http.router import Access, RouteTable
from protocols.http.schemas import ref
from stalwart_py.metrics import CONTENT_TYPE as METRICS_TYPE

if TYPE_CHECKING:
    from stalwart_py.context import ServerContext

routes = RouteTable()

STORE_CHECK_TIMEOUT = 5.0


@routes.get(
    "/healthz",
    access=Access.PUBLIC,
    tag="health",
    summary="Liveness: the process is up and serving",
    responses={200: ("alive", ref("Health"))},
)
async def healthz(request: Request) -> Response:
    return Response(200, b'{"status":"ok"}\n', "application/json")


@routes.get(
    "/readyz",
    access=Access.PUBLIC,
    tag="health",
    summary="Readiness: every enabled listener is bound and the store answers",
    responses={200: ("ready", ref("Readiness")), 503: ("not ready", ref("Readiness"))},
)
async def readyz(request: Request) -> Response:
    ready, checks = await readiness(request.session.server, request.session.log)
    return json_response(
        200 if ready else 503,
        {"status": "ready" if ready else "not-ready", "checks": checks},
    )


async def readiness(
    server: ServerContext, log: logging.LoggerAdapter[logging.Logger]
) -> tuple[bool, dict[str, bool]]:
    """Whether the server is ready, and each check's result: ``/readyz`` and the
    administrator's dashboard (``/admin/``) both ask this."""
    # Every address of every enabled listener: one that lost an address (a reload that could
    # not bind it again) serves only part of what it is configured for.
    listeners_ok = server.listeners is not None and all(
        (runtime := server.listeners.listeners.get(lid)) is not None
        and all(address in runtime.sockets for address in listener.bind)
        for lid, listener in server.config.listeners.items()
        if listener.enable
    )
    store_ok = True
    try:
        with anyio.fail_after(STORE_CHECK_TIMEOUT):
            await server.store.list_domains()
    except Exception as exc:  # a store that fails or hangs: not ready, and say why in the log
        log.warning("readiness: the store does not answer: %r", exc)
        store_ok = False
    return listeners_ok and store_ok, {"listeners": listeners_ok, "store": store_ok}


@routes.get(
    "/metrics",
    access=Access.METRICS,
    tag="health",
    summary="Prometheus metrics (text format 0.0.4)",
    responses={200: ("every metric of the server", None)},
    response_type=METRICS_TYPE.partition(";")[0],
)
async def metrics(request: Request) -> Response:
    server = request.session.server
    registry = server.metrics
    messages, recipients = await server.store.queue_size()
    # Read from the store, the same whichever worker answers: the latest value, not a sum.
    latest = "livemostrecent"
    registry.gauge(
        "stalwart_queue_messages",
        "Messages in the outbound queue with a pending recipient",
        aggregate=latest,
    ).set(messages)
    registry.gauge(
        "stalwart_queue_recipients", "Recipients waiting in the outbound queue", aggregate=latest
    ).set(recipients)
    registry.gauge(
        "stalwart_store_size_bytes", "Bytes the mail store occupies on disk", aggregate=latest
    ).set(await server.store.disk_usage())
    return Response(200, registry.render(), METRICS_TYPE)
