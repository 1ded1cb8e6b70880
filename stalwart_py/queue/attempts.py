"""One delivery attempt: a message's recipients at one destination -> one outcome each.

Remote destinations get an SMTP session (``session.py``), opened by trying each host of the
route in order, each of its addresses in turn (RFC 5321 5.1: on a connection failure, a
greeting that refuses, or TLS that a policy requires and cannot be had, the next one). Local
destinations (a bounce for a local sender, a redirect to a local address) go through the
server's own delivery pipeline, so Sieve and quotas apply as to any other message.
"""

from __future__ import annotations

import functools
import logging
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from stalwart_py.delivery import Delivery, Envelope, Origin, Recipient
from stalwart_py.dsn import LOCAL_DIAGNOSTIC, SMTP_DIAGNOSTIC
from stalwart_py.queue.outcomes import Outcome
from stalwart_py.queue.routes import Destination, RouteFailed, Router
from stalwart_py.queue.session import (
    Rcpt,
    SessionFailed,
    SmtpSession,
    Target,
    Timeouts,
    Transaction,
)
from stalwart_py.queue.spool import SpooledMessage
from stalwart_py.queue.tls_policy import OutboundTLS, without_policy
from stalwart_py.store import QueueEntry, QueueRecipientState

log = logging.getLogger("stalwart_py.queue")


@dataclass(frozen=True, slots=True)
class Job:
    """The recipients of one queued message that go to one destination."""

    entry: QueueEntry
    recipients: tuple[QueueRecipientState, ...]
    destination: Destination
    memory: SpooledMessage | None = None  # held by the deferred spool, not in the store

    @property
    def label(self) -> str:
        return f"queue {self.entry.id}" if self.memory is None else f"memory {-self.entry.id}"


def failure_outcomes(
    recipients: Sequence[QueueRecipientState],
    failure: RouteFailed | SessionFailed,
    host: str | None,
) -> list[Outcome]:
    """Every recipient fails alike when the destination could not be reached."""
    permanent = failure.permanent
    reply = failure.reply if isinstance(failure, SessionFailed) else None
    return [
        Outcome(
            recipient,
            # The status decides: a refused AUTH (535) at a smarthost is ours to fix; it waits.
            reply.code
            if reply is not None and str(reply.code)[0] == failure.status[0]
            else (550 if permanent else 451),
            failure.status,
            str(failure),
            remote_mta=host,
            # No reply (no connection, a timeout, a failed handshake): our own account of it.
            diagnostic=str(reply) if reply is not None else f"{failure.status} {failure}",
            diagnostic_type=SMTP_DIAGNOSTIC if reply is not None else LOCAL_DIAGNOSTIC,
        )
        for recipient in recipients
    ]


class TLSContexts:
    """Client contexts: verifying (against ``ca_file``, else the system's roots) or not."""

    def __init__(self, ca_file: Path | None) -> None:
        self.ca_file = ca_file

    # Made on the first delivery that wants one, not at start: loading the system's roots
    # took a quarter of a start's CPU (bench/startup.py), for contexts a start never uses.
    @functools.cached_property
    def verifying(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)

    @functools.cached_property
    def unverified(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # RFC 7435: encryption without checks
        return context

    def __call__(self, verify: bool) -> ssl.SSLContext:
        return self.verifying if verify else self.unverified


class Connector:
    def __init__(
        self,
        router: Router,
        timeouts: Timeouts,
        tls: TLSContexts,
        helo: Callable[[], str],
        policies: OutboundTLS | None = None,
    ) -> None:
        self.router = router
        self.timeouts = timeouts
        self.tls = tls
        self.helo = helo
        self.policies = policies  # DANE and MTA-STS of MX destinations (tls_policy.py)

    async def open(self, destination: Destination) -> SmtpSession:
        """A session with the first host of ``destination`` that works; raises RouteFailed or
        SessionFailed (the last host's failure; permanent only when every host refused)."""
        hosts = await self.router.hosts(destination)
        policy = None
        if destination.kind == "mx" and self.policies is not None:
            policy = await self.policies.domain(destination.name)
        failures: list[RouteFailed | SessionFailed] = []
        for host in hosts:
            plan = await policy.plan(host) if policy is not None else None
            if plan is not None and plan.refusal is not None:
                refusal = await policy.refused(plan)  # type: ignore[union-attr]
                if refusal is not None:
                    failures.append(refusal)
                    continue
                plan = without_policy(plan, host)
            try:
                addresses = await self.router.addresses(host.name)
            except RouteFailed as failure:
                failures.append(failure)
                continue
            if not addresses:
                failures.append(RouteFailed("4.4.4", f"{host.name} has no address"))
                continue
            for address in addresses:
                if plan is None:
                    target = Target(
                        host.name, address, host.port, host.tls, host.user, host.password
                    )
                else:
                    target = plan.target(address)
                try:
                    session = await SmtpSession.open(target, self.helo(), self.timeouts, self.tls)
                except SessionFailed as failure:
                    if plan is not None and policy is not None:
                        failure = await policy.failed(plan, target, failure)
                        if plan.testing and failure.tls_result is not None:
                            # MTA-STS testing: reported; now as if there were no policy.
                            plan = without_policy(plan, host)
                            try:
                                session = await SmtpSession.open(
                                    plan.target(address), self.helo(), self.timeouts, self.tls
                                )
                            except SessionFailed as again:
                                failure = again
                            else:
                                return session
                    log.info("delivery to %s: %s", destination, failure.diagnostic())
                    failures.append(failure)
                    if failure.reply is not None:
                        break  # the host answered: its other addresses would say the same
                    continue
                if plan is not None and policy is not None:
                    await policy.succeeded(plan, session)
                return session
        if not failures:
            raise RouteFailed("4.4.4", f"no host to deliver {destination} to")
        last = failures[-1]
        if all(f.permanent for f in failures):
            raise last
        if last.permanent:  # some host failed transiently: the mail waits for it
            raise SessionFailed("4.4.1", str(last))
        raise last


async def deliver_remote(session: SmtpSession, job: Job, data: bytes) -> list[Outcome]:
    """One transaction on ``session``; raises SessionFailed when the connection fails."""
    entry = job.entry
    transaction = Transaction(
        entry.mail_from,
        tuple(Rcpt(r.address, r.notify, r.orcpt) for r in job.recipients),
        data,
        ret=entry.ret,
        envid=entry.envid,
        smtputf8=entry.smtputf8,
    )
    replies = await session.send(transaction)
    host = session.target.host
    passed_on = session.capabilities.dsn
    return [
        Outcome(
            recipient,
            reply.code,
            reply.status(),
            reply.text,
            remote_mta=host,
            diagnostic=str(reply),
            diagnostic_type=LOCAL_DIAGNOSTIC if reply.local else SMTP_DIAGNOSTIC,
            dsn_passed_on=passed_on,
        )
        for recipient, reply in zip(job.recipients, replies, strict=True)
    ]


async def deliver_local(delivery: Delivery, job: Job, data: bytes) -> list[Outcome]:
    """Through the delivery pipeline (mailboxes, Sieve; an alias to a remote address is
    queued anew)."""
    entry = job.entry
    envelope = Envelope(
        entry.mail_from,
        tuple(Recipient(r.address, r.orcpt, r.notify) for r in job.recipients),
        ret=entry.ret,
        envid=entry.envid,
        smtputf8=entry.smtputf8,
    )
    origin = Origin("LOCAL", job.label.replace(" ", "-"), source="queue")
    results = await delivery.deliver(envelope, data, origin)
    return [
        Outcome(
            recipient,
            result.code,
            result.enhanced,
            result.text,
            # The pipeline's result for the recipient (a full mailbox, a Sieve reject).
            diagnostic=f"{result.code} {result.enhanced} {result.text}",
            diagnostic_type=LOCAL_DIAGNOSTIC,
        )
        for recipient, result in zip(job.recipients, results, strict=True)
    ]
