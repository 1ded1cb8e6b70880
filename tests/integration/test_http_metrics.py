"""/metrics in the Prometheus text format, read by prometheus_client's own parser, with
counters that move as the test acts."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.clients import LineClient
from tests.support.http import ADMIN, USER, ApiClient, start_http
from tests.support.servers import METRICS_OF_ONE_WORKER

PROBE = '[server.listener.probe]\nbind = "127.0.0.1:0"\nprotocol = "probe"\n\n'


def scrape(client: ApiClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = client.get("/metrics")
    assert answer.status == 200
    assert answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = {}
    for family in text_string_to_metric_families(answer.body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.single_worker(METRICS_OF_ONE_WORKER)
def test_counters_move_as_the_server_works(start_server):
    server = start_http(start_server, extra=PROBE)
    with ApiClient(server.address("http"), auth=ADMIN) as admin:
        before = scrape(admin)
        assert value(before, "stalwart_connections_open", listener="http") == 1
        assert value(before, "stalwart_queue_messages") == 0
        assert value(before, "stalwart_store_size_bytes") > 0
        # a probe connection served, one refused while the listener is disabled
        with LineClient(server.address("probe")) as client:
            client.info()
        admin.post("/api/listeners/probe/disable")
        with LineClient(server.address("probe")) as client:
            assert client.readline() == b"REFUSED disabled\n"
        admin.post("/api/listeners/probe/enable")
        # HTTP requests, an authentication failure, a local delivery and a queued message
        with ApiClient(server.address("http"), auth=USER) as user:
            assert user.get("/api/accounts").status == 403
        admin.post("/api/inject", {"from": "a@far.test", "to": USER[0], "text": "hi"})
        admin.post("/api/inject", {"from": "a@far.test", "to": "b@far.test", "text": "hi"})
        after = scrape(admin)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("stalwart_connections_accepted_total", listener="probe") == 1
    assert moved("stalwart_connections_refused_total", listener="probe", reason="disabled") == 1
    assert moved("stalwart_connections_accepted_total", listener="http") == 1  # the user's
    assert moved("stalwart_http_auth_failures_total", reason="not-admin") == 1
    assert moved("stalwart_http_requests_total", route="POST /api/inject", status="200") == 2
    assert moved("stalwart_http_requests_total", route="GET /metrics", status="200") == 1
    assert moved("stalwart_deliveries_total", result="delivered") == 2  # one stored, one queued
    assert value(after, "stalwart_queue_messages") == 1
    assert value(after, "stalwart_queue_recipients") == 1
    assert value(after, "stalwart_store_size_bytes") >= value(before, "stalwart_store_size_bytes")


def test_metrics_need_an_administrator_unless_public(start_server):
    server = start_http(start_server)
    with ApiClient(server.address("http")) as client:
        assert client.get("/metrics").status == 401
        assert client.get("/metrics", auth=USER).status == 403
