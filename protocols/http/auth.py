"""HTTP Basic authentication (RFC 7617) against the directory: administrators, and on the
few routes an account may use for itself (its app passwords), any account.

Order of checks for an authenticated route:

1. Over plain HTTP, only clients in ``http.allow-plaintext-from`` (loopback by default) may
   authenticate at all: others get 403 whatever they send, so that a client is never invited
   (by a 401) to send a password in clear text.
2. No or malformed ``Authorization``: 401 with
   ``WWW-Authenticate: Basic realm="...", charset="UTF-8"``.
3. Wrong credentials: 401 after the directory's failure delay; while the client's address,
   or the account from that address, is blocked after too many failures: 429 with
   ``Retry-After`` the seconds left (the directory's throttle, shared with every protocol).
4. A valid account that is not an administrator: 403 (on an administrator's route).

The account's own password only: app passwords (``stalwart_py.app_passwords``) are for mail
protocols, so the directory is asked without a ``protocol`` and refuses them. With two-factor
sign-in enabled (``stalwart_py.two_factor``) the password is ``password$code``; the password
alone, though right, is a 401 saying that a code is wanted.

Basic authentication sends the password with every request, and checking a scrypt hash costs
tens of milliseconds: the directory's authentication cache (``stalwart_py.auth_cache``, shared
by every protocol) answers the requests after the first without scrypt, and still sees a
password change (from anywhere: the API, the CLI) at once.
"""

from __future__ import annotations

import base64
import binascii
import math

from protocols.http.messages import HttpError, Request
from stalwart_py.directory import AuthThrottled
from stalwart_py.sasl import AuthFailed
from stalwart_py.store import Account
from stalwart_py.two_factor import TwoFactorRequired


def parse_basic(header: str) -> tuple[str, str] | None:
    """``Basic base64(user-id ":" password)`` -> (user, password); None when malformed.
    The charset is UTF-8 (RFC 7617 2.1, the one we announce)."""
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep or not user:
        return None
    return user, password


class Authenticator:
    """One per protocol instance: who may authenticate, and how a request is checked."""

    def plaintext_allowed(self, request: Request) -> bool:
        session = request.session
        if session.tls is not None or session.peer.is_unix:  # TLS, or a Unix socket
            return True
        ip = session.peer.ip
        mapped = getattr(ip, "ipv4_mapped", None)
        return any(
            candidate in network
            for network in session.settings.allow_plaintext_from
            for candidate in (ip, mapped)
            if candidate is not None and candidate.version == network.version
        )

    async def admin(self, request: Request) -> Account:
        """The administrator making the request, or HttpError 401, 403 or 429."""
        account = await self.account(request)
        if not account.is_admin:
            _count_failure(request, "not-admin")
            raise HttpError(403, f"{account.address} is not an administrator")
        return account

    async def account(self, request: Request) -> Account:
        """The account making the request, administrator or not, or HttpError 401, 403 or
        429. Its own password only: app passwords are for mail protocols, never HTTP."""
        session = request.session
        if not self.plaintext_allowed(request):
            _count_failure(request, "plaintext")
            raise HttpError(403, "use HTTPS: credentials are not accepted over plain HTTP here")
        credentials = parse_basic(request.headers.get("authorization", ""))
        if credentials is None:
            _count_failure(request, "missing")
            raise self.challenge(request, "authentication required")
        user, password = credentials
        try:
            account = await session.server.directory.login(
                user, password, session.peer.ip, mechanism="BASIC", log=session.log
            )
        except AuthThrottled as exc:  # throttled or deferred; the directory logs both
            _count_failure(request, "throttled")
            retry_after = str(max(1, math.ceil(exc.retry_after)))  # whole seconds, RFC 9110
            raise HttpError(429, str(exc), headers=[("Retry-After", retry_after)]) from None
        except TwoFactorRequired as exc:  # the password right, the code missing: say so
            _count_failure(request, "invalid")
            raise self.challenge(request, str(exc)) from None
        except AuthFailed:
            _count_failure(request, "invalid")
            raise self.challenge(request, "invalid credentials") from None
        return account

    @staticmethod
    def challenge(request: Request, message: str) -> HttpError:
        realm = "".join(
            c
            for c in request.session.settings.realm
            if c.isascii() and c.isprintable() and c not in '"\\'
        )
        return HttpError(
            401,
            message,
            headers=[("WWW-Authenticate", f'Basic realm="{realm}", charset="UTF-8"')],
        )


def _count_failure(request: Request, reason: str) -> None:
    request.session.server.metrics.counter(
        "stalwart_http_auth_failures",
        "HTTP requests refused for their credentials, by reason",
        ["reason"],
    ).labels(reason).inc()
