"""MTA-STS (RFC 8461) for outbound delivery: a destination's policy, fetched, cached, matched.

A domain that wants mail delivered to it only over verified TLS publishes two things:

* a TXT record at ``_mta-sts.<domain>``: ``v=STSv1; id=20240101T000000;`` (3.1). The id
  changes whenever the policy does, so a sender need not fetch the policy for every message;
* the policy itself, at ``https://mta-sts.<domain>/.well-known/mta-sts.txt`` (3.2)::

      version: STSv1
      mode: enforce          # or testing, or none
      mx: mail.example.com
      mx: *.example.net      # a wildcard stands for exactly one label
      max_age: 604800        # seconds a sender may cache it (at most 31557600)

Fetching (3.3): HTTPS with a certificate valid for ``mta-sts.<domain>`` (PKIX, the trust
anchors of ``queue.tls.ca-file`` or the system's), no redirects followed, a 200 answer of
type text/plain, at most 64 KB, within ``queue.mta-sts.timeout``; no HTTP caching.

Caching (5.1, 10.2): a policy is kept in the store until its max_age runs out, so a restart
keeps it (an attacker who strips the TXT record cannot then downgrade us). On each delivery
the TXT record is looked up: the same id uses the cached policy (and refreshes it in the
background once it is a day old); a new id fetches the policy again; no TXT record keeps using
a cached policy that has not expired. When a fetch fails, an unexpired cached policy is still
used; without one the domain is treated as having no policy (3.3), and the failure is
counted for TLS-RPT (``sts-policy-fetch-error`` / ``sts-policy-invalid``).

Applying it (4, 5) is ``tls_policy.py``'s job: in ``enforce`` mode only MX hosts matching an
``mx`` pattern are used, and only over TLS with a certificate verified for the MX name.
"""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import anyio

from stalwart_py.config.outbound_tls import QueueMtaStsSettings
from stalwart_py.metrics import Metrics
from stalwart_py.queue.schedule import Clock
from stalwart_py.resolver import DnsError, DnsTemporaryError, Resolver
from stalwart_py.store import Store
from stalwart_py.store.model import CachedStsPolicy

# h11 is imported by the first policy fetch (_exchange), not by every start.
if TYPE_CHECKING:
    import h11

log = logging.getLogger("stalwart_py.queue.mta_sts")

MAX_POLICY_SIZE = 64 * 1024  # RFC 8461 3.3: senders may limit the size; 64 KB is plenty
MAX_AGE_LIMIT = 31_557_600  # RFC 8461 3.2: max_age is at most this (about a year)
REFRESH_AFTER = 86400.0  # a cached policy this old is fetched again in the background
POLICY_PATH = "/.well-known/mta-sts.txt"
_ID = re.compile(r"[A-Za-z0-9]{1,32}")

Mode = Literal["enforce", "testing", "none"]


class PolicyError(Exception):
    """A policy could not be had; ``result_type`` is its TLS-RPT name (RFC 8460 4.3.2)."""

    def __init__(self, result_type: str, text: str) -> None:
        super().__init__(text)
        self.result_type = result_type


@dataclass(frozen=True, slots=True)
class StsPolicy:
    """A parsed policy (RFC 8461 3.2)."""

    domain: str
    policy_id: str
    mode: Mode
    mx: tuple[str, ...]
    max_age: int
    text: str

    def allows(self, host: str) -> bool:
        """Whether ``host`` matches one of the ``mx`` patterns (4.1)."""
        return any(mx_matches(pattern, host) for pattern in self.mx)

    def lines(self) -> list[str]:
        """The policy's lines, as TLS-RPT's "policy-string" gives them (RFC 8460 4.4)."""
        return [line.strip() for line in self.text.splitlines() if line.strip()]


def mx_matches(pattern: str, host: str) -> bool:
    """RFC 8461 4.1: ``mx.example.com`` matches itself; ``*.example.com`` matches a name with
    exactly one more label on the left (``mx1.example.com``, not ``a.b.example.com`` nor
    ``example.com``). Case is ignored, and a final dot."""
    pattern = pattern.lower().rstrip(".")
    host = host.lower().rstrip(".")
    if pattern.startswith("*."):
        first, dot, rest = host.partition(".")
        return bool(first and dot) and rest == pattern[2:]
    return pattern == host


def parse_txt(records: list[str]) -> str | None:
    """The policy id of the ``_mta-sts`` TXT records, or None (3.1: none, or more than one
    record starting ``v=STSv1``, means no policy; so does a record without a valid id)."""
    found = [r for r in records if re.match(r"v=STSv1\s*(;|$)", r)]
    if len(found) != 1:
        return None
    for field in found[0].split(";")[1:]:
        key, _, value = field.strip().partition("=")
        if key == "id" and _ID.fullmatch(value.strip()):
            return value.strip()
    return None


def parse_policy(text: str, domain: str, policy_id: str) -> StsPolicy:
    """RFC 8461 3.2; raises PolicyError (``sts-policy-invalid``). Unknown keys are ignored
    (extensions); a later ``mode``/``max_age`` line does not override the first."""
    fields: dict[str, str] = {}
    mx: list[str] = []
    for line in re.split(r"\r?\n", text):
        if not line.strip():
            continue
        key, colon, value = line.partition(":")
        if not colon:
            raise PolicyError("sts-policy-invalid", f"policy line without a colon: {line[:80]!r}")
        key, value = key.strip(), value.strip()
        if key == "mx":
            mx.append(value.lower())
        else:
            fields.setdefault(key, value)
    if fields.get("version") != "STSv1":
        raise PolicyError("sts-policy-invalid", "policy version is not STSv1")
    mode = fields.get("mode")
    if mode not in ("enforce", "testing", "none"):
        raise PolicyError("sts-policy-invalid", f"policy mode {mode!r} is not one of the three")
    age = fields.get("max_age", "")
    if not age.isdigit() or len(age) > 10 or int(age) > MAX_AGE_LIMIT:
        raise PolicyError("sts-policy-invalid", f"policy max_age {age!r} is not 0..31557600")
    if mode != "none" and not mx:
        raise PolicyError("sts-policy-invalid", f"policy mode {mode} without any mx")
    return StsPolicy(domain, policy_id, mode, tuple(mx), int(age), text)  # type: ignore[arg-type]


def policy_context(ca_file: Path | None) -> ssl.SSLContext:
    """PKIX verification for the policy host (RFC 8461 3.3)."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context.set_alpn_protocols(["http/1.1"])
    return context


async def fetch_policy(
    domain: str, resolver: Resolver, *, port: int, timeout: float, context: ssl.SSLContext
) -> str:
    """GET https://mta-sts.<domain>/.well-known/mta-sts.txt (RFC 8461 3.3); the body.
    Raises PolicyError (``sts-policy-fetch-error``, or ``sts-webpki-invalid`` for a
    certificate that does not verify)."""
    host = f"mta-sts.{domain}"
    try:
        with anyio.fail_after(timeout):
            addresses = await _addresses(resolver, host)
            return await _get(host, addresses, port, context)
    except TimeoutError:
        raise PolicyError("sts-policy-fetch-error", f"{host}: no policy in {timeout:g}s") from None


async def _addresses(resolver: Resolver, host: str) -> list[str]:
    found: list[str] = []
    for lookup in (resolver.a, resolver.aaaa):
        try:
            found += await lookup(host)
        except DnsError:
            continue
    if not found:
        raise PolicyError("sts-policy-fetch-error", f"{host} has no address")
    return found


async def _get(host: str, addresses: list[str], port: int, context: ssl.SSLContext) -> str:
    last: Exception | None = None
    for address in addresses:
        try:
            stream = await anyio.connect_tcp(
                address, port, ssl_context=context, tls_hostname=host, tls_standard_compatible=False
            )
        except ssl.SSLCertVerificationError as exc:
            raise PolicyError(
                "sts-webpki-invalid", f"{host}: certificate: {exc.verify_message}"
            ) from None
        except (OSError, ssl.SSLError, anyio.BrokenResourceError) as exc:
            last = exc
            continue
        async with stream:
            return await _exchange(stream, host)
    raise PolicyError("sts-policy-fetch-error", f"{host}: cannot connect: {last}")


async def _exchange(stream: anyio.abc.ByteStream, host: str) -> str:
    import h11

    connection = h11.Connection(h11.CLIENT, max_incomplete_event_size=16 * 1024)
    request = h11.Request(
        method="GET",
        target=POLICY_PATH,
        headers=[("Host", host), ("User-Agent", "stalwart-py"), ("Connection", "close")],
    )
    body = bytearray()
    try:
        await stream.send(connection.send(request) + connection.send(h11.EndOfMessage()))
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await stream.receive()
                except anyio.EndOfStream:
                    data = b""
                connection.receive_data(data)
                continue
            if isinstance(event, h11.Response):
                _check_response(event, host)
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_POLICY_SIZE:
                    raise PolicyError("sts-policy-fetch-error", f"{host}: policy over 64 KB")
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
    except (h11.ProtocolError, OSError, anyio.BrokenResourceError, ssl.SSLError) as exc:
        detail = str(exc) or type(exc).__name__
        raise PolicyError("sts-policy-fetch-error", f"{host}: {detail}") from None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError("sts-policy-invalid", f"{host}: the policy is not UTF-8") from None


def _check_response(response: h11.Response, host: str) -> None:
    if response.status_code != 200:
        # 3xx included: RFC 8461 3.3 says redirects MUST NOT be followed.
        raise PolicyError(
            "sts-policy-fetch-error", f"{host}: HTTP {response.status_code} for {POLICY_PATH}"
        )
    kind = dict(response.headers).get(b"content-type", b"").split(b";")[0].strip().lower()
    if kind != b"text/plain":
        kind_text = kind.decode("latin-1") or "untyped"
        raise PolicyError("sts-policy-invalid", f"{host}: the policy is {kind_text}, not text")


@dataclass(frozen=True, slots=True)
class StsLookup:
    """What is known of a destination's MTA-STS: its policy (None: deliver as without one),
    and the failure to count for TLS-RPT when a published policy could not be had."""

    policy: StsPolicy | None
    failure: PolicyError | None = None


class StsPolicies:
    """The MTA-STS policies of destinations, cached in the store (see the module docstring).
    ``spawn`` starts a background refresh (the queue's task group); without it none is made."""

    def __init__(
        self,
        store: Store,
        resolver: Resolver,
        settings: QueueMtaStsSettings,
        ca_file: Path | None,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self.store = store
        self.resolver = resolver
        self.clock = clock
        self.spawn: Callable[[Callable[[], object]], None] | None = None
        self._locks: dict[str, anyio.Lock] = {}
        self._refreshing: set[str] = set()
        self.refreshed = anyio.Event()  # set after each background refresh; then replaced
        self._fetches = metrics.counter(
            "stalwart_queue_mta_sts_fetches",
            "MTA-STS policies fetched from destinations (RFC 8461), by result",
            ["result"],
        )
        self.configure(settings, ca_file)

    def configure(self, settings: QueueMtaStsSettings, ca_file: Path | None) -> None:
        self.settings = settings
        self._ca_file = ca_file
        self._context: ssl.SSLContext | None = None

    @property
    def context(self) -> ssl.SSLContext:
        """Made on the first policy fetch, not at start (or reload): loading the system's
        roots was a third of a start's CPU (bench/startup.py)."""
        if self._context is None:
            self._context = policy_context(self._ca_file)
        return self._context

    async def lookup(self, domain: str) -> StsLookup:
        """The policy to apply to mail for ``domain`` now."""
        if not self.settings.enable:
            return StsLookup(None)
        domain = domain.lower().rstrip(".")
        try:
            policy_id = parse_txt(await self.resolver.txt(f"_mta-sts.{domain}"))
            txt_known = True
        except DnsTemporaryError:
            policy_id, txt_known = None, False  # cannot tell: a cached policy still holds
        except DnsError:
            policy_id, txt_known = None, True
        lock = self._locks.setdefault(domain, anyio.Lock())
        try:
            async with lock:  # one fetch per domain at a time; the others use its result
                return await self._lookup(domain, policy_id, txt_known)
        finally:
            if not lock.statistics().tasks_waiting:
                self._locks.pop(domain, None)

    async def _lookup(self, domain: str, policy_id: str | None, txt_known: bool) -> StsLookup:
        now = self.clock.now()
        cached = await self.store.get_sts_policy(domain)
        valid = cached if cached is not None and cached.expires > now else None
        current = _parse_cached(valid)
        if policy_id is None:
            # No TXT record (or no answer): RFC 8461 5.1 keeps using an unexpired policy.
            return StsLookup(current)
        if current is not None and valid is not None and valid.policy_id == policy_id:
            if txt_known and now - valid.fetched > REFRESH_AFTER:
                self._refresh_later(domain, policy_id)
            return StsLookup(current)
        try:
            return StsLookup(await self.fetch(domain, policy_id))
        except PolicyError as failure:
            log.warning("MTA-STS policy of %s: %s", domain, failure)
            # 5.1: a failed fetch leaves the cached policy in force until it expires.
            return StsLookup(current, failure if current is None else None)

    async def fetch(self, domain: str, policy_id: str) -> StsPolicy:
        """Fetch, parse and cache the policy of ``domain``; raises PolicyError."""
        try:
            text = await fetch_policy(
                domain,
                self.resolver,
                port=self.settings.port,
                timeout=self.settings.timeout,
                context=self.context,
            )
            policy = parse_policy(text, domain, policy_id)
        except PolicyError as failure:
            self._fetches.labels(failure.result_type).inc()
            raise
        self._fetches.labels("fetched").inc()
        now = self.clock.now()
        await self.store.put_sts_policy(
            CachedStsPolicy(domain, policy_id, text, now, now + policy.max_age),
            keep=self.settings.cache_size,
            now=now,
        )
        log.info(
            "MTA-STS policy of %s (id %s): mode %s, mx %s, max_age %d",
            domain,
            policy_id,
            policy.mode,
            ", ".join(policy.mx) or "-",
            policy.max_age,
        )
        return policy

    def _refresh_later(self, domain: str, policy_id: str) -> None:
        if self.spawn is None or domain in self._refreshing:
            return
        self._refreshing.add(domain)

        async def refresh() -> None:
            try:
                await self.fetch(domain, policy_id)
            except PolicyError as failure:
                log.info("MTA-STS refresh of %s failed (cached policy kept): %s", domain, failure)
            finally:
                self._refreshing.discard(domain)
                self.refreshed.set()
                self.refreshed = anyio.Event()

        self.spawn(refresh)


def _parse_cached(cached: CachedStsPolicy | None) -> StsPolicy | None:
    if cached is None:
        return None
    try:
        return parse_policy(cached.body, cached.domain, cached.policy_id)
    except PolicyError:
        return None
