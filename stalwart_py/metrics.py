"""Server metrics in the Prometheus data model (prometheus_client, one registry per server).

The core counts connections per listener; protocols add their own counters through
``counter()``/``gauge()``, which return the existing metric when the name is already known, so a
protocol can ask for its metrics wherever it needs them.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._metrics: dict[str, Counter | Gauge] = {}
        self.connections_accepted = self.counter(
            "stalwart_connections_accepted", "Connections accepted and served", ["listener"]
        )
        self.connections_refused = self.counter(
            "stalwart_connections_refused", "Connections refused", ["listener", "reason"]
        )
        self.connections_open = self.gauge(
            "stalwart_connections_open", "Connections open now", ["listener"]
        )

    def counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        metric = self._metrics.get(name)
        if metric is None:
            metric = self._metrics[name] = Counter(
                name, documentation, list(labels), registry=self.registry
            )
        if not isinstance(metric, Counter):
            raise TypeError(f"metric {name} is not a counter")
        return metric

    def gauge(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
        metric = self._metrics.get(name)
        if metric is None:
            metric = self._metrics[name] = Gauge(
                name, documentation, list(labels), registry=self.registry
            )
        if not isinstance(metric, Gauge):
            raise TypeError(f"metric {name} is not a gauge")
        return metric

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
