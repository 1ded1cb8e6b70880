"""A dead worker's metric files: counters folded into one file that keeps their sums, live
gauges dropped, read back by prometheus_client's own multiprocess collector."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from stalwart_py.metrics import forget_process


def write(path, key, value):
    values = MmapedDict(str(path))
    values.write_value(key, value, 0.0)
    values.close()


def samples(directory):
    registry = CollectorRegistry()
    MultiProcessCollector(registry, str(directory))
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_dead_workers_counters_are_folded_and_their_live_gauges_dropped(tmp_path):
    accepted = mmap_key("a", "a_total", ["listener"], ["smtp"], "accepted")
    refused = mmap_key("r", "r_total", ["listener"], ["imap"], "refused")
    open_now = mmap_key("o", "o", ["listener"], ["smtp"], "open")
    for pid, count in ((101, 3.0), (102, 4.0), (103, 5.0)):
        write(tmp_path / f"counter_{pid}.db", accepted, count)
        write(tmp_path / f"gauge_livesum_{pid}.db", open_now, 1.0)
    write(tmp_path / "counter_102.db", refused, 2.0)
    before = samples(tmp_path)
    forget_process(tmp_path, 101)
    forget_process(tmp_path, 102)
    after = samples(tmp_path)
    smtp = (("listener", "smtp"),)
    assert before[("a_total", smtp)] == after[("a_total", smtp)] == 12.0
    assert after[("r_total", (("listener", "imap"),))] == 2.0
    assert before[("o", smtp)] == 3.0 and after[("o", smtp)] == 1.0  # only 103 lives
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "counter_103.db",
        "counter_folded.db",
        "gauge_livesum_103.db",
    ]
