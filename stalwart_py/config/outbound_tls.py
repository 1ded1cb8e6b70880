"""Settings of outbound TLS policies: ``[queue.mta-sts]``, ``[queue.dane]`` and ``[report.tls]``.

``[queue.mta-sts]`` and ``[queue.dane]`` say whether the queue applies the MTA-STS policies
(RFC 8461) and DANE TLSA records (RFC 7672) of the domains it delivers to; ``[report.tls]``
whether it records the results for TLS-RPT (RFC 8460) and sends the daily reports (see
``stalwart_py/queue/mta_sts.py``, ``dane.py`` and ``tlsrpt.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from stalwart_py.config.types import Duration, Port, Range


@dataclass(frozen=True, slots=True)
class QueueMtaStsSettings:
    """``[queue.mta-sts]``: fetch, cache and apply the MTA-STS policies of destinations."""

    enable: bool = True  # apply destinations' MTA-STS policies
    port: Port = 443  # of mta-sts.<domain>; RFC 8461 3.3 says 443: change it only to test
    timeout: Duration = 30.0  # for fetching one policy (connect, handshake, answer)
    cache_size: Annotated[int, Range(1)] = 10_000  # policies kept (in the store)


@dataclass(frozen=True, slots=True)
class QueueDaneSettings:
    """``[queue.dane]``: verify MX certificates against authenticated TLSA records."""

    enable: bool = True  # apply authenticated TLSA records


@dataclass(frozen=True, slots=True)
class TlsReportSettings:
    """``[report.tls]``: TLS-RPT (RFC 8460) aggregate reports about our outbound TLS."""

    enable: bool = True  # record results and send a report a day to domains asking for one
    # The report's sender; "" means noreply-smtp-tls-reporting@<server.hostname>.
    sender: str = field(default="", metadata={"key": "from"})
    org_name: str = ""  # "organization-name" in the report; "" means server.hostname
    contact_info: str = ""  # "contact-info"; "" means the sender address
    max_domains: Annotated[int, Range(1)] = 10_000  # reports sent a day, at most


@dataclass(frozen=True, slots=True)
class ReportSettings:
    """``[report]``: reports this server sends about its own mail."""

    tls: TlsReportSettings = field(default_factory=TlsReportSettings)
