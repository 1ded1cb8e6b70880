"""Certificate expiry in ``/metrics``: computed when scraped, so the value is never stale.

``stalwart_certificate_expiry_seconds{id, source}`` is the time left until the certificate's
notAfter (negative once it has passed), and
``stalwart_certificate_not_after_timestamp_seconds{id, source}`` that moment as a Unix time,
for alerts such as ``stalwart_certificate_expiry_seconds < 14 * 86400``.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from stalwart_py.metrics import Metrics

if TYPE_CHECKING:
    from stalwart_py.certificates import CertificateStore


class CertificateCollector(Collector):
    def __init__(self, store: CertificateStore) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        moment = datetime.datetime.now(datetime.UTC)
        left = GaugeMetricFamily(
            "stalwart_certificate_expiry_seconds",
            "Seconds until the certificate is no longer valid (its notAfter)",
            labels=["id", "source"],
        )
        at = GaugeMetricFamily(
            "stalwart_certificate_not_after_timestamp_seconds",
            "The certificate's notAfter, as a Unix time",
            labels=["id", "source"],
        )
        for cert in self.store.certificates():
            left.add_metric([cert.id, cert.source], (cert.not_after - moment).total_seconds())
            at.add_metric([cert.id, cert.source], cert.not_after.timestamp())
        yield left
        yield at


def register(metrics: Metrics, store: CertificateStore) -> None:
    metrics.register(CertificateCollector(store))
