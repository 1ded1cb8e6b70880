"""HTTP test clients: http.client with the OpenAPI document as referee, and raw h11 exchanges.

``ApiClient`` checks every answer it gets against the server's own OpenAPI document: the
status must be documented for the operation, and a JSON body must match the documented schema
(validated by jsonschema, a full JSON Schema 2020-12 implementation).
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any

import h11
import jsonschema

TIMEOUT = 20.0


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    operation: str | None = None  # "GET /api/accounts/{address}"

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass
class Referee:
    """The OpenAPI document, to check answers against."""

    document: dict[str, Any]
    seen: set[tuple[str, int]] = field(default_factory=set)  # (operation, status)

    def __post_init__(self) -> None:
        self.templates = []
        for template, methods in self.document["paths"].items():
            pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
            for method in methods:
                self.templates.append((method.upper(), re.compile(pattern + "$"), template))
        # literal paths before templated ones: /api/queue/retry before /api/queue/{id}
        self.templates.sort(key=lambda item: item[2].count("{"))

    def operation(self, method: str, path: str) -> tuple[str, str] | None:
        """The documented operation a request is for: the most specific template matching
        the path (a literal path before a templated one, as the router does), with the
        method; None when that path does not have the method."""
        path = path.partition("?")[0]
        wanted = "GET" if method == "HEAD" else method
        matching = [item for item in self.templates if item[1].match(path)]
        for candidate, _pattern, template in matching:
            if template != matching[0][2]:
                break
            if candidate == wanted:
                return candidate, template
        return None

    def check(self, method: str, path: str, answer: Answer) -> None:
        found = self.operation(method, path)
        if found is None:
            return  # an undocumented path: the caller expects 404 or 405
        verb, template = found
        answer.operation = f"{verb} {template}"
        operation = self.document["paths"][template][verb.lower()]
        documented = operation["responses"].get(str(answer.status))
        assert documented is not None, (
            f"{answer.operation} answered {answer.status}, which its documentation does not "
            f"list ({sorted(operation['responses'])}): {answer.body[:300]!r}"
        )
        self.seen.add((answer.operation, answer.status))
        content = documented.get("content")
        if answer.status == 204 or content is None:
            assert answer.body == b""
            return
        media = answer.headers.get("content-type", "").partition(";")[0]
        assert media in content, f"{answer.operation}: {media} is not documented"
        if media == "application/json" and method != "HEAD":
            schema = {**content[media]["schema"], "components": self.document["components"]}
            jsonschema.Draft202012Validator(schema).validate(answer.json)


class ApiClient:
    """One keep-alive connection (http.client), optionally over TLS, with default credentials."""

    def __init__(
        self,
        address: tuple[str, int],
        *,
        auth: tuple[str, str] | None = None,
        referee: Referee | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        host, port = address
        if tls is not None:
            self.conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                "localhost", port, context=tls, timeout=TIMEOUT
            )
        else:
            self.conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
        self.auth = auth
        self.referee = referee

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        auth: tuple[str, str] | bool | None = True,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        chunked: bool = False,
    ) -> Answer:
        sent = dict(headers or {})
        credentials = self.auth if auth is True else auth or None
        if credentials:
            sent["Authorization"] = basic(*credentials)
        data: Any = raw
        if body is not None:
            data = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        if chunked:
            data = iter([data[i : i + 1000] for i in range(0, len(data), 1000)])
        self.conn.request(method, path, body=data, headers=sent, encode_chunked=chunked)
        response = self.conn.getresponse()
        answer = Answer(
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            response.read(),
        )
        if self.referee is not None:
            self.referee.check(method, path, answer)
        return answer

    def get(self, path: str, **options: Any) -> Answer:
        return self.request("GET", path, **options)

    def post(self, path: str, body: Any = None, **options: Any) -> Answer:
        return self.request("POST", path, body, **options)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class RawClient:
    """A socket driven by an h11 client connection, for what http.client will not send."""

    def __init__(self, address: tuple[str, int], timeout: float = TIMEOUT) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self.h11 = h11.Connection(h11.CLIENT)

    def send(self, *events: Any) -> None:
        self.sock.sendall(b"".join(self.h11.send(event) or b"" for event in events))

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(data)

    def receive(self) -> tuple[h11.Response, bytes]:
        """The next response (final, after any 1xx) with its body."""
        response = None
        body = b""
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                self.h11.receive_data(self.sock.recv(65536))
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert response is not None
                return response, body
            elif isinstance(event, h11.InformationalResponse):
                continue
            else:
                raise AssertionError(f"unexpected {event!r}")

    def wait_closed(self) -> bytes:
        """Everything the server still sends, until it closes (a timeout fails the test)."""
        data = b""
        try:
            while chunk := self.sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
        return data

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def get_request(path: str, *headers: tuple[str, str], method: str = "GET") -> h11.Request:
    return h11.Request(method=method, target=path, headers=[("Host", "test"), *headers])


def read_responses(
    sock: socket.socket, methods: list[str]
) -> list[tuple[int, dict[str, str], bytes]]:
    """Read one response per request method (pipelined requests), in order."""
    buffer = b""
    answers = []
    for method in methods:
        client = h11.Connection(h11.CLIENT)
        client.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
        client.send(h11.EndOfMessage())
        if buffer:  # (receive_data(b"") would mean the end of the stream)
            client.receive_data(buffer)
        response, body = None, b""
        while True:
            event = client.next_event()
            if event is h11.NEED_DATA:
                client.receive_data(sock.recv(65536))
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
        assert response is not None
        headers = {k.decode().lower(): v.decode() for k, v in response.headers}
        answers.append((response.status_code, headers, body))
        buffer = client.trailing_data[0]
    return answers


def raw_response(data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Parse one response from bytes a socket returned (for malformed-request tests)."""
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    client.send(h11.EndOfMessage())
    client.receive_data(data)
    response = client.next_event()
    assert isinstance(response, h11.Response), response
    body = b""
    while isinstance(event := client.next_event(), h11.Data):
        body += event.data
    headers = {k.decode().lower(): v.decode() for k, v in response.headers}
    return response.status_code, headers, body


ADMIN = ("root@example.test", "root-password")
USER = ("user@example.test", "user-password")


def http_listener(lid: str = "http", bind: str = "127.0.0.1:0", **settings: str) -> str:
    """A [server.listener.<lid>] table for the http protocol; settings are TOML values."""
    lines = [f"[server.listener.{lid}]", f'bind = "{bind}"', 'protocol = "http"']
    lines += [f"{key} = {value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n\n"


BASE = """
[server]
hostname = "mail.example.test"

[directory.throttle]
failure-delay = "0s"
block-time = "0s"  # counted, never blocked: the tests fail logins on purpose

[queue]
hold = true  # queued messages stay where the tests look for them

"""


def start_http(start_server, extra: str = "", base: str = BASE, **settings: str):
    """A server with an http listener (and what ``extra`` adds), an administrator ADMIN and
    an ordinary account USER."""
    server = start_server(base + http_listener(**settings) + extra)
    server.add_account(*ADMIN, is_admin=True)
    server.add_account(*USER)
    return server
