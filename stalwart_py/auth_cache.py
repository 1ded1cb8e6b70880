"""The authentication cache: a login that succeeded recently succeeds again without scrypt.

Phones and webmail log in all day, each time with the same password, and each check of an
scrypt hash costs tens of milliseconds of CPU (``stalwart_py.hash_pool``). Like Dovecot's
``auth_cache``, a successful (account, password) pair is remembered for ``ttl``:

* **What is kept** is ``HMAC-SHA256(key, account id, stored password hash, password)``, the key
  random per process and never written anywhere, with the time the entry expires. Not the
  password, nor anything from which it could be tested offline without the key (a plain
  hash of it could be brute-forced far faster than the scrypt it stands in for).
* **A login still reads the account row** (one cheap SQLite read) and looks up the digest of
  *the hash stored now*. A password changed, or an account deleted, by this process, another
  worker or the CLI gives another hash (a fresh salt each time) or none, so the old entry
  never matches again: the change takes effect at once, without any message to the cache.
* **Only successes are entered.** A wrong password gives a digest that was never entered,
  so it always goes to scrypt, the throttle counts it, and the failure delay applies.
  The login throttle (``stalwart_py.throttle``) is asked before the cache, so a blocked
  client is refused even the right password, cached or not.
* **Memory is bounded**: at most ``max-entries`` digests (32 bytes each, plus the expiry); past
  it the oldest entries go first. Entries are never refreshed by use, so a pair is checked
  against scrypt again at least once every ``ttl``.

SCRAM-SHA-256 needs no cache: it never runs scrypt (the client derives its keys).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable

from stalwart_py.config import AuthCacheSettings


class AuthCache:
    """Digests of verified (account, stored hash, password), each with its expiry; see the
    module docstring. ``clock`` is monotonic seconds (tests give a fake one)."""

    def __init__(
        self, settings: AuthCacheSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._key = secrets.token_bytes(32)
        # digest -> expiry; in insertion order, which (with one ttl) is the order of expiry.
        self._entries: OrderedDict[bytes, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def enabled(self) -> bool:
        return self.settings.ttl > 0

    def configure(self, settings: AuthCacheSettings) -> None:
        """New settings (on reload): a cache turned off forgets everything; a smaller one
        forgets its oldest entries. Entries keep the expiry they were given."""
        self.settings = settings
        if not self.enabled:
            self._entries.clear()
        self._trim(self.clock())

    def verified(self, account_id: int, stored_hash: str, password: str) -> bool:
        """Whether this password was verified against this very stored hash of this account
        within the ttl."""
        if not self.enabled:
            return False
        digest = self._digest(account_id, stored_hash, password)
        expires = self._entries.get(digest)
        if expires is None:
            return False
        if self.clock() >= expires:
            del self._entries[digest]
            return False
        return True

    def remember(self, account_id: int, stored_hash: str, password: str) -> None:
        """Enter a pair that scrypt has just verified against ``stored_hash``."""
        if not self.enabled:
            return
        now = self.clock()
        digest = self._digest(account_id, stored_hash, password)
        self._entries.pop(digest, None)  # re-entered: to the back, with a new expiry
        self._entries[digest] = now + self.settings.ttl
        self._trim(now)

    def _trim(self, now: float) -> None:
        """Drop expired entries from the front, then the oldest beyond ``max-entries``."""
        entries = self._entries
        while entries and (
            len(entries) > self.settings.max_entries or next(iter(entries.values())) <= now
        ):
            entries.popitem(last=False)

    def _digest(self, account_id: int, stored_hash: str, password: str) -> bytes:
        # The id and the stored hash hold no NUL; the password, which may, comes last: so
        # no two different triples give the same message.
        message = b"\0".join(
            (
                str(account_id).encode("ascii"),
                stored_hash.encode("utf-8", "surrogatepass"),
                password.encode("utf-8", "surrogatepass"),
            )
        )
        return hmac.digest(self._key, message, hashlib.sha256)
