"""The directory: local domains, accounts, aliases, address resolution and authentication.

Resolution of a recipient ``local+tag@domain`` (RFC 5233 subaddressing):

1. A domain that is not local resolves to nothing local (the caller relays or refuses).
2. The exact address is tried first, then, when it has a ``+``, the address without the tag.
3. An account resolves to itself; an alias to its targets, each resolved again (chains up to
   ``MAX_ALIAS_DEPTH`` deep, loops ignored); a target outside the local domains is a forward.
4. Otherwise the domain's catch-all alias ``@domain``, if there is one.

Authentication is shared by every protocol: ``authenticate`` runs a SASL exchange (PLAIN,
LOGIN, SCRAM-SHA-256) over a protocol's own framing, ``login`` checks a user name and password
(IMAP LOGIN, HTTP Basic). Failed attempts are counted per client address and per (client
address, account) by the ``LoginThrottle`` (``stalwart_py.throttle``): past a limit, that
address or pair is blocked for a time that doubles with each further failure, and attempts
while blocked are refused (``AuthThrottled``) without checking the password or counting. Every
checked failure is answered only after ``failure-delay``. Passwords are checked in the one
``HashPool`` (``stalwart_py.hash_pool``): in worker threads, a bounded number at once; a login
that waits too long for its turn is deferred (``LoginDeferred``, an ``AuthThrottled``) and
logged at WARNING as ``login deferred from <address>: mechanism=<M> user=<name>``, which is
not a failed login (not counted, not matched by the fail2ban filter). Before that, the
``AuthCache`` (``stalwart_py.auth_cache``) answers for a password that was verified recently
against the account's current hash; the throttle is asked first, and a failure is never cached.

Every refused login, in every protocol, is logged at INFO on the session's logger as one line
``login failed from <address>: mechanism=<M> reason=<R> user=<name>`` (``logs.login_refused``), the
line the README's fail2ban filter matches; ``reason`` is ``invalid-credentials``,
``throttled`` or ``authzid-refused``.

App passwords (``stalwart_py.app_passwords``) are accepted where the protocol is named
(``protocol=``, one of ``app_passwords.PROTOCOLS``) and the app password allows it; HTTP names
none, so it never accepts one. A login with one is logged as ``login as <address> with app
password <name> over <protocol>`` (the name, never the secret) and counted in
``stalwart_app_password_logins_total{protocol}``.

With two-factor sign-in (``stalwart_py.two_factor``) the account's own password opens no mail
protocol and over HTTP needs a code: ``TwoFactorRequired``, ``reason=two-factor-required``.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import anyio

from stalwart_py import app_passwords, names, passwords, sasl
from stalwart_py.auth_cache import AuthCache
from stalwart_py.cluster_throttle import ClusterThrottle
from stalwart_py.config import DirectorySettings
from stalwart_py.config.types import IPAddress
from stalwart_py.hash_pool import HashPool, LoginDeferred
from stalwart_py.logs import login_deferred as _deferred
from stalwart_py.logs import login_refused as _refused
from stalwart_py.metrics import Metrics
from stalwart_py.shared_table import SharedTable
from stalwart_py.store import (
    Account,
    Alias,
    AppPassword,
    Credentials,
    Domain,
    NotFound,
    Store,
    StoreError,
)
from stalwart_py.throttle import AuthThrottled, LoginThrottle
from stalwart_py.two_factor import TwoFactor, TwoFactorRequired

__all__ = ["AuthThrottled", "Directory", "LoginThrottle", "Resolution", "normalize"]

_log = logging.getLogger("stalwart_py.directory")
Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]

MAX_ALIAS_DEPTH = 10


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a recipient address means here."""

    local_domain: bool  # the domain is one of ours
    accounts: tuple[Account, ...] = ()  # local accounts to deliver to (each once)
    forwards: tuple[str, ...] = ()  # remote addresses an alias points to

    @property
    def exists(self) -> bool:
        return bool(self.accounts or self.forwards)


def normalize(address: str) -> str:
    """An address or domain as looked up: without surrounding spaces, in lower case (local
    parts are case-insensitive here). For lookups; a name to be stored goes through
    ``_checked`` as well."""
    return address.strip().lower()


def _checked(check: Callable[[str], str], text: str) -> str:
    """``text`` normalized and checked by one of ``names``'s validators, in its canonical
    form; a name that is not valid is a StoreError saying what was expected."""
    try:
        return check(normalize(text))
    except names.InvalidName as exc:
        raise StoreError(str(exc)) from None


def split_address(address: str) -> tuple[str, str]:
    local, sep, domain = address.rpartition("@")
    return (local, domain) if sep else (address, "")


class Directory:
    def __init__(
        self,
        store: Store,
        settings: DirectorySettings | None = None,
        *,
        failures: SharedTable | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """``failures``: the login throttle's table the server's workers share (a table of
        this directory's own without it)."""
        self.store = store
        self.settings = settings or DirectorySettings()
        self.throttle = LoginThrottle(self.settings.throttle, table=failures)
        self.throttles = ClusterThrottle(store, self.throttle)  # and other nodes' counts
        self.hashes = HashPool(self.settings.max_concurrent_hashes, self.settings.max_hash_wait)
        self.auth_cache = AuthCache(self.settings.auth_cache)
        self.two_factor = TwoFactor(store)
        self._app_password_logins = (metrics or Metrics()).counter(
            "stalwart_app_password_logins", "Logins with an app password, by protocol", ["protocol"]
        )

    def configure(self, settings: DirectorySettings) -> None:
        """Take new settings (on reload); failure counts are kept."""
        self.settings = settings
        self.throttle.settings = settings.throttle
        self.hashes.configure(settings.max_concurrent_hashes, settings.max_hash_wait)
        self.auth_cache.configure(settings.auth_cache)

    # -- management -------------------------------------------------------------------------

    async def add_domain(self, name: str) -> Domain:
        return await self.store.add_domain(_checked(names.domain, name))

    async def delete_domain(self, name: str) -> None:
        await self.store.delete_domain(normalize(name))

    async def list_domains(self) -> list[Domain]:
        return await self.store.list_domains()

    async def add_account(
        self,
        address: str,
        password: str,
        *,
        is_admin: bool = False,
        quota_bytes: int | None = None,
        quota_messages: int | None = None,
    ) -> Account:
        address = _checked(names.mailbox, address)
        _, domain = split_address(address)
        if not await self.store.is_local_domain(domain):
            raise NotFound(
                f"{domain} is not a local domain; add it first: stalwart-py domain add {domain}"
            )
        self._check_password(password)
        secret, scram = await self._hash(password)
        return await self.store.add_account(
            address,
            secret,
            scram,
            is_admin=is_admin,
            quota_bytes=quota_bytes,
            quota_messages=quota_messages,
        )

    async def set_password(self, address: str, password: str) -> Account:
        self._check_password(password)
        secret, scram = await self._hash(password)
        return await self.store.update_account(normalize(address), secret=secret, scram=scram)

    async def delete_account(self, address: str) -> None:
        await self.store.delete_account(normalize(address))

    async def add_app_password(
        self, address: str, name: str, protocols: Sequence[str]
    ) -> tuple[AppPassword, str]:
        """Generate an app password for the account: (its record, the password to show once).
        StoreError for a name or protocols refused, NotFound, AlreadyExists."""
        account = await self._account(address)
        try:
            name = app_passwords.check_name(name)
            allowed = app_passwords.check_protocols(list(protocols))
        except ValueError as exc:
            raise StoreError(str(exc)) from None
        password = app_passwords.generate()
        key = app_passwords.canonical(password)
        assert key is not None  # generate() makes canonical passwords
        secret = await self.hashes.run(passwords.hash_password, key, may_defer=False)
        record = await self.store.add_app_password(
            account.id,
            name,
            app_passwords.selector(key),
            secret,
            allowed,
            limit=app_passwords.MAX_PER_ACCOUNT,
        )
        return record, password

    async def list_app_passwords(self, address: str) -> list[AppPassword]:
        return await self.store.list_app_passwords((await self._account(address)).id)

    async def revoke_app_password(self, address: str, app_password_id: int) -> None:
        """Delete it: no login accepts it afterwards, in any worker (see the module of
        ``app_passwords``). NotFound for an account or app password that is not there."""
        account = await self._account(address)
        await self.store.delete_app_password(account.id, app_password_id)

    async def _account(self, address: str) -> Account:
        account = await self.store.get_account(normalize(address))
        if account is None:
            raise NotFound(f"no account {normalize(address)}")
        return account

    async def add_alias(self, address: str, targets: Sequence[str]) -> Alias:
        address = _checked(names.alias, address)
        checked = [_checked(names.mailbox, target) for target in targets]
        return await self.store.add_alias(address, checked)

    async def delete_alias(self, address: str, targets: Sequence[str] = ()) -> None:
        await self.store.delete_alias(normalize(address), [normalize(t) for t in targets])

    async def ensure_administrator(
        self, hostname: str, password: str | None = None
    ) -> tuple[str, str] | None:
        """On a directory with no account, create ``admin@<hostname>`` (and the domain) with
        ``password``, or a random one; returns (address, password), or None when the
        directory already has accounts."""
        if await self.store.count_accounts():
            return None
        domain = _checked(names.domain, hostname)
        if not await self.store.is_local_domain(domain):
            await self.store.add_domain(domain)
        if password is None:
            password = secrets.token_urlsafe(12)
        else:
            self._check_password(password)
        address = f"admin@{domain}"
        secret, scram = await self._hash(password)
        await self.store.add_account(address, secret, scram, is_admin=True)
        return address, password

    def _check_password(self, password: str) -> None:
        """A password is hashed in its SASLprep form (``passwords``), so that is what must be
        allowed (RFC 4013 refuses control characters, unassigned bidirectional mixes and the
        like) and long enough (soft hyphens, for one, are mapped to nothing): StoreError says
        which, before anything is hashed."""
        try:
            prepared = passwords.saslprep(password)
        except ValueError as exc:
            raise StoreError(f"the password is not allowed: {exc} (RFC 4013)") from None
        minimum = self.settings.min_password_length
        if len(prepared) < minimum:
            after = (
                "" if prepared == password else f" after SASLprep (RFC 4013), not {len(prepared)}"
            )
            raise StoreError(f"the password must have at least {minimum} characters{after}")

    async def _hash(self, password: str) -> tuple[str, str | None]:
        # In the hash pool, as a login's check: 32 MiB and tens of milliseconds each, bounded.
        secret = await self.hashes.run(passwords.hash_password, password, may_defer=False)
        scram = None
        if self.settings.scram:
            scram = await anyio.to_thread.run_sync(passwords.scram_credentials, password)
        return secret, scram

    # -- lookups ----------------------------------------------------------------------------

    async def is_local_domain(self, domain: str) -> bool:
        return await self.store.is_local_domain(domain.lower())

    async def resolve(self, address: str) -> Resolution:
        address = normalize(address)
        _, domain = split_address(address)
        if not domain or not await self.store.is_local_domain(domain):
            return Resolution(False)
        accounts: dict[int, Account] = {}
        forwards: dict[str, None] = {}
        await self._expand(address, accounts, forwards, set(), 0)
        # RFC 5321 4.5.1: every domain must accept mail for its postmaster.
        if (
            not (accounts or forwards)
            and split_address(address)[0] == "postmaster"
            and (admin := await self.postmaster()) is not None
        ):
            accounts[admin.id] = admin
        return Resolution(True, tuple(accounts.values()), tuple(forwards))

    async def resolve_postmaster(self, hostname: str) -> Resolution:
        """The bare ``<Postmaster>`` of RFC 5321 4.5.1, which names no domain: the host's
        own postmaster when its name is one of our domains, else the first administrator."""
        if await self.is_local_domain(hostname):
            return await self.resolve(f"postmaster@{hostname}")
        admin = await self.postmaster()
        return Resolution(True, (admin,) if admin is not None else ())

    async def postmaster(self) -> Account | None:
        """Who reads postmaster mail that no account or alias claims: the first
        administrator (the one made at the first start, unless it was deleted)."""
        admins = [account for account in await self.store.list_accounts() if account.is_admin]
        return min(admins, key=lambda account: account.id, default=None)

    async def _expand(
        self,
        address: str,
        accounts: dict[int, Account],
        forwards: dict[str, None],
        seen: set[str],
        depth: int,
    ) -> bool:
        """Add what ``address`` (in a local domain) leads to; False when it leads nowhere."""
        if address in seen or depth > MAX_ALIAS_DEPTH:
            return True  # a loop or a chain too long: what was found so far stands
        seen.add(address)
        local, domain = split_address(address)
        candidates = [address]
        separator = self.settings.subaddress_separator
        if separator and separator in local:
            candidates.append(f"{local.split(separator, 1)[0]}@{domain}")
        for candidate in candidates:
            account = await self.store.get_account(candidate)
            if account is not None:
                accounts[account.id] = account
                return True
            alias = await self.store.get_alias(candidate)
            if alias is not None:
                await self._expand_targets(alias, accounts, forwards, seen, depth)
                return True
        catch_all = await self.store.get_alias(f"@{domain}")
        if catch_all is not None and depth == 0:
            await self._expand_targets(catch_all, accounts, forwards, seen, depth)
            return True
        return False

    async def _expand_targets(
        self,
        alias: Alias,
        accounts: dict[int, Account],
        forwards: dict[str, None],
        seen: set[str],
        depth: int,
    ) -> None:
        for target in alias.targets:
            _, target_domain = split_address(target)
            if await self.store.is_local_domain(target_domain):
                await self._expand(target, accounts, forwards, seen, depth + 1)
            else:
                forwards[target] = None

    async def owns(self, account: Account, address: str) -> bool:
        """May ``account`` send as ``address``: its own address, one of its aliases (a
        catch-all counts for every address of its domain), or a subaddress of those."""
        address = normalize(address)
        local, domain = split_address(address)
        separator = self.settings.subaddress_separator
        candidates = {address}
        if separator and separator in local:
            candidates.add(f"{local.split(separator, 1)[0]}@{domain}")
        if account.address in candidates:
            return True
        aliases = set(await self.store.aliases_of(account.address))
        return bool(candidates & aliases) or f"@{domain}" in aliases

    # -- authentication ---------------------------------------------------------------------

    def mechanisms(self) -> tuple[str, ...]:
        return tuple(m for m in sasl.MECHANISMS if self.settings.scram or not m.startswith("SCRAM"))

    async def authenticate(
        self,
        mechanism: str,
        initial_response: bytes | None,
        exchange: Callable[[bytes], Awaitable[bytes]],
        peer: IPAddress | None,
        *,
        log: Logger | None = None,
        protocol: str | None = None,
    ) -> Account:
        """Run a SASL exchange; raises sasl.AuthFailed (AuthThrottled), SaslError,
        AuthAborted or ValueError (unknown mechanism). A refusal is logged (see
        ``_refused``) on ``log``, the session's logger, so that the line names the session.
        ``protocol``: the mail protocol asking, for app passwords (None accepts none)."""
        mechanism = mechanism.upper()
        if mechanism not in self.mechanisms():
            raise ValueError(f"unsupported mechanism {mechanism}")
        try:
            await self.throttles.check(peer)  # the address alone: the account is not known yet
        except AuthThrottled:
            _refused(log, peer, mechanism, "throttled", None)
            raise
        store = _Credentials(self, peer, protocol)
        try:
            result = await sasl.authenticate(mechanism, initial_response, exchange, store)
            if result.authzid is not None:
                # Acting as another identity (RFC 4616 authzid) is not something any account
                # may do here; the exchange fails rather than logging in as oneself.
                raise sasl.AuthFailed(
                    f"not authorized to act as {result.authzid}", mechanism=result.mechanism
                )
        except LoginDeferred:  # the server is busy, the password unchecked: not a failure
            _deferred(log, peer, mechanism, store.tried)
            raise
        except AuthThrottled:  # refused unchecked (_Credentials): not a failure to count
            _refused(log, peer, mechanism, "throttled", store.tried)
            raise
        except sasl.AuthFailed as error:
            reason = "invalid-credentials" if error.authcid is not None else "authzid-refused"
            if isinstance(error, TwoFactorRequired):
                reason = "two-factor-required"
            _refused(log, peer, mechanism, reason, error.authcid or store.tried)
            await self._failed(peer, store.tried)
            raise
        return await self._succeeded(peer, result.address, store, log)

    async def login(
        self,
        username: str,
        password: str,
        peer: IPAddress | None,
        *,
        mechanism: str = "LOGIN",
        log: Logger | None = None,
        protocol: str | None = None,
        two_step: bool = False,
    ) -> Account:
        """Check a user name and password (IMAP LOGIN, HTTP Basic as ``mechanism="BASIC"``);
        raises sasl.AuthFailed (AuthThrottled). A refusal is logged as by ``authenticate``;
        ``protocol`` is as there. ``two_step`` (the web's sign-in, the code on a page of its
        own): a right password wanting a code raises TwoFactorRequired, counted as no failure."""
        address = normalize(username)
        credentials = _Credentials(self, peer, protocol)
        try:
            verified = await credentials.verify_password(address, password)
        except LoginDeferred:
            _deferred(log, peer, mechanism, username)
            raise
        except AuthThrottled:
            _refused(log, peer, mechanism, "throttled", username)
            raise
        except TwoFactorRequired:
            if two_step:  # the password was right; the caller asks for the code next
                raise
            _refused(log, peer, mechanism, "two-factor-required", username)
            await self._failed(peer, address)
            raise
        if verified is None:
            _refused(log, peer, mechanism, "invalid-credentials", username)
            await self._failed(peer, address)
            raise sasl.AuthFailed("invalid credentials")
        return await self._succeeded(peer, address, credentials, log)

    async def second_factor(
        self,
        account: Account,
        code: str,
        peer: IPAddress | None,
        *,
        mechanism: str,
        log: Logger | None = None,
    ) -> Account:
        """After ``login(two_step=True)``: a TOTP or recovery code, by ``TwoFactor.check``,
        throttled and logged as a password is (AuthThrottled, AuthFailed ``invalid-code``)."""
        try:
            await self.throttles.check(peer, account.address)
        except AuthThrottled:
            _refused(log, peer, mechanism, "throttled", account.address)
            raise
        state = await self.two_factor.status(account.id)
        if state is None or not state.enabled or not await self.two_factor.check(state, code):
            _refused(log, peer, mechanism, "invalid-code", account.address)
            await self._failed(peer, account.address)
            raise sasl.AuthFailed("invalid code")
        await self.throttles.succeeded(peer, account.address)
        current = await self.store.get_account(account.address)
        if current is None:  # deleted between the two steps
            raise sasl.AuthFailed("invalid credentials")
        return current

    async def _failed(self, peer: IPAddress | None, account: str | None) -> None:
        await self.throttles.failed(peer, account)
        await anyio.sleep(self.settings.throttle.failure_delay)

    async def _succeeded(
        self,
        peer: IPAddress | None,
        address: str,
        credentials: _Credentials,
        log: Logger | None,
    ) -> Account:
        await self.throttles.succeeded(peer, address)
        account = await self.store.get_account(address)
        if account is None:  # deleted during the exchange
            raise sasl.AuthFailed("invalid credentials")
        if credentials.app_password is not None:
            (log or _log).info(
                "login as %s with app password <%s> over %s",
                account.address,
                credentials.app_password,
                credentials.protocol,
            )
            self._app_password_logins.labels(credentials.protocol).inc()
        return account


class _Credentials:
    """The directory as the SASL layer's credential store; where the account becomes known,
    the throttle is asked about the (address, account) pair before the password is checked."""

    def __init__(
        self, directory: Directory, peer: IPAddress | None, protocol: str | None = None
    ) -> None:
        self.directory = directory
        self.peer = peer
        self.protocol = protocol
        self.tried: str | None = None
        self.app_password: str | None = None  # the name of the app password that matched

    async def verify_password(self, authcid: str, password: str) -> str | None:
        address = self.tried = normalize(authcid)
        await self.directory.throttles.check(self.peer, address)
        credentials = await self.directory.store.get_credentials(address)
        hashes = self.directory.hashes
        if credentials is None:
            await hashes.run(passwords.dummy_verify)
            return None
        if await self._app_password(credentials.account_id, password):
            return credentials.address
        two_factor = None
        if credentials.two_factor:
            two_factor = await self.directory.two_factor.status(credentials.account_id)
        if two_factor is None or not two_factor.enabled:
            return await self._own_password(credentials, password)

        async def own(text: str) -> bool:
            return await self._own_password(credentials, text) is not None

        verified = await self.directory.two_factor.verify(
            two_factor, password, own, protocol=self.protocol, address=address
        )
        return credentials.address if verified else None

    async def _own_password(self, credentials: Credentials, password: str) -> str | None:
        """Whether ``password`` is the account's own (its address then)."""
        hashes, cache = self.directory.hashes, self.directory.auth_cache
        # The row was just read: a hit means this password was verified against the hash
        # stored now, so a change or a deletion by anyone is seen here at once.
        if cache.verified(credentials.account_id, credentials.secret, password):
            return credentials.address
        ok = await hashes.run(passwords.verify_password, password, credentials.secret)
        if not ok:
            return None
        cache.remember(credentials.account_id, credentials.secret, password)
        return credentials.address

    async def _app_password(self, account_id: int, password: str) -> bool:
        """Whether ``password`` is an app password of the account allowed for this protocol
        (then its name is kept in ``app_password``). Only the rows its selector names are
        hashed, so a password of another shape costs nothing here."""
        if self.protocol not in app_passwords.PROTOCOLS:
            return False
        key = app_passwords.canonical(password)
        if key is None:
            return False
        store, hashes = self.directory.store, self.directory.hashes
        cache = self.directory.auth_cache
        for entry in await store.app_password_credentials(account_id, app_passwords.selector(key)):
            if self.protocol not in entry.protocols:
                continue
            if not cache.verified(account_id, entry.secret, key):
                if not await hashes.run(passwords.verify_password, key, entry.secret):
                    continue
                cache.remember(account_id, entry.secret, key)
            self.app_password = entry.name
            return True
        return False

    async def scram_credentials(
        self, authcid: str
    ) -> tuple[str, passwords.ScramCredentials] | None:
        address = self.tried = normalize(authcid)
        await self.directory.throttles.check(self.peer, address)
        credentials = await self.directory.store.get_credentials(address)
        # Two-factor sign-in: the own password opens no mail protocol; SCRAM takes no code.
        if credentials is None or credentials.scram is None or credentials.two_factor:
            return None
        parsed = passwords.parse_scram_credentials(credentials.scram)
        return (credentials.address, parsed) if parsed is not None else None
