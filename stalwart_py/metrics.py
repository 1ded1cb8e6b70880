"""Server metrics in the Prometheus data model (prometheus_client, one registry per server).

The core counts connections per listener; protocols add their own counters through
``counter()``/``gauge()``, which return the existing metric when the name is already known, so a
protocol can ask for its metrics wherever it needs them.

With ``server.workers = N``, ``/metrics`` answers for the server, whichever worker serves the
scrape: prometheus_client's multiprocess mode. Each worker, right after its fork, switches its
metrics to values kept in files of its own under ``<data-dir>/run/metrics/``
(``use_multiprocess``), and a scrape reads and merges every worker's files
(``MultiProcessCollector``). The supervisor empties the folder at start and, when a worker dies,
deletes its live gauges (``forget_process``): so

* counters are summed over every worker that ever ran since the start, a dead one's included
  (the supervisor adds its counters into one file, ``forget_process``);
* a gauge says how it is aggregated (``aggregate``): ``"livesum"``, the default, for what each
  worker holds (open connections, outbound connections, messages held in memory), summed over
  the live workers; ``"livemostrecent"`` for a server-wide value that any worker may compute
  (the queue's size read at scrape time, a certificate's expiry), the latest set;
* collectors computed at scrape time (certificate expiry) are the answering worker's, which
  sees the same certificates as the others.

With one process (``workers = 1``) the registry is rendered as it is, which is the sum over
one worker; the same metric objects and calls are used either way.

Cost (2-core development machine, load ~6): ``counter.labels(...).inc()`` 3.0 us in one process,
4.0 us writing to the worker's file; a scrape merging 50 metrics' files 1.3 ms.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest, values
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
ENVIRONMENT = "PROMETHEUS_MULTIPROC_DIR"  # where prometheus_client's values find their files

Aggregate = Literal["livesum", "livemostrecent"]

_multiprocess_dir: Path | None = None


def prepare_multiprocess(directory: Path) -> None:
    """The supervisor, at start: an empty folder for the workers' metric files."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(mode=0o700, parents=True)


def use_multiprocess(directory: Path) -> None:
    """A worker, right after its fork and before it makes a metric: its metrics keep their
    values in files under ``directory`` that every worker's scrape reads (module docstring).
    prometheus_client chooses its value class once per process, so this is process-wide."""
    global _multiprocess_dir
    os.environ[ENVIRONMENT] = str(directory)
    values.ValueClass = values.MultiProcessValue()
    _multiprocess_dir = directory


def forget_process(directory: Path, pid: int) -> None:
    """The supervisor, when a worker died: its live gauges go, and its counters are added into
    one ``counter_folded.db`` and its own file deleted, so that a worker restarting over and
    over does not leave a file per life for every scrape to read. (A scrape in the
    microseconds between the two steps counts that worker twice.)"""
    mark_process_dead(pid, str(directory))
    for path in directory.glob(f"*_{pid}.db"):
        kind = path.name.split("_")[0]
        if kind == "gauge":  # only live modes are used here: mark_process_dead took them
            continue
        folded = MmapedDict(str(directory / f"{kind}_folded.db"))
        try:
            for key, value, timestamp in _values(path):
                total, _ = folded.read_value(key)
                folded.write_value(key, total + value, timestamp)
        finally:
            folded.close()
        path.unlink()


def _values(path: Path) -> list[tuple[str, float, float]]:
    return [
        (key, value, timestamp)
        for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(str(path))
    ]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._metrics: dict[str, Counter | Gauge] = {}
        self._collectors: list[Collector] = []
        # Labelled children by (metric, label values): ``labels()`` takes a lock and checks
        # its arguments at every call, which costs more than the ``inc()`` after it, and
        # every connection and message counts a few.
        self._children: dict[tuple[object, tuple[str, ...]], Any] = {}
        self.connections_accepted = self.counter(
            "stalwart_connections_accepted", "Connections accepted and served", ["listener"]
        )
        self.connections_refused = self.counter(
            "stalwart_connections_refused", "Connections refused", ["listener", "reason"]
        )
        self.connections_open = self.gauge(
            "stalwart_connections_open", "Connections open now", ["listener"]
        )

    def child(self, metric: Counter | Gauge, *values: str) -> Any:
        """``metric.labels(*values)``, looked up once per metric and values (a child, once
        made, is never removed here). For label values from a small set (listener ids, reply
        codes): each pair is kept for the life of the process."""
        key = (metric, values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        metric = self._metrics.get(name)
        if metric is None:
            metric = self._metrics[name] = Counter(
                name, documentation, list(labels), registry=self.registry
            )
        if not isinstance(metric, Counter):
            raise TypeError(f"metric {name} is not a counter")
        return metric

    def gauge(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str] = (),
        *,
        aggregate: Aggregate = "livesum",
    ) -> Gauge:
        """``aggregate``: how the workers' values make the server's (module docstring)."""
        metric = self._metrics.get(name)
        if metric is None:
            metric = self._metrics[name] = Gauge(
                name,
                documentation,
                list(labels),
                registry=self.registry,
                multiprocess_mode=aggregate,
            )
        if not isinstance(metric, Gauge):
            raise TypeError(f"metric {name} is not a gauge")
        return metric

    def register(self, collector: Collector) -> None:
        """A collector computed at scrape time (its figures are the answering worker's)."""
        self.registry.register(collector)
        self._collectors.append(collector)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric, the server's over its workers."""
        if _multiprocess_dir is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, str(_multiprocess_dir))
        for collector in self._collectors:
            merged.register(collector)
        for _ in range(2):
            try:
                return generate_latest(merged)
            except FileNotFoundError:  # a dead worker's file folded away during the read
                continue
        return generate_latest(merged)
