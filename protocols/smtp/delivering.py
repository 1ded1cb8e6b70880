"""The end of a transaction: hand the message to the delivery pipeline (or record it as a
report), then answer.

Every recipient gets a result, and a success only once what it depends on is durable:
``Delivery.deliver`` returns once the local copies are stored and the remote ones queued;
``add_report`` once the report is stored.

SMTP answers the transaction with one reply (RFC 5321 4.1.1.4): all recipients served:
``250``; none: the first failure's reply; some: ``250``, and the failed ones are reported to
the sender in a DSN (RFC 3464) queued with the null sender, when their NOTIFY asks for it
and the sender is not null (RFC 3461 4.1; no bounce of a bounce). LMTP answers once per
accepted recipient, in the order they were accepted (RFC 2033 4.2).

The ``with`` keyword of the trace header is the RFC 3848 / RFC 6531 registry's: SMTP for
HELO, ESMTP for EHLO, LMTP; UTF8SMTP and UTF8LMTP when SMTPUTF8 was used; with ``S`` for
TLS and ``A`` for an authenticated submission (ESMTPSA, LMTPS, UTF8SMTPA, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import anyio

from protocols.smtp.machine import AcceptedRecipient, Transaction
from protocols.smtp.replies import Reply, reply
from protocols.smtp.reports import parse_report, summary_json
from protocols.smtp.settings import SmtpSettings
from stalwart_py.delivery import Envelope, Origin, Recipient, RecipientResult
from stalwart_py.dsn import LOCAL_DIAGNOSTIC, RecipientStatus, build_dsn, should_notify
from stalwart_py.plugin import Connection
from stalwart_py.store import OutboundMessage, QueuedRecipient

INLINE_PARSE_LIMIT = 256 * 1024  # larger reports are parsed in a worker thread


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """What the end of a transaction needs to know about the session."""

    lmtp: bool
    extended: bool  # EHLO/LHLO rather than HELO
    helo: str | None
    authenticated: str | None  # the account's address
    hostname: str
    quarantine: str | None = None  # why the intake checks want it in Junk (intake.py)


def protocol_keyword(facts: SessionFacts, *, tls: bool, smtputf8: bool) -> str:
    if facts.lmtp:
        base = "UTF8LMTP" if smtputf8 else "LMTP"
    elif not facts.extended:
        return "SMTP"
    else:
        base = "UTF8SMTP" if smtputf8 else "ESMTP"
    return base + ("S" if tls else "") + ("A" if facts.authenticated else "")


async def complete(
    conn: Connection, facts: SessionFacts, transaction: Transaction, message: bytes
) -> list[Reply]:
    """Deliver or record ``message`` for every accepted recipient; the replies to send."""
    recipients = transaction.recipients
    results: list[RecipientResult | None] = [None] * len(recipients)
    reports = [i for i, r in enumerate(recipients) if r.report_kind is not None]
    normal = [i for i, r in enumerate(recipients) if r.report_kind is None]
    if reports:
        ok = await _record_reports(conn, transaction, [recipients[i] for i in reports], message)
        for index in reports:
            address = recipients[index].mailbox.address
            results[index] = (
                RecipientResult(address, 250, "2.0.0", "Report received")
                if ok
                else RecipientResult(address, 451, "4.3.0", "Temporary local failure")
            )
    if normal:
        delivered = await _deliver(conn, facts, transaction, normal, message)
        for index, result in zip(normal, delivered, strict=True):
            results[index] = result
    done = [result for result in results if result is not None]
    if facts.lmtp:
        return [reply(r.code, r.enhanced, f"<{r.address}> {r.text}") for r in done]
    failed = [(i, r) for i, r in enumerate(done) if not r.ok]
    if not failed:
        return [reply(250, "2.0.0", f"Message accepted for delivery, id {conn.session_id}")]
    if len(failed) == len(done):
        first = failed[0][1]
        return [reply(first.code, first.enhanced, first.text)]
    transient = [(i, r) for i, r in failed if not r.permanent]
    if transient and await _retry_later(conn, transaction, transient, message):
        failed = [(i, r) for i, r in failed if r.permanent]
    await _bounce(conn, facts, transaction, failed, message)
    return [reply(250, "2.0.0", f"Message accepted for delivery, id {conn.session_id}")]


async def _deliver(
    conn: Connection,
    facts: SessionFacts,
    transaction: Transaction,
    indexes: Sequence[int],
    message: bytes,
) -> list[RecipientResult]:
    accepted = [transaction.recipients[i] for i in indexes]
    params = transaction.params
    envelope = Envelope(
        transaction.mail_from,
        tuple(
            Recipient(r.mailbox.address, r.params.orcpt, r.params.notify, r.resolution)
            for r in accepted
        ),
        ret=params.ret,
        envid=params.envid,
        smtputf8=params.smtputf8,
    )
    origin = Origin(
        protocol_keyword(facts, tls=conn.tls is not None, smtputf8=params.smtputf8),
        conn.session_id,
        helo=facts.helo,
        peer=conn.peer,
        tls=conn.tls,
        authenticated=facts.authenticated,
        source="lmtp" if facts.lmtp else "smtp",
        by=facts.hostname,
        quarantine=facts.quarantine,
    )
    settings = conn.settings
    deferred_spool = isinstance(settings, SmtpSettings) and settings.deferred_spool
    try:
        return await conn.server.delivery.deliver(
            envelope, message, origin, deferred_spool=deferred_spool
        )
    except Exception:
        # The pipeline answers store failures per recipient itself; this is anything else
        # (a directory lookup on a broken database): nothing was acknowledged.
        conn.log.exception("delivery failed")
        return [
            RecipientResult(r.mailbox.address, 451, "4.3.0", "Temporary local failure")
            for r in accepted
        ]


async def _retry_later(
    conn: Connection,
    transaction: Transaction,
    failed: list[tuple[int, RecipientResult]],
    message: bytes,
) -> bool:
    """Queue the recipients that failed for now (a transaction answered 250 cannot ask the
    client to retry them): the queue delivers to local recipients through the same pipeline,
    on its retry schedule. False when even queueing failed."""
    params = transaction.params
    recipients = tuple(
        QueuedRecipient(
            result.address,
            transaction.recipients[index].params.orcpt,
            transaction.recipients[index].params.notify,
        )
        for index, result in failed
    )
    try:
        await conn.server.store.enqueue(
            message,
            OutboundMessage(
                transaction.mail_from,
                recipients,
                params.ret,
                params.envid,
                "smtp",
                params.smtputf8,
            ),
        )
    except Exception:
        conn.log.exception("could not queue %d recipients for a later try", len(recipients))
        return False
    conn.log.info("queued %d recipients that failed for now, for a later try", len(recipients))
    return True


async def _bounce(
    conn: Connection,
    facts: SessionFacts,
    transaction: Transaction,
    failed: list[tuple[int, RecipientResult]],
    message: bytes,
) -> None:
    """Queue a DSN for the failed recipients of a transaction answered with 250."""
    sender = transaction.mail_from
    statuses = []
    for index, result in failed:
        recipient: AcceptedRecipient = transaction.recipients[index]
        if not should_notify(sender, recipient.params.notify, "failed"):
            continue
        statuses.append(
            RecipientStatus(
                result.address,
                "failed",
                result.enhanced if result.permanent else "5" + result.enhanced[1:],
                diagnostic=f"{result.code} {result.enhanced} {result.text}",
                diagnostic_type=LOCAL_DIAGNOSTIC,  # the pipeline's result, never sent as a reply
                original=recipient.params.orcpt,
            )
        )
    if not statuses:
        return
    dsn = build_dsn(
        reporting_mta=facts.hostname,
        sender=sender,
        recipients=statuses,
        original=message,
        envid=transaction.params.envid,
        ret=transaction.params.ret,
    )
    try:
        await conn.server.store.enqueue(
            dsn,
            OutboundMessage(mail_from="", recipients=(QueuedRecipient(sender),), source="bounce"),
        )
    except Exception:
        conn.log.exception("could not queue the DSN for %d failed recipients", len(statuses))
    else:
        conn.log.info("queued a DSN to %s for %d failed recipients", sender, len(statuses))


async def _record_reports(
    conn: Connection,
    transaction: Transaction,
    recipients: list[AcceptedRecipient],
    message: bytes,
) -> bool:
    """Parse the report once and record it for each oob/fbl domain it was sent to."""
    if len(message) > INLINE_PARSE_LIMIT:
        kind, summary = await anyio.to_thread.run_sync(parse_report, message)
    else:
        kind, summary = parse_report(message)
    text = summary_json(summary)
    counter = conn.server.metrics.counter(
        "stalwart_smtp_reports", "Reports received for oob/fbl domains", ["listener", "kind"]
    )
    domains = dict.fromkeys((r.mailbox.domain, r.report_kind) for r in recipients)
    try:
        for domain, domain_kind in domains:
            recorded = kind or domain_kind or "dsn"
            await conn.server.store.add_report(
                recorded, domain, transaction.mail_from, text, message
            )
            counter.labels(conn.listener.id, recorded).inc()
            conn.log.info(
                "%s report for %s from <%s> recorded%s",
                recorded,
                domain,
                transaction.mail_from,
                "" if kind else " (no report part found)",
            )
    except Exception:
        conn.log.exception("recording a report failed")
        return False
    return True
