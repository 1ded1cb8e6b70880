"""A client of the web pages on http.client, for what the httpx one (tests/support/web.py)
will not do: connect behind a PROXY header naming another client address (a listener that
trusts loopback then sees the connection as coming from there, 10.0.0.7 or 192.0.2.1), and
keep every ``Set-Cookie`` exactly as sent, attributes and all. A cookie jar that sends every
cookie back whatever its flags (a test looks at the flags itself); forms posted as a browser
posts them (``application/x-www-form-urlencoded``, the CSRF token from the page's hidden
``csrf`` field); redirects returned, not followed.
"""

from __future__ import annotations

import http.client
import re
import ssl
from dataclasses import dataclass, field
from html import unescape
from urllib.parse import urlencode

from tests.support.proxied import proxied_socket

TIMEOUT = 20.0
FORM_TYPE = "application/x-www-form-urlencoded"


@dataclass
class Page:
    status: int
    headers: list[tuple[str, str]]  # in order, repeated names kept (Set-Cookie)
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of a header, by case-insensitive name."""
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def location(self) -> str:
        return self.header("location") or ""

    def csrf(self) -> str:
        """The value of the page's hidden ``csrf`` field (every form of the pages has one)."""
        found = re.search(r'<input[^>]*name="csrf"[^>]*value="([^"]*)"', self.text) or re.search(
            r'<input[^>]*value="([^"]*)"[^>]*name="csrf"', self.text
        )
        assert found, f"no csrf field in the page ({self.status}): {self.text[:500]}"
        return unescape(found.group(1))


@dataclass
class Cookie:
    name: str
    value: str
    attributes: dict[str, str]  # lower-cased names; flags map to ""


def parse_set_cookie(value: str) -> Cookie:
    """RFC 6265 5.2: ``name=value; Attr; Attr=x``."""
    first, *rest = value.split(";")
    name, _, cookie_value = first.strip().partition("=")
    attributes = {}
    for part in rest:
        key, _, attribute = part.strip().partition("=")
        attributes[key.lower()] = attribute
    return Cookie(name, cookie_value, attributes)


@dataclass
class RawWebClient:
    """One browser-like client of the pages: a connection per request, a cookie jar."""

    address: tuple[str, int]
    tls: ssl.SSLContext | None = None
    proxied_from: str | None = None  # a PROXY header naming this client address
    host: str = ""  # the Host header; default the address
    cookies: dict[str, str] = field(default_factory=dict)
    set_cookies: list[Cookie] = field(default_factory=list)  # every one received, in order

    def _connection(self) -> http.client.HTTPConnection:
        host, port = self.address
        if self.tls is not None:
            return http.client.HTTPSConnection("localhost", port, context=self.tls, timeout=TIMEOUT)
        connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
        if self.proxied_from is not None:
            connection.sock = proxied_socket((host, port), self.proxied_from)
        return connection

    @property
    def origin(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{self.host_header}"

    @property
    def host_header(self) -> str:
        if self.host:
            return self.host
        host, port = self.address
        return f"localhost:{port}" if self.tls is not None else f"{host}:{port}"

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Page:
        sent = {"Host": self.host_header, **(headers or {})}
        if self.cookies and "Cookie" not in sent:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        connection = self._connection()
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            page = Page(response.status, response.getheaders(), response.read())
        finally:
            connection.close()
        for value in page.all("set-cookie"):
            cookie = parse_set_cookie(value)
            self.set_cookies.append(cookie)
            if cookie.attributes.get("max-age") == "0" or not cookie.value:
                self.cookies.pop(cookie.name, None)
            else:
                self.cookies[cookie.name] = cookie.value
        return page

    def get(self, path: str, **headers: str) -> Page:
        return self.request("GET", path, headers=headers)

    def post(
        self, path: str, fields: dict[str, str] | list[tuple[str, str]], *, origin: bool = True
    ) -> Page:
        """POST a form as a browser does (with ``Origin`` unless told not to)."""
        headers = {"Content-Type": FORM_TYPE}
        if origin:
            headers["Origin"] = self.origin
        return self.request("POST", path, urlencode(fields).encode(), headers)

    def submit(self, path: str, fields: dict[str, str], *, form_path: str | None = None) -> Page:
        """GET ``form_path`` (default ``path``) for its CSRF token, then POST ``fields`` with
        it to ``path``."""
        form = self.get(form_path or path)
        assert form.status == 200, (form.status, form.text[:300])
        return self.post(path, {**fields, "csrf": form.csrf()})

    def sign_in(self, address: str, password: str, next_path: str = "") -> Page:
        """The sign-in form, filled and posted; the answer (a redirect when signed in)."""
        fields = {"address": address, "password": password}
        if next_path:
            fields["next"] = next_path
        return self.submit("/account/sign-in", fields)

    def signed_in(self, address: str, password: str) -> RawWebClient:
        answer = self.sign_in(address, password)
        assert answer.status == 303 or answer.status == 302, (answer.status, answer.text[:400])
        return self
