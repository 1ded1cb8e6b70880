"""TLS-RPT (RFC 8460): what our outbound TLS met at each destination, reported to it daily.

Counting (4). Every outbound connection to a domain's MX hosts counts once for that domain,
under the policy that applied (``sts`` for MTA-STS, ``tlsa`` for DANE, ``no-policy-found``)
as a success (TLS was negotiated as the policy asked) or a failure with its result type
(4.3): ``starttls-not-supported``, ``certificate-host-mismatch``, ``certificate-expired``,
``certificate-not-trusted``, ``validation-failure`` (an MX host the MTA-STS policy does not
list is counted here too), ``tlsa-invalid`` (no TLSA record matched), ``dnssec-invalid``,
``sts-policy-fetch-error``, ``sts-policy-invalid``, ``sts-webpki-invalid``. Counts go to the
store per UTC day (``tls_results``), so nothing grows per message.

Reporting (3, 4.4, 5.3). Once a day, shortly after midnight UTC, for each domain counted the
day before the reporter looks up ``_smtp._tls.<domain>`` TXT (``v=TLSRPTv1; rua=...``) and
sends the day's report as JSON, gzipped, to every ``mailto:`` address in ``rua`` (``https:``
addresses are not supported and are skipped with a log line), as a ``multipart/report;
report-type="tlsrpt"`` message with the ``TLS-Report-Domain`` and ``TLS-Report-Submitter``
fields, through the queue (so it is DKIM-signed when ``[dkim]`` covers the sender's domain).
A domain without a TLS-RPT record gets nothing. The day's counts are then deleted; counts no
report could be made of are dropped after a week.

``[report.tls]``: ``enable``, ``from`` (default ``noreply-smtp-tls-reporting@<hostname>``),
``org-name``, ``contact-info``, ``max-domains``.
"""

from __future__ import annotations

import base64
import datetime
import gzip
import json
import logging
import secrets
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import format_datetime

import anyio
from anyio.abc import TaskStatus

from stalwart_py.config.outbound_tls import TlsReportSettings
from stalwart_py.metrics import Metrics
from stalwart_py.queue.schedule import Clock
from stalwart_py.resolver import DnsError, Resolver
from stalwart_py.store import OutboundMessage, QueuedRecipient, Store
from stalwart_py.store.model import TlsResultCount
from stalwart_py.store.sqlite_tls import MAX_DAYS

log = logging.getLogger("stalwart_py.queue.tlsrpt")

SEND_DELAY = 300.0  # after midnight UTC, so that the day's last sessions are counted


@dataclass(frozen=True, slots=True)
class PolicyRef:
    """The policy a session was held to, as the report names it (RFC 8460 4.4 "policy")."""

    policy_type: str  # "sts", "tlsa", "no-policy-found"
    policy_domain: str
    policy_string: tuple[str, ...] = ()  # the MTA-STS policy's lines, or the TLSA records
    mx_host: tuple[str, ...] = ()  # the MTA-STS policy's mx patterns

    def key(self) -> str:
        value: dict[str, object] = {
            "policy-type": self.policy_type,
            "policy-domain": self.policy_domain,
        }
        if self.policy_string:
            value["policy-string"] = list(self.policy_string)
        if self.mx_host:
            value["mx-host"] = list(self.mx_host)
        return json.dumps(value, sort_keys=True)


def utc_day(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d")


def parse_rua(records: list[str]) -> list[str]:
    """The mailto: addresses of a ``_smtp._tls`` TXT record (RFC 8460 3): exactly one
    record starting ``v=TLSRPTv1``; ``rua`` a comma-separated list of URIs."""
    found = [r for r in records if r.startswith("v=TLSRPTv1")]
    if len(found) != 1:
        return []
    addresses = []
    for field in found[0].split(";")[1:]:
        key, _, value = field.strip().partition("=")
        if key.strip() != "rua":
            continue
        for uri in value.split(","):
            uri = uri.strip()
            if uri.lower().startswith("mailto:"):
                address = urllib.parse.unquote(uri[7:].split("?")[0])
                if "@" in address:
                    addresses.append(address)
            elif uri:
                log.info("TLS-RPT: skipping report address %s (only mailto: is sent to)", uri)
    return addresses


class TlsReporter:
    """Counts TLS results and sends the daily reports (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        resolver: Resolver,
        settings: TlsReportSettings,
        hostname: Callable[[], str],
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self.store = store
        self.resolver = resolver
        self.settings = settings
        self.hostname = hostname
        self.clock = clock
        self.rounds = 0  # rounds of sending done by ``run`` (for tests and the curious)
        self.round_done = anyio.Event()  # set after each round; replaced for the next
        self._sessions = metrics.counter(
            "stalwart_queue_tls_sessions",
            "Outbound TLS sessions counted for TLS-RPT (RFC 8460), by policy type and result",
            ["policy", "result"],
        )
        self._reports = metrics.counter(
            "stalwart_queue_tls_reports", "TLS-RPT reports sent (queued), by result", ["result"]
        )

    # -- counting --------------------------------------------------------------------------

    async def success(self, domain: str, policy: PolicyRef) -> None:
        await self._count(domain, policy, "")

    async def failure(
        self,
        domain: str,
        policy: PolicyRef,
        result_type: str,
        *,
        mx_host: str = "",
        receiving_ip: str = "",
        detail: str = "",
    ) -> None:
        failure: dict[str, str] = {"result-type": result_type}
        if mx_host:
            failure["receiving-mx-hostname"] = mx_host
        if receiving_ip:
            failure["receiving-ip"] = receiving_ip
        if detail:
            failure["additional-information"] = detail[:200]
        await self._count(domain, policy, json.dumps(failure, sort_keys=True))

    async def _count(self, domain: str, policy: PolicyRef, failure: str) -> None:
        result = json.loads(failure)["result-type"] if failure else "success"
        self._sessions.labels(policy.policy_type, result).inc()
        if not self.settings.enable:
            return
        count = TlsResultCount(utc_day(self.clock.now()), domain.lower(), policy.key(), failure, 1)
        try:
            await self.store.count_tls_results([count])
        except Exception:  # a count lost is better than a delivery stopped
            log.exception("TLS-RPT: cannot count a result for %s", domain)

    # -- reporting -------------------------------------------------------------------------

    @property
    def sender(self) -> str:
        return self.settings.sender or f"noreply-smtp-tls-reporting@{self.hostname()}"

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Send the reports of every finished day, then again each day after midnight UTC
        (the queue's task group runs this; cancelled with it)."""
        task_status.started()
        while True:
            if self.settings.enable:
                try:
                    await self.send_due()
                except Exception:
                    log.exception("TLS-RPT: sending the daily reports failed")
            self.rounds += 1
            self.round_done.set()
            self.round_done = anyio.Event()
            now = self.clock.now()
            midnight = (now // 86400 + 1) * 86400
            await anyio.sleep(midnight - now + SEND_DELAY)

    async def send_due(self) -> int:
        """Reports for every day before today that has counts; old counts dropped."""
        today = utc_day(self.clock.now())
        sent = 0
        for day in await self.store.tls_result_days():
            if day < today:
                sent += await self.send_reports(day)
        week_ago = utc_day(self.clock.now() - MAX_DAYS * 86400)
        await self.store.delete_tls_results(week_ago)
        return sent

    async def send_reports(self, day: str) -> int:
        """Queue the report of ``day`` for each domain with a TLS-RPT record; how many."""
        rows = await self.store.tls_results(day)
        by_domain: dict[str, list[TlsResultCount]] = {}
        for row in rows:
            by_domain.setdefault(row.domain, []).append(row)
        sent = 0
        for domain, counts in list(by_domain.items())[: self.settings.max_domains]:
            try:
                addresses = parse_rua(await self.resolver.txt(f"_smtp._tls.{domain}"))
            except DnsError:
                addresses = []
            if addresses:
                report = self.report(day, domain, counts)
                message = self.message(domain, report, day)
                recipients = tuple(QueuedRecipient(a) for a in addresses)
                await self.store.enqueue(
                    message, OutboundMessage(self.sender, recipients, source="tlsrpt")
                )
                self._reports.labels("sent").inc()
                log.info("TLS-RPT: report of %s for %s sent to %s", day, domain, addresses)
                sent += 1
            await self.store.delete_tls_results(day, domain)
        return sent

    def report(self, day: str, domain: str, counts: list[TlsResultCount]) -> dict:
        """The JSON report (RFC 8460 4.4) of one day for one domain."""
        policies: dict[str, dict] = {}
        for count in counts:
            entry = policies.setdefault(
                count.policy,
                {
                    "policy": json.loads(count.policy),
                    "summary": {
                        "total-successful-session-count": 0,
                        "total-failure-session-count": 0,
                    },
                },
            )
            if not count.failure:
                entry["summary"]["total-successful-session-count"] += count.count
                continue
            entry["summary"]["total-failure-session-count"] += count.count
            detail = json.loads(count.failure)
            detail["failed-session-count"] = count.count
            entry.setdefault("failure-details", []).append(detail)
        begin = f"{day}T00:00:00Z"
        end = f"{day}T23:59:59Z"
        return {
            "organization-name": self.settings.org_name or self.hostname(),
            "date-range": {"start-datetime": begin, "end-datetime": end},
            "contact-info": self.settings.contact_info or self.sender,
            "report-id": f"{day}.{domain}.{secrets.token_hex(6)}@{self.hostname()}",
            "policies": list(policies.values()),
        }

    def message(self, domain: str, report: dict, day: str) -> bytes:
        """The report as mail (RFC 8460 5.3): multipart/report; report-type="tlsrpt", a
        human-readable part and the gzipped JSON (application/tlsrpt+gzip)."""
        submitter = self.hostname()
        start = int(datetime.datetime.fromisoformat(f"{day}T00:00:00+00:00").timestamp())
        filename = f"{submitter}!{domain}!{start}!{start + 86399}.json.gz"  # 5.1
        payload = base64.encodebytes(gzip.compress(json.dumps(report, indent=1).encode()))
        boundary = f"tlsrpt-{secrets.token_hex(12)}"
        report_id = report["report-id"]
        summary = [
            f"{p['policy']['policy-type']}: {p['summary']['total-successful-session-count']}"
            f" successful, {p['summary']['total-failure-session-count']} failed"
            for p in report["policies"]
        ]
        text = (
            f"This is an aggregate TLS report (RFC 8460) from {submitter} about mail sent to"
            f" {domain} on {day} (UTC).\r\n\r\n" + "\r\n".join(summary) + "\r\n"
        )
        headers = [
            f"From: {self.sender}",
            f"Date: {format_datetime(datetime.datetime.now(datetime.UTC))}",
            f"Subject: Report Domain: {domain} Submitter: {submitter} Report-ID: <{report_id}>",
            f"Message-ID: <{secrets.token_hex(10)}.{int(time.time())}@{submitter}>",
            f"TLS-Report-Domain: {domain}",
            f"TLS-Report-Submitter: {submitter}",
            "MIME-Version: 1.0",
            f'Content-Type: multipart/report; report-type="tlsrpt";\r\n boundary="{boundary}"',
        ]
        parts = [
            "\r\n".join(headers),
            "",
            "This is a MIME-formatted message.",
            f"--{boundary}",
            'Content-Type: text/plain; charset="utf-8"',
            "Content-Transfer-Encoding: 7bit",
            "",
            text,
            f"--{boundary}",
            "Content-Type: application/tlsrpt+gzip",
            "Content-Transfer-Encoding: base64",
            f'Content-Disposition: attachment;\r\n filename="{filename}"',
            "",
            payload.decode().replace("\n", "\r\n"),
            f"--{boundary}--",
            "",
        ]
        return "\r\n".join(parts).encode()
