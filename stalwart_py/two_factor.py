"""Two-factor sign-in of accounts: enrolment and the second factor's check (``totp``).

Enrolment is two steps, so that a secret the user never stored in an app cannot lock them out:
``start`` makes a secret and its ``otpauth://`` URI (shown once, not active yet), ``confirm``
takes a code computed from it, enables two-factor sign-in and returns the recovery codes (shown
once). ``disable`` forgets the secret and the recovery codes.

What it changes at login (``Directory``): the account's own password no longer opens the mail
protocols, only app passwords do (as with Stalwart); over HTTP the password must come with a
code, or a recovery code, as ``password$code``. ``check`` is that second factor: a TOTP code of
a time step later than the last one accepted (the store's update is the check, so no code opens
two logins, in any worker), or an unused recovery code, used up.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from stalwart_py import sasl, totp
from stalwart_py.store import Store, StoreError, Totp

SEPARATOR = "$"  # between the password and the code, over HTTP Basic (as Stalwart)


class TwoFactorRequired(sasl.AuthFailed):
    """The account's own password was right, but two-factor sign-in is enabled: a mail
    protocol wants an app password, HTTP the password with a code. The message says which, for
    the protocol's answer."""


@dataclass(frozen=True, slots=True)
class Enrolment:
    """A started enrolment, to show once: the secret and the URI an app enrols from."""

    secret: str
    uri: str


class TwoFactor:
    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock  # Unix seconds; the tests' own clock

    async def status(self, account_id: int) -> Totp | None:
        return await self.store.get_totp(account_id)

    async def start(self, account_id: int, address: str, issuer: str) -> Enrolment:
        """A new secret for the account (replacing an enrolment not confirmed); AlreadyExists
        when two-factor sign-in is enabled."""
        secret = totp.new_secret()
        await self.store.start_totp(account_id, secret)
        return Enrolment(secret, totp.uri(secret, address, issuer))

    async def confirm(self, account_id: int, code: str) -> list[str]:
        """Enable two-factor sign-in with a code of the started secret; the recovery codes to
        show once. StoreError when nothing was started, it is enabled already, or the code is
        wrong."""
        state = await self.store.get_totp(account_id)
        if state is None or state.enabled:
            raise StoreError("no two-factor enrolment waiting for confirmation; start one first")
        step = totp.matching_step(state.secret, code, self.clock())
        if step is None:
            raise StoreError(
                "the code does not match: check the device's clock and enter the current code"
            )
        codes = totp.new_recovery_codes()
        digests = [totp.recovery_digest(c) for c in codes]
        await self.store.enable_totp(account_id, step, [d for d in digests if d is not None])
        return codes

    async def disable(self, account_id: int) -> None:
        """Forget the secret and the recovery codes; NotFound when there were none."""
        await self.store.delete_totp(account_id)

    async def check(self, state: Totp, code: str) -> bool:
        """The second factor: a TOTP code not used before (RFC 6238 5.2) or an unused recovery
        code, which this uses up."""
        if totp.is_code(code):
            step = totp.matching_step(state.secret, code, self.clock())
            return step is not None and await self.store.use_totp_step(state.account_id, step)
        digest = totp.recovery_digest(code)
        return digest is not None and await self.store.use_recovery_code(state.account_id, digest)

    async def verify(
        self,
        state: Totp,
        password: str,
        own_password: Callable[[str], Awaitable[bool]],
        *,
        protocol: str | None,
        address: str,
    ) -> bool:
        """A login to an account with two-factor sign-in enabled, app passwords aside:
        ``own_password`` checks the account's own. TwoFactorRequired when it is right but not
        enough: always for a mail ``protocol``; over HTTP (None) without a code."""
        if protocol is not None:
            if not await own_password(password):
                return False
            raise TwoFactorRequired(
                "two-factor sign-in is enabled for this account: use an app password",
                authcid=address,
            )
        own, separator, code = password.rpartition(SEPARATOR)
        if not await own_password(own if separator else password):
            return False
        if not separator:
            raise TwoFactorRequired(
                f"two-factor sign-in is enabled: send the password, {SEPARATOR!r} and the"
                " current code (or a recovery code)",
                authcid=address,
            )
        # After the password, so that codes cannot be tried (nor used up) without it.
        return await self.check(state, code)
