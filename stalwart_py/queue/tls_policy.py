"""Which TLS a delivery to a domain's MX hosts must have: DANE, MTA-STS, or neither.

For each MX delivery (not for routes and the smarthost, which the administrator configured)
the queue asks ``OutboundTLS.domain(name)`` once per connection attempt, then ``plan(host)``
for each MX host, in order:

1. DANE (RFC 7672), when ``queue.dane.enable``, the MX answer was authenticated and the
   TLSA answer for ``_25._tcp.<host>`` is too: TLS is required and the certificate must
   match a usable TLSA record (``dane.py``); a TLSA lookup that fails (not an authenticated
   "no records") makes the host unusable (2.2: it may be an attack). DANE takes precedence.
2. MTA-STS (RFC 8461), when the domain has a policy (``mta_sts.py``). ``enforce``: a host not
   matching the policy's ``mx`` patterns is not used, and the others only over TLS with a
   certificate verified (PKIX) for the host's name; every failure says "MTA-STS" so that the
   DSN sent when the message expires names it. ``testing``: the same checks, but a failure is
   only counted (TLS-RPT) and logged, and the mail goes as it would without a policy.
3. Neither: what ``queue.tls.require`` or opportunistic TLS gives (``routes.py``).

Each outcome is counted for TLS-RPT (``tlsrpt.py``) and in
``stalwart_queue_tls_sessions{policy,result}``; each refusal is logged at warning level.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stalwart_py.config.outbound_tls import TlsReportSettings
from stalwart_py.config.schema import QueueSettings
from stalwart_py.metrics import Metrics
from stalwart_py.queue import dane
from stalwart_py.queue.mta_sts import StsLookup, StsPolicies, StsPolicy
from stalwart_py.queue.routes import Host, RouteFailed
from stalwart_py.queue.schedule import Clock
from stalwart_py.queue.tlsrpt import PolicyRef, TlsReporter
from stalwart_py.resolver import DnsError, DnsTemporaryError, Resolver, Tlsa
from stalwart_py.store import Store

# The SMTP client comes with the first delivery (see queue/manager.py), not at start.
if TYPE_CHECKING:
    from stalwart_py.queue.session import SessionFailed, SmtpSession, Target

log = logging.getLogger("stalwart_py.queue.tls")


@dataclass(frozen=True, slots=True)
class HostPlan:
    """How to use one MX host: the TLS it must have, or why it must not be used."""

    domain: str
    host: Host
    policy: PolicyRef
    dane: tuple[Tlsa, ...] = ()
    pkix: bool = True
    testing: bool = False  # MTA-STS testing: a failure is reported, the mail goes anyway
    enforced: bool = False  # MTA-STS enforce applies to this host
    refusal: RouteFailed | None = None
    refusal_result: str = ""
    reported: bool = False  # a failure of this host was counted already

    def target(self, address: str) -> Target:
        from stalwart_py.queue.session import Target

        host = self.host
        return Target(
            host.name, address, host.port, host.tls, host.user, host.password, self.dane, self.pkix
        )


class OutboundTLS:
    """DANE and MTA-STS for the queue, and their TLS-RPT counts (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        resolver: Resolver,
        settings: QueueSettings,
        report: TlsReportSettings,
        hostname: Callable[[], str],
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self.resolver = resolver
        self.settings = settings
        self.policies = StsPolicies(
            store,
            resolver,
            settings.mta_sts,
            settings.tls.ca_file,
            clock,
            metrics,
        )
        self.reporter = TlsReporter(
            store,
            resolver,
            report,
            hostname,
            clock,
            metrics,
        )

    def configure(
        self, settings: QueueSettings, report: TlsReportSettings | None, resolver: Resolver
    ) -> None:
        self.settings = settings
        self.resolver = self.policies.resolver = self.reporter.resolver = resolver
        self.policies.configure(settings.mta_sts, settings.tls.ca_file)
        if report is not None:
            self.reporter.settings = report

    async def domain(self, domain: str) -> DomainPolicy:
        """What applies to mail for ``domain`` now (its MTA-STS policy fetched if need be)."""
        sts = await self.policies.lookup(domain)
        if sts.failure is not None:
            await self.reporter.failure(
                domain,
                PolicyRef("sts", domain),
                sts.failure.result_type,
                detail=str(sts.failure),
            )
        secure = False
        if self.settings.dane.enable:
            try:
                secure = await self.resolver.mx_authenticated(domain)
            except DnsError:
                secure = False
        return DomainPolicy(self, domain, sts, secure)


@dataclass
class DomainPolicy:
    owner: OutboundTLS
    domain: str
    sts: StsLookup
    mx_secure: bool

    async def plan(self, host: Host) -> HostPlan:
        if self.mx_secure:
            plan = await self._dane(host)
            if plan is not None:
                return plan
        policy = self.sts.policy
        if policy is None or policy.mode == "none":
            return HostPlan(self.domain, host, PolicyRef("no-policy-found", self.domain))
        return self._sts(host, policy)

    async def _dane(self, host: Host) -> HostPlan | None:
        name = f"_25._tcp.{host.name}"
        ref = PolicyRef("tlsa", self.domain)
        try:
            records, authenticated = await self.owner.resolver.tlsa(name)
        except DnsTemporaryError as exc:
            # RFC 7672 2.2: a secure MX whose TLSA lookup fails is not used.
            return HostPlan(
                self.domain,
                host,
                ref,
                refusal=RouteFailed("4.7.5", f"DANE: TLSA lookup of {name} failed: {exc}"),
                refusal_result="dnssec-invalid",
            )
        except DnsError:
            return None  # NXDOMAIN: no TLSA records
        if not authenticated or not records:
            return None
        chosen = dane.usable(records)
        ref = PolicyRef(
            "tlsa",
            self.domain,
            tuple(f"{r.usage} {r.selector} {r.matching} {r.data.hex()}" for r in records),
        )
        required = "implicit" if host.tls == "implicit" else "starttls"
        return HostPlan(
            self.domain, dataclasses.replace(host, tls=required), ref, tuple(chosen), pkix=False
        )

    def _sts(self, host: Host, policy: StsPolicy) -> HostPlan:
        ref = PolicyRef("sts", self.domain, tuple(policy.lines()), policy.mx)
        testing = policy.mode == "testing"
        if not policy.allows(host.name):
            text = (
                f"MTA-STS policy of {self.domain} ({policy.mode}) does not list {host.name}"
                f" as an MX host ({', '.join(policy.mx)})"
            )
            if testing:
                return HostPlan(
                    self.domain, host, ref, testing=True, refusal_result="validation-failure",
                    refusal=RouteFailed("4.7.5", text),
                )  # fmt: skip
            return HostPlan(
                self.domain, host, ref, enforced=True,
                refusal=RouteFailed("4.7.5", text), refusal_result="validation-failure",
            )  # fmt: skip
        required = "implicit" if host.tls == "implicit" else "starttls"
        verified = dataclasses.replace(host, tls=required)
        return HostPlan(self.domain, verified, ref, testing=testing, enforced=not testing)

    # -- outcomes ---------------------------------------------------------------------------

    async def refused(self, plan: HostPlan) -> RouteFailed | None:
        """Count and log a host the policy rules out; the failure when it may not be used
        (None in MTA-STS testing mode: it is used anyway)."""
        assert plan.refusal is not None
        await self.owner.reporter.failure(
            self.domain, plan.policy, plan.refusal_result, mx_host=plan.host.name,
            detail=str(plan.refusal),
        )  # fmt: skip
        if plan.testing:
            log.warning("%s (testing mode: delivering anyway)", plan.refusal)
            return None
        log.warning("not delivering to %s: %s", plan.host.name, plan.refusal)
        return plan.refusal

    async def succeeded(self, plan: HostPlan, session: SmtpSession) -> None:
        if plan.reported:
            return
        if plan.dane or not plan.pkix or plan.enforced or plan.testing or session.encrypted:
            await self.owner.reporter.success(self.domain, plan.policy)
        if session.dane_match is not None:
            log.info("%s: DANE verified (TLSA %s)", plan.host.name, session.dane_match)

    async def failed(self, plan: HostPlan, target: Target, failure: SessionFailed) -> SessionFailed:
        """Count a TLS failure; the failure to report (naming MTA-STS when it enforced)."""
        if failure.tls_result is None:
            return failure
        await self.owner.reporter.failure(
            self.domain, plan.policy, failure.tls_result, mx_host=plan.host.name,
            receiving_ip=target.address, detail=str(failure),
        )  # fmt: skip
        if plan.enforced:
            text = f"MTA-STS policy of {self.domain} (enforce): {failure}"
            log.warning("not delivering to %s: %s", plan.host.name, text)
            from stalwart_py.queue.session import SessionFailed

            return SessionFailed(failure.status, text, failure.reply, failure.tls_result)
        if plan.dane or not plan.pkix:
            log.warning("not delivering to %s: %s", plan.host.name, failure)
        elif plan.testing:
            log.warning(
                "MTA-STS policy of %s (testing) not met by %s: %s", self.domain, plan.host.name,
                failure,
            )  # fmt: skip
        return failure


def without_policy(plan: HostPlan, original: Host) -> HostPlan:
    """MTA-STS testing mode after a failure: the host as if there were no policy."""
    return dataclasses.replace(plan, host=original, testing=False, enforced=False, reported=True)
