"""What one delivery attempt means for each recipient: the store update and the DSN.

* 2xx: delivered. A DSN of ``delivered`` (final delivery here) or ``relayed`` (handed to a
  server that does not speak DSN) goes to the sender when NOTIFY asked for SUCCESS; a server
  that speaks DSN got NOTIFY and ORCPT with the message and reports itself (RFC 3461 4.1).
* 5xx: failed at once; a ``failed`` DSN unless NOTIFY says otherwise.
* 4xx, connection errors, timeouts: tried again on the retry schedule, until the message is
  ``queue.max-age`` old; then failed with 4.4.7 (delivery time expired, RFC 3463).

No DSN is ever sent about a message with the null sender (``should_notify``), so a bounce
never bounces. The DSN is queued in the same store transaction as the recipients' new state
(``update_queue_recipients(..., notification=...)``), so a crash cannot lose it or send it
twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from stalwart_py.dsn import SMTP_DIAGNOSTIC, RecipientStatus, build_dsn, should_notify
from stalwart_py.queue.schedule import RetrySchedule
from stalwart_py.store import (
    OutboundMessage,
    QueuedRecipient,
    QueueEntry,
    QueueRecipientState,
    RecipientUpdate,
)

EXPIRED = "4.4.7"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One recipient's result of one attempt."""

    recipient: QueueRecipientState
    code: int  # the SMTP reply code (ours when the failure was not a reply: 451 or 550)
    status: str  # RFC 3463
    text: str  # for the log and ``queue show``
    remote_mta: str | None = None  # the host that answered
    diagnostic: str | None = None  # the server's reply as received, e.g. "550 5.1.1 No such user"
    diagnostic_type: str = SMTP_DIAGNOSTIC  # LOCAL_DIAGNOSTIC when ``diagnostic`` is ours
    dsn_passed_on: bool = False  # the server speaks DSN: it reports success itself

    @property
    def delivered(self) -> bool:
        return 200 <= self.code < 300

    @property
    def permanent(self) -> bool:
        return self.code >= 500


@dataclass(frozen=True, slots=True)
class Settlement:
    updates: list[RecipientUpdate]
    reports: list[RecipientStatus]  # for the DSN to the sender (may be empty)
    delivered: int
    failed: int
    deferred: int


def settle(
    entry: QueueEntry,
    outcomes: Sequence[Outcome],
    now: float,
    schedule: RetrySchedule,
    *,
    final_delivery: bool,
) -> Settlement:
    """The recipients' new state and what to report, for one attempt's outcomes."""
    updates: list[RecipientUpdate] = []
    reports: list[RecipientStatus] = []
    counts = {"delivered": 0, "failed": 0, "deferred": 0}
    for outcome in outcomes:
        recipient = outcome.recipient
        error = None if outcome.delivered else _error_text(outcome)
        if outcome.delivered:
            updates.append(RecipientUpdate(recipient.id, "delivered", now, None))
            counts["delivered"] += 1
            action = "delivered" if final_delivery else "relayed"
            if not outcome.dsn_passed_on and should_notify(
                entry.mail_from, recipient.notify, action
            ):
                reports.append(_report(recipient, outcome, action, "2.0.0", now))
            continue
        expired = not outcome.permanent and schedule.expired(entry.created, now)
        if outcome.permanent or expired:
            updates.append(RecipientUpdate(recipient.id, "failed", now, error))
            counts["failed"] += 1
            if should_notify(entry.mail_from, recipient.notify, "failed"):
                status = outcome.status if outcome.permanent else EXPIRED
                reports.append(_report(recipient, outcome, "failed", status, now))
            continue
        retry_at = schedule.next_attempt(now, recipient.attempts)
        updates.append(RecipientUpdate(recipient.id, "pending", retry_at, error))
        counts["deferred"] += 1
    return Settlement(updates, reports, **counts)


def _report(
    recipient: QueueRecipientState, outcome: Outcome, action: str, status: str, now: float
) -> RecipientStatus:
    return RecipientStatus(
        address=recipient.address,
        action=action,
        status=status,
        diagnostic=outcome.diagnostic,
        diagnostic_type=outcome.diagnostic_type,
        original=recipient.orcpt,
        remote_mta=outcome.remote_mta,
        last_attempt=now,
    )


def _error_text(outcome: Outcome) -> str:
    where = f"{outcome.remote_mta}: " if outcome.remote_mta else ""
    return where + (outcome.diagnostic or f"{outcome.status} {outcome.text}")


def notification(
    entry: QueueEntry, reports: Sequence[RecipientStatus], original: bytes, reporting_mta: str
) -> tuple[bytes, OutboundMessage] | None:
    """The DSN to queue for these reports (RFC 3464), sent with the null sender."""
    if not reports or not entry.mail_from:
        return None
    data = build_dsn(
        reporting_mta=reporting_mta,
        sender=entry.mail_from,
        recipients=reports,
        original=original,
        arrival=entry.created,
        envid=entry.envid,
        ret=entry.ret,
    )
    return data, OutboundMessage("", (QueuedRecipient(entry.mail_from),), source="bounce")
