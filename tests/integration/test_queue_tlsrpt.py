"""TLS-RPT (RFC 8460): the queue counts its TLS results per destination and sends the daily
aggregate report, gzipped JSON in a multipart/report, to the rua of _smtp._tls.<domain>."""

from __future__ import annotations

import email
import email.policy
import gzip
import json
import re

import anyio
import pytest

from stalwart_py.config.outbound_tls import QueueMtaStsSettings
from stalwart_py.queue.tlsrpt import PolicyRef, utc_day
from stalwart_py.store.model import TlsResultCount
from tests.support.policy_server import Answer, PolicyServer, policy
from tests.support.queue_world import make_world, running

pytestmark = pytest.mark.anyio

MX_ADDRESS = "127.0.0.23"
REPORTS = "tls-reports@example.test"


@pytest.fixture
async def world(tmp_path, ca):
    async with make_world(tmp_path, ca) as world:
        world.dns.ttl = 0
        await world.directory.add_account(REPORTS, "password123")
        yield world


async def test_daily_report_json_and_the_message_sent_to_rua(world):
    server = PolicyServer(world.server_tls("mta-sts.remote.test"))
    await server.start()
    server.answers["mta-sts.remote.test"] = Answer(policy("enforce", "mx.remote.test"))
    world.dns.add("mta-sts.remote.test", "A", "127.0.0.1")
    world.dns.add("_mta-sts.remote.test", "TXT", '"v=STSv1; id=r1;"')
    world.dns.add("_smtp._tls.remote.test", "TXT", f'"v=TLSRPTv1; rua=mailto:{REPORTS}"')
    world.dns.add("remote.test", "MX", "10 mx.remote.test.")
    world.dns.add("mx.remote.test", "A", MX_ADDRESS)
    peer = await world.peer(
        MX_ADDRESS, tls_context=world.server_tls("mx.remote.test"), name="mx.remote.test"
    )
    settings = QueueMtaStsSettings(port=server.port, timeout=5.0)
    day = utc_day(world.clock.now())
    try:
        async with running(world.manager(port=peer.port, mta_sts=settings)) as queue:
            await world.enqueue("bob@remote.test")
            await queue.flush()  # verified TLS: a success
            peer.tls_context = world.server_tls("wrong.test")
            await world.enqueue("carol@remote.test")
            await queue.flush()  # a certificate for another name: a failure
            assert len(peer.received) == 1
            world.clock.advance(86400)  # the next day: yesterday's report is due
            reporter = queue.outbound_tls.reporter
            assert await reporter.send_due() == 1
            await queue.flush()  # the report is delivered (to a local mailbox, here)
    finally:
        await server.stop()
    [raw] = await world.inbox(REPORTS)
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message.get_content_type() == "multipart/report"
    assert message.get_param("report-type") == "tlsrpt"
    assert message["TLS-Report-Domain"] == "remote.test"
    assert message["TLS-Report-Submitter"] == "mail.example.test"
    assert message["From"] == "noreply-smtp-tls-reporting@mail.example.test"
    assert message["Subject"].startswith("Report Domain: remote.test Submitter: mail.example.test")
    text, attachment = message.iter_parts()
    assert text.get_content_type() == "text/plain"
    assert attachment.get_content_type() == "application/tlsrpt+gzip"
    assert re.fullmatch(
        r"mail\.example\.test!remote\.test!\d+!\d+\.json\.gz", attachment.get_filename()
    )
    report = json.loads(gzip.decompress(attachment.get_content()))
    assert report["organization-name"] == "mail.example.test"
    assert report["date-range"] == {
        "start-datetime": f"{day}T00:00:00Z",
        "end-datetime": f"{day}T23:59:59Z",
    }
    assert report["contact-info"] == "noreply-smtp-tls-reporting@mail.example.test"
    [entry] = report["policies"]
    assert entry["policy"] == {
        "policy-type": "sts",
        "policy-domain": "remote.test",
        "policy-string": [
            "version: STSv1",
            "mode: enforce",
            "mx: mx.remote.test",
            "max_age: 86400",
        ],
        "mx-host": ["mx.remote.test"],
    }
    assert entry["summary"] == {
        "total-successful-session-count": 1,
        "total-failure-session-count": 1,
    }
    [failure] = entry["failure-details"]
    assert failure["result-type"] == "certificate-host-mismatch"
    assert failure["receiving-mx-hostname"] == "mx.remote.test"
    assert failure["receiving-ip"] == MX_ADDRESS
    assert failure["failed-session-count"] == 1
    assert await world.store.tls_results(day) == []  # sent: forgotten


async def test_no_report_without_a_tlsrpt_record_and_the_daily_job_runs(world):
    yesterday = utc_day(world.clock.now() - 86400)
    counts = [
        TlsResultCount(yesterday, domain, PolicyRef("no-policy-found", domain).key(), "", count)
        for domain, count in (("quiet.test", 3), ("loud.test", 2))
    ]
    await world.store.count_tls_results(counts)
    world.dns.add("_smtp._tls.loud.test", "TXT", f'"v=TLSRPTv1; rua=mailto:{REPORTS}"')
    manager = world.manager()
    async with running(manager) as queue:
        reporter = queue.outbound_tls.reporter
        if reporter.rounds == 0:  # the job's first round runs at start, in the task group
            with anyio.fail_after(20):
                await reporter.round_done.wait()
        await queue.flush()
    [raw] = await world.inbox(REPORTS)
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["TLS-Report-Domain"] == "loud.test"  # quiet.test publishes no rua
    assert await world.store.tls_result_days() == []
