"""A browser-less client of the web pages (``protocols/http/web``): httpx with a cookie jar,
which fetches a form's CSRF token before posting it, and signs in (with the second factor
when a TOTP secret is given).

    web = WebClient(server.address("http"))
    web.sign_in("alice@example.test", "alice's password")
    page = web.get("/account/")
    answer = web.submit("/account/password", {"current": ..., "new": ..., "confirm": ...})
"""

from __future__ import annotations

import html
import re
import ssl
import time
from typing import Any

import httpx

from tests.support.totp import rfc6238

TIMEOUT = 20.0
_CSRF = re.compile(r'name="csrf" value="([^"]*)"')


def csrf_of(page: str) -> str:
    """The CSRF token of the first form on ``page``."""
    found = _CSRF.search(page)
    assert found is not None, f"no CSRF field on the page: {page[:500]}"
    return html.unescape(found.group(1))


class WebClient:
    """One browser: a cookie jar and keep-alive connections; redirects are not followed, so
    that each answer can be looked at."""

    def __init__(
        self,
        address: tuple[str, int] | Any,
        *,
        tls: ssl.SSLContext | bool | None = None,
        host: str | None = None,
    ) -> None:
        ip, port = address
        scheme = "https" if tls else "http"
        self.origin = f"{scheme}://{host or ip}:{port}"
        self.http = httpx.Client(
            base_url=self.origin,
            follow_redirects=False,
            timeout=TIMEOUT,
            verify=tls if isinstance(tls, ssl.SSLContext) else False,
        )

    def __enter__(self) -> WebClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.http.close()

    def get(self, path: str, **options: Any) -> httpx.Response:
        return self.http.get(path, **options)

    def post(
        self, path: str, fields: dict[str, Any], *, origin: bool = True, **options: Any
    ) -> httpx.Response:
        """POST a form as it is (a browser's ``Origin`` with it, unless ``origin`` is
        False)."""
        headers = dict(options.pop("headers", {}))
        if origin:
            headers.setdefault("Origin", self.origin)
        return self.http.post(path, data=fields, headers=headers, **options)

    def submit(
        self, path: str, fields: dict[str, Any], *, form_page: str | None = None
    ) -> httpx.Response:
        """POST ``fields`` to ``path`` with the CSRF token of ``form_page`` (``path`` by
        default), as a browser submits the form it shows."""
        page = self.get(form_page or path)
        assert page.status_code == 200, (page.status_code, page.text[:300])
        return self.post(path, {"csrf": csrf_of(page.text), **fields})

    def sign_in(
        self,
        address: str,
        password: str,
        *,
        totp_secret: str | None = None,
        next_page: str = "/account/",
    ) -> httpx.Response:
        """Sign in through the form (and the code's page when ``totp_secret`` is given);
        the last answer, a 303 to ``next_page`` when it worked."""
        answer = self.submit(
            "/account/sign-in",
            {"address": address, "password": password, "next": next_page},
            form_page=f"/account/sign-in?next={next_page}",
        )
        if totp_secret is None or answer.status_code != 303:
            return answer
        location = answer.headers["location"]
        assert location.startswith("/account/sign-in/code"), location
        return self.submit(location, {"code": rfc6238(totp_secret, int(time.time()) // 30)})

    def cookie(self, name: str) -> str | None:
        for cookie in self.http.cookies.jar:
            if cookie.name == name:
                return cookie.value
        return None
