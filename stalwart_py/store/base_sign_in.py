"""The store's part for signing in beyond the account's own password: app passwords
(``stalwart_py.app_passwords``), two-factor sign-in (``stalwart_py.totp``) and the web pages'
sessions (``protocols/http/web``). Part of ``Store``, apart only to keep ``base`` small; both
SQL backends implement it in ``sqlite_app_passwords``, ``sqlite_totp`` and
``sqlite_web_sessions``."""

from __future__ import annotations

import abc
from collections.abc import Sequence

from stalwart_py.store.model import AppPassword, AppPasswordCredentials, Totp, WebSession


class SignInStore(abc.ABC):
    # App passwords (``stalwart_py.app_passwords``): the directory generates and hashes them.

    @abc.abstractmethod
    async def add_app_password(
        self,
        account_id: int,
        name: str,
        selector: str,
        secret: str,
        protocols: Sequence[str],
        *,
        limit: int,
    ) -> AppPassword:
        """Keep an app password's hash; ``selector``, the generated password's first
        characters, finds it at login without trying every hash. Raises AlreadyExists (the
        name is taken), NotFound (no such account) or StoreError (``limit`` reached)."""

    @abc.abstractmethod
    async def list_app_passwords(self, account_id: int) -> list[AppPassword]: ...

    @abc.abstractmethod
    async def app_password_credentials(
        self, account_id: int, selector: str
    ) -> list[AppPasswordCredentials]:
        """The app passwords of the account whose selector is ``selector``."""

    @abc.abstractmethod
    async def delete_app_password(self, account_id: int, app_password_id: int) -> None:
        """Revoke an app password; raises NotFound."""

    # Two-factor sign-in (``stalwart_py.totp``): the directory makes secrets and checks codes.

    @abc.abstractmethod
    async def start_totp(self, account_id: int, secret: str) -> Totp:
        """Keep a new secret, not enabled until ``enable_totp``; replaces an enrolment not
        confirmed. Raises NotFound, or AlreadyExists when two-factor sign-in is enabled."""

    @abc.abstractmethod
    async def get_totp(self, account_id: int) -> Totp | None: ...

    @abc.abstractmethod
    async def enable_totp(self, account_id: int, step: int, digests: Sequence[str]) -> None:
        """Confirm with a code of time step ``step``, keeping the recovery codes' digests."""

    @abc.abstractmethod
    async def use_totp_step(self, account_id: int, step: int) -> bool:
        """Accept a code of time step ``step``: False when a code of that step or a later one
        was accepted already (a replay), or two-factor sign-in is not enabled."""

    @abc.abstractmethod
    async def use_recovery_code(self, account_id: int, digest: str) -> bool:
        """Use up the recovery code of that digest; False when there is none (any more)."""

    @abc.abstractmethod
    async def delete_totp(self, account_id: int) -> None:
        """Disable it, forgetting the recovery codes; raises NotFound."""

    # The web pages' sessions (``protocols/http/web/sessions.py``): the caller makes tokens.

    @abc.abstractmethod
    async def add_web_session(
        self,
        token_hash: str,
        account_id: int,
        csrf: str,
        *,
        pending: bool,
        expires: float,
        peer: str,
        idle_before: float,
    ) -> None:
        """Keep a new session, bound to the account's password as it is now: a session read
        after the password changed (from anywhere) is not found. The account's sessions idle
        since before ``idle_before``, and every session past its end, go at the same time.
        NotFound when the account is not there."""

    @abc.abstractmethod
    async def get_web_session(self, token_hash: str) -> WebSession | None:
        """The session with its account; None when there is none, or the account's password
        changed since it began (the caller checks the times)."""

    @abc.abstractmethod
    async def touch_web_session(self, token_hash: str, now: float) -> None:
        """Note a use of the session (its idle time starts again)."""

    @abc.abstractmethod
    async def list_web_sessions(self, account_id: int) -> list[WebSession]:
        """The account's sessions, newest first (expired ones too, until they are swept)."""

    @abc.abstractmethod
    async def delete_web_session(self, token_hash: str) -> None:
        """End one session (sign-out); nothing when it is not there."""

    @abc.abstractmethod
    async def delete_web_sessions(self, account_id: int, *, keep: str | None = None) -> int:
        """End every session of the account but the one whose hash is ``keep``; how many."""
