"""Sessions of the web pages: a random token in a cookie, its SHA-256 in the store.

* **The token** is 32 random bytes (``secrets.token_urlsafe``); the store keeps only its
  SHA-256, with the account, a CSRF token, the times and the peer (``Store.add_web_session``),
  so every worker and every node sees a sign-in or a sign-out at once, and a copy of the
  database opens no session.
* **Lifetimes**: ``http.web.session-idle-timeout`` since the last use and
  ``http.web.session-lifetime`` since the sign-in; a session past either is deleted when it
  is next presented. A session still waiting for its second factor lives ``PENDING_LIFETIME``.
* **Revocation**: signing out deletes the row; "sign out everywhere else" deletes the
  account's others; a changed password (anywhere) ends them all (the store binds a session to
  the password's hash); deleting the account deletes its sessions.
* **The cookie** is ``HttpOnly; Secure; SameSite=Strict; Path=/`` and, being Secure, named with
  the ``__Host-`` prefix (a sibling subdomain cannot set or shadow it). Over plain HTTP from a
  loopback peer alone (``make run``, a developer's browser), ``Secure`` is left out, else the
  browser would drop the cookie; the prefix goes with it, as browsers require.
* **The sign-in form's CSRF token** is a double-submit cookie of its own (``PRE_SESSION``): a
  random value in a cookie and in the form's hidden field, compared on POST. Signing it is not
  needed here: with ``__Host-`` and ``SameSite=Strict`` another site can neither plant nor send
  it, and the Origin check stands beside it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import TYPE_CHECKING

from stalwart_py.logs import client_address

if TYPE_CHECKING:
    from protocols.http.messages import Request
    from stalwart_py.store import Account, WebSession

SESSION = "stalwart-session"
PRE_SESSION = "stalwart-sign-in"
PENDING_LIFETIME = 300.0  # seconds to type the second factor after the password
TOUCH_INTERVAL = 60.0  # a session's last use is written at most this often (a write each)
PRE_SESSION_LIFETIME = 3600  # the sign-in form's token cookie, in seconds


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def secure(request: Request) -> bool:
    """Whether cookies get ``Secure`` (and the ``__Host-`` prefix): always but over plain
    HTTP from a loopback address. Not for another peer in ``http.allow-plaintext-from``: a
    session cookie sent in clear over a network is what Secure exists to prevent (browsers
    then keep no cookie, so such a peer cannot sign in without TLS)."""
    session = request.session
    if session.tls is not None:
        return True
    ip = session.peer.ip
    if ip is None:
        return True  # a Unix socket: a TLS-terminating proxy in front, most likely
    mapped = getattr(ip, "ipv4_mapped", None)
    return not (mapped or ip).is_loopback


def cookie_name(base: str, request: Request) -> str:
    return f"__Host-{base}" if secure(request) else base


def read_cookie(request: Request, base: str) -> str | None:
    """The value of our cookie ``base`` (under the name this connection uses), or None.
    RFC 6265 5.4: ``Cookie: a=1; b=2``; the first of a repeated name wins."""
    name = cookie_name(base, request)
    for part in request.headers.get("cookie", "").split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value.strip().strip('"') or None
    return None


def set_cookie(request: Request, base: str, value: str, *, max_age: int | None = None) -> str:
    """A ``Set-Cookie`` value; ``max_age`` None: until the browser closes (the server ends the
    session before, by its own clock)."""
    attributes = [f"{cookie_name(base, request)}={value}", "Path=/", "HttpOnly", "SameSite=Strict"]
    if secure(request):
        attributes.append("Secure")
    if max_age is not None:
        attributes.append(f"Max-Age={max_age}")
    return "; ".join(attributes)


def clear_cookie(request: Request, base: str) -> str:
    return set_cookie(request, base, "", max_age=0)


def same(a: str, b: str) -> bool:
    """Token comparison in constant time."""
    return hmac.compare_digest(a.encode("ascii", "replace"), b.encode("ascii", "replace"))


async def current(request: Request) -> WebSession | None:
    """The session the request's cookie names, if it is still good; an expired one is
    deleted. Its last use is written at most every ``TOUCH_INTERVAL``."""
    token = read_cookie(request, SESSION)
    if token is None or len(token) > 100:
        return None
    key = token_hash(token)
    store = request.session.server.store
    found = await store.get_web_session(key)
    if found is None:
        return None
    settings = request.session.settings.web
    now = time.time()
    if now >= found.expires or now - found.last_seen >= settings.session_idle_timeout:
        await store.delete_web_session(key)
        return None
    if now - found.last_seen >= TOUCH_INTERVAL:
        await store.touch_web_session(key, now)
    return found


async def begin(request: Request, account: Account, *, pending: bool) -> tuple[str, WebSession]:
    """A new session for ``account``: (the ``Set-Cookie`` value, the session). ``pending``:
    it opens only the second factor's page, for ``PENDING_LIFETIME``."""
    settings = request.session.settings.web
    now = time.time()
    lifetime = PENDING_LIFETIME if pending else settings.session_lifetime
    token = new_token()
    key = token_hash(token)
    csrf = secrets.token_urlsafe(24)
    store = request.session.server.store
    await store.add_web_session(
        key,
        account.id,
        csrf,
        pending=pending,
        expires=now + lifetime,
        peer=client_address(request.session.peer.ip),
        idle_before=now - settings.session_idle_timeout,
    )
    found = await store.get_web_session(key)
    assert found is not None  # just written, by this process
    return set_cookie(request, SESSION, token), found


async def end(request: Request, session: WebSession) -> str:
    """Sign out: the session's row deleted; the ``Set-Cookie`` value that clears the cookie."""
    await request.session.server.store.delete_web_session(session.token_hash)
    return clear_cookie(request, SESSION)
