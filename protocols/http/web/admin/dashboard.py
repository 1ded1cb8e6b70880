"""``/admin/``: the dashboard. What runs and how it is doing, read from the same places as the
API and ``/metrics``:

* the listeners with their state and load (``ListenerRegistry.status``, as ``/api/listeners``);
* the outbound queue's size (``Store.queue_size``, as the ``stalwart_queue_*`` gauges);
* activity since the server started: recipients delivered, queued and refused by the delivery
  pipeline, outbound attempts by result, connections refused and SMTP replies refused (the
  server's counters, as ``/metrics`` renders them, summed over its workers). The server keeps
  no log of single deliveries, so "recent" is "since the start" plus the last reports;
* the five DSN/ARF reports received last (``/api/reports``);
* the certificates with their expiry (``/api/certificates``);
* readiness (``/readyz``'s checks).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from protocols.http.handlers.health import readiness
from protocols.http.messages import Response
from protocols.http.web.pages import Level, PageTable, WebRequest

pages = PageTable()

RECENT_REPORTS = 5
EXPIRY_WARNING = 14 * 86400  # seconds: a certificate this close to its end is flagged
# counter -> (the label shown per row, what the table is called)
ACTIVITY = {
    "stalwart_deliveries": ("result", "Recipients through the delivery pipeline"),
    "stalwart_queue_attempts": ("result", "Outbound delivery attempts"),
    "stalwart_connections_refused": ("reason", "Connections refused"),
    "stalwart_smtp_rejected": ("code", "SMTP replies refusing (4xx, 5xx)"),
}


def activity(rendered: bytes) -> list[tuple[str, list[tuple[str, int]]]]:
    """The counters of ``ACTIVITY`` from the metrics' text, summed per label value (over
    listeners): ``[(title, [(value, count), ...]), ...]``."""
    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for family in text_string_to_metric_families(rendered.decode("utf-8")):
        wanted = ACTIVITY.get(family.name)  # a counter's family is named without "_total"
        if wanted is None:
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):  # not the "_created" timestamps
                totals[family.name][sample.labels.get(wanted[0], "")] += sample.value
    return [
        (title, sorted((key, int(value)) for key, value in totals[name].items() if value))
        for name, (_, title) in ACTIVITY.items()
    ]


@pages.page("/admin/", level=Level.ADMIN)
async def dashboard(web: WebRequest) -> Response:
    server = web.server
    listeners: list[dict[str, Any]] = (
        server.listeners.status() if server.listeners is not None else []
    )
    messages, recipients = await server.store.queue_size()
    ready, checks = await readiness(server, web.log)
    certificates = sorted(server.certificates.describe(), key=lambda c: c["expires_in"])
    return web.render(
        "admin/dashboard.html",
        title="Administration",
        listeners=listeners,
        queue=(messages, recipients),
        activity=activity(server.metrics.render()),
        reports=await server.store.list_reports(RECENT_REPORTS),
        certificates=certificates,
        expiry_warning=EXPIRY_WARNING,
        ready=ready,
        checks=checks,
        serving=web.request.session.listener,
    )
