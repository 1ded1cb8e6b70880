"""An asynchronous ACME client (RFC 8555): directory, nonces, account, order, challenges,
finalization and download, over httpx.

Why not the ``acme`` package (certbot's): it is synchronous (requests) and would take a
thread per order; this server is anyio throughout, and the protocol's client side is small.
The signing is josepy's (``jws.py``); this module is the HTTP side:

* Every POST carries a nonce from the server (6.5). A nonce comes from ``HEAD newNonce`` or
  from the ``Replay-Nonce`` header of the previous answer; a ``badNonce`` error (which a
  server may send for any nonce) is retried with the fresh nonce that error carries.
* Errors are problem documents (``application/problem+json``, RFC 7807, 6.7): ``AcmeProblem``
  keeps the type, detail, subproblems and ``Retry-After``, so the renewal task can say what
  went wrong and when to try again (``rateLimited`` answers carry a Retry-After, 6.6).
* Resources move by polling (7.5.1, 7.4): an authorization from pending to valid after the
  challenge is answered, an order from ready to processing to valid after finalization; the
  server's ``Retry-After`` says how long to wait between polls (bounded here both ways).
* Every answer is read up to ``MAX_RESPONSE`` bytes, and every request has a timeout.
"""

from __future__ import annotations

import email.utils
import json
import logging
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    import httpx

from stalwart_py.acme.jws import AccountKey, b64url, external_account_binding

log = logging.getLogger("stalwart_py.acme")
# httpx logs every request at INFO (and httpcore every step at DEBUG): the renewal task's own
# lines say what the exchange did, so those would only repeat it, with URLs, in the server log
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)

MAX_RESPONSE = 1024 * 1024  # a certificate chain or a JSON resource is a few KB
BAD_NONCE_RETRIES = 5
POLL_MIN, POLL_MAX = 0.5, 60.0  # bounds on one wait between polls, whatever Retry-After says
ERROR_PREFIX = "urn:ietf:params:acme:error:"


class AcmeError(Exception):
    """Something the ACME exchange cannot go on from (not a problem document: a transport
    failure, an answer that is not what RFC 8555 says, a timeout)."""

    retry_after: float | None = None


class AcmeProblem(AcmeError):
    """A problem document from the ACME server (RFC 8555 6.7)."""

    def __init__(
        self,
        type_: str,
        detail: str,
        status: int | None = None,
        *,
        subproblems: list[dict[str, Any]] | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.type = type_
        self.detail = detail
        self.status = status
        self.subproblems = subproblems or []
        self.retry_after = retry_after
        super().__init__(self.describe())

    @property
    def short_type(self) -> str:
        """``rejectedIdentifier`` for ``urn:ietf:params:acme:error:rejectedIdentifier``."""
        return self.type.removeprefix(ERROR_PREFIX)

    def describe(self) -> str:
        text = f"{self.short_type}: {self.detail}" if self.detail else self.short_type
        for sub in self.subproblems:
            ident = sub.get("identifier", {}).get("value", "?")
            kind = str(sub.get("type", "")).removeprefix(ERROR_PREFIX)
            text += f"; {ident}: {kind} {sub.get('detail', '')}".rstrip()
        return text

    @classmethod
    def from_document(
        cls, document: Any, status: int | None = None, retry_after: float | None = None
    ) -> AcmeProblem:
        if not isinstance(document, dict):
            return cls("about:blank", f"HTTP {status}", status, retry_after=retry_after)
        subproblems = document.get("subproblems")
        return cls(
            str(document.get("type", "about:blank")),
            str(document.get("detail", "")),
            status,
            subproblems=subproblems if isinstance(subproblems, list) else None,
            retry_after=retry_after,
        )


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (RFC 9110 10.2.3): delta-seconds or an
    HTTP-date; None when absent or unreadable; never negative."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is GMT
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(slots=True)
class Answer:
    """One HTTP answer of the ACME server, already read."""

    status: int
    headers: httpx.Headers
    body: bytes

    @property
    def location(self) -> str | None:
        return self.headers.get("location")

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("retry-after"))

    def json(self) -> dict[str, Any]:
        try:
            data = json.loads(self.body)
        except ValueError:
            raise AcmeError("the ACME server answered with something that is not JSON") from None
        if not isinstance(data, dict):
            raise AcmeError("the ACME server answered with JSON that is not an object")
        return data


@dataclass(slots=True)
class Order:
    url: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return str(self.data.get("status", ""))


class AcmeClient:
    """One ACME server, one account key. Use as ``async with AcmeClient(...) as client``."""

    def __init__(
        self,
        directory_url: str,
        key: AccountKey,
        *,
        ca_file: Path | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.directory_url = directory_url
        self.key = key
        self.account_url: str | None = None
        verify: ssl.SSLContext | bool = True
        if ca_file is not None:
            verify = ssl.create_default_context(cafile=str(ca_file))
        # imported here, on the first order: httpx (with the rich console its CLI pulls in) is
        # a fifth of a server start's imports, and most starts order nothing
        import httpx

        self._http = httpx.AsyncClient(
            verify=verify,
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": "stalwart-py-acme"},
            follow_redirects=False,
        )
        self._directory: dict[str, Any] | None = None
        self._nonce: str | None = None

    async def __aenter__(self) -> AcmeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    # -- transport ---------------------------------------------------------------------------

    async def _send(self, method: str, url: str, **kwargs: Any) -> Answer:
        import httpx  # loaded by __init__ already

        try:
            async with self._http.stream(method, url, **kwargs) as response:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_RESPONSE:
                        raise AcmeError(f"the answer of {url} is over {MAX_RESPONSE} bytes")
        except httpx.HTTPError as exc:
            raise AcmeError(f"cannot reach the ACME server at {url}: {exc}") from None
        if nonce := response.headers.get("replay-nonce"):
            self._nonce = nonce
        return Answer(response.status_code, response.headers, bytes(body))

    async def directory(self) -> dict[str, Any]:
        """The directory (7.1.1): the URLs of newNonce, newAccount, newOrder, and ``meta``."""
        if self._directory is None:
            answer = await self._send("GET", self.directory_url)
            if answer.status != 200:
                raise AcmeError(f"the ACME directory {self.directory_url} said {answer.status}")
            data = answer.json()
            for name in ("newNonce", "newAccount", "newOrder"):
                if not isinstance(data.get(name), str):
                    raise AcmeError(f"the ACME directory has no {name}")
            self._directory = data
        return self._directory

    async def _fresh_nonce(self) -> str:
        if self._nonce is None:
            url = (await self.directory())["newNonce"]
            await self._send("HEAD", url)
            if self._nonce is None:
                raise AcmeError("the ACME server gave no Replay-Nonce")
        nonce, self._nonce = self._nonce, None  # each nonce is used once
        return nonce

    async def post(
        self, url: str, payload: Any, *, use_kid: bool = True, accept: str | None = None
    ) -> Answer:
        """A signed POST (``payload`` None: POST-as-GET); AcmeProblem on an error answer."""
        if use_kid and self.account_url is None:
            raise AcmeError("no ACME account yet (register first)")
        headers = {"Content-Type": "application/jose+json"}
        if accept:
            headers["Accept"] = accept
        for _attempt in range(BAD_NONCE_RETRIES):
            nonce = await self._fresh_nonce()
            body = self.key.sign(url, payload, nonce, self.account_url if use_kid else None)
            answer = await self._send("POST", url, content=json.dumps(body), headers=headers)
            if answer.status < 400:
                return answer
            problem = self._problem(answer)
            if problem.short_type != "badNonce":
                raise problem
            log.debug("ACME server refused a nonce at %s; retrying with a fresh one", url)
        raise problem

    @staticmethod
    def _problem(answer: Answer) -> AcmeProblem:
        try:
            document: Any = json.loads(answer.body)
        except ValueError:
            document = None
        return AcmeProblem.from_document(document, answer.status, answer.retry_after)

    # -- account -----------------------------------------------------------------------------

    async def register(self, contact: list[str], eab: tuple[str, str] | None = None) -> str:
        """Find or create the account of this key (7.3); returns and remembers its URL.

        Terms of service are agreed to: configuring an ``[acme]`` section is the operator's
        agreement. ``eab`` = (key id, HMAC key) when the CA requires external binding."""
        directory = await self.directory()
        url = directory["newAccount"]
        payload: dict[str, Any] = {"termsOfServiceAgreed": True, "contact": contact}
        if eab is not None:
            payload["externalAccountBinding"] = external_account_binding(
                self.key, eab[0], eab[1], url
            )
        elif directory.get("meta", {}).get("externalAccountRequired"):
            raise AcmeError(
                "this ACME server requires external account binding: set eab.kid and eab.hmac-key"
            )
        answer = await self.post(url, payload, use_kid=False)
        if not answer.location:
            raise AcmeError("the ACME server gave no account URL")
        self.account_url = answer.location
        return answer.location

    # -- orders ------------------------------------------------------------------------------

    async def new_order(self, domains: list[str]) -> Order:
        """Ask for a certificate for ``domains`` (7.4)."""
        url = (await self.directory())["newOrder"]
        payload = {"identifiers": [{"type": "dns", "value": d} for d in domains]}
        answer = await self.post(url, payload)
        if not answer.location:
            raise AcmeError("the ACME server gave no order URL")
        return Order(answer.location, answer.json())

    async def get(self, url: str) -> Answer:
        """POST-as-GET (6.3): how every resource is read."""
        return await self.post(url, None)

    async def answer_challenge(self, url: str) -> None:
        """Tell the server the challenge is ready to be checked (7.5.1): POST ``{}``."""
        await self.post(url, {})

    async def poll(self, url: str, done: set[str], *, timeout: float, what: str) -> dict[str, Any]:
        """Read ``url`` until its status is in ``done`` or ``invalid``; Retry-After paces it."""
        wait = POLL_MIN
        with anyio.fail_after(timeout):
            while True:
                answer = await self.get(url)
                data = answer.json()
                status = data.get("status")
                if status in done or status == "invalid":
                    return data
                delay = answer.retry_after
                await anyio.sleep(min(POLL_MAX, max(POLL_MIN, delay if delay else wait)))
                wait = min(POLL_MAX, wait * 2)
        raise AssertionError(what)  # pragma: no cover  (fail_after raises first)

    async def finalize(self, order: Order, csr_der: bytes, *, timeout: float) -> Order:
        """Send the CSR (7.4) and wait until the certificate is issued."""
        answer = await self.post(order.data["finalize"], {"csr": b64url(csr_der)})
        order.data = answer.json()
        if order.status not in ("valid", "invalid"):
            order.data = await self.poll(
                order.url, {"valid"}, timeout=timeout, what="the order's certificate"
            )
        if order.status != "valid":
            raise AcmeProblem.from_document(
                order.data.get("error") or {"type": "about:blank", "detail": "order invalid"}
            )
        return order

    async def certificate(self, order: Order) -> bytes:
        """The PEM chain of a valid order (7.4.2): leaf first, then the issuers."""
        url = order.data.get("certificate")
        if not isinstance(url, str):
            raise AcmeError("a valid order without a certificate URL")
        answer = await self.post(url, None, accept="application/pem-certificate-chain")
        if b"-----BEGIN CERTIFICATE-----" not in answer.body:
            raise AcmeError("the certificate download is not a PEM chain")
        return answer.body
