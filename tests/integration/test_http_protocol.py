"""The HTTP/1.1 loop over real sockets: keep-alive, pipelining, chunked bodies, HEAD, every
limit with its status, timeouts, refusals and graceful closing."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import h11
import pytest

from tests.support.http import (
    ADMIN,
    BASE,
    ApiClient,
    RawClient,
    basic,
    get_request,
    http_listener,
    raw_response,
    read_responses,
    start_http,
)
from tests.support.servers import (
    METRICS_OF_ONE_WORKER,
    PATCHES_THE_WORKER,
    ServerProcess,
    write_config,
)


@pytest.fixture
def server(start_server):
    return start_http(
        start_server,
        **{
            "http.max-body-size": '"4K"',
            "http.max-header-size": '"2K"',
        },
    )


@pytest.mark.single_worker(METRICS_OF_ONE_WORKER)
def test_keep_alive_serves_several_requests_on_one_connection(server):
    accepted = server.context.metrics.connections_accepted.labels("http")
    before = accepted._value.get()
    with ApiClient(server.address("http"), auth=ADMIN) as client:
        for _ in range(3):
            assert client.get("/healthz").json == {"status": "ok"}
        assert client.get("/api/domains").status == 200
        assert client.get("/nowhere").status == 404
        assert client.get("/healthz").status == 200
    assert accepted._value.get() == before + 1  # one connection for all six


def test_pipelined_requests_are_answered_in_order(server):
    with RawClient(server.address("http")) as client:
        client.send_bytes(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n"
            b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        [first, second, third] = read_responses(client.sock, ["GET", "GET", "HEAD"])
        assert first[0] == 200 and json.loads(first[2]) == {"status": "ok"}
        assert second[0] == 404
        assert third[0] == 200 and third[2] == b""
        assert third[1]["content-length"] == "16"  # as for GET, but no body follows


def test_head_has_the_get_headers_and_no_body(server):
    with ApiClient(server.address("http")) as client:
        get = client.get("/readyz")
        head = client.request("HEAD", "/readyz")
        assert head.status == get.status == 200
        assert head.body == b""
        assert head.headers["content-length"] == str(len(get.body))
        assert client.get("/healthz").status == 200  # the connection is still in step


def test_a_chunked_body_is_read_whole(server):
    with ApiClient(server.address("http"), auth=ADMIN) as client:
        answer = client.post("/api/domains", {"name": "chunked.test"}, chunked=True)
        assert answer.status == 201
        assert answer.json["name"] == "chunked.test"
        assert client.get("/healthz").status == 200  # and the connection goes on


def test_a_body_over_the_limit_by_content_length_is_refused_before_it_is_read(server):
    with RawClient(server.address("http")) as client:
        client.send(
            h11.Request(
                method="POST",
                target="/api/inject",
                headers=[
                    ("Host", "x"),
                    ("Content-Length", str(4096 + 1)),
                    ("Expect", "100-continue"),
                    ("Authorization", basic(*ADMIN)),
                ],
            )
        )
        response, body = client.receive()  # no 100 Continue first: we never send the body
        assert response.status_code == 413
        assert (b"connection", b"close") in response.headers
        assert "larger than 4096 bytes" in json.loads(body)["error"]
        assert client.wait_closed() == b""


def test_a_chunked_body_over_the_limit_is_refused_when_it_crosses_it(server):
    with RawClient(server.address("http")) as client:
        client.send(
            h11.Request(
                method="POST",
                target="/api/domains",
                headers=[("Host", "x"), ("Transfer-Encoding", "chunked")],
            )
        )
        for _ in range(5):
            client.send(h11.Data(data=b"x" * 1000))
        response, _ = client.receive()
        assert response.status_code == 413
        assert client.wait_closed() == b""


def test_100_continue_is_sent_when_the_body_will_be_read(server):
    with RawClient(server.address("http")) as client:
        body = json.dumps({"name": "continue.test"}).encode()
        client.send(
            h11.Request(
                method="POST",
                target="/api/domains",
                headers=[
                    ("Host", "x"),
                    ("Content-Length", str(len(body))),
                    ("Content-Type", "application/json"),
                    ("Expect", "100-continue"),
                    ("Authorization", basic(*ADMIN)),
                ],
            )
        )
        event = client.h11.next_event()
        while event is h11.NEED_DATA:
            client.h11.receive_data(client.sock.recv(65536))
            event = client.h11.next_event()
        assert isinstance(event, h11.InformationalResponse) and event.status_code == 100
        client.send(h11.Data(data=body), h11.EndOfMessage())
        response, _ = client.receive()
        assert response.status_code == 201


def test_header_fields_over_the_limit_get_431(server):
    with RawClient(server.address("http")) as client:
        client.send_bytes(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 3000 + b"\r\n\r\n"
        )
        status, headers, _ = raw_response(client.wait_closed())
        assert status == 431
        assert headers["connection"] == "close"
    with RawClient(server.address("http")) as client:  # many small fields arriving slowly
        client.send_bytes(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        for n in range(60):
            client.send_bytes(f"X-Field-{n}: {'v' * 40}\r\n".encode())
        status, _, _ = raw_response(client.wait_closed())
        assert status == 431


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host (RFC 9112 3.2)
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"POST /api/domains HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_malformed_requests_get_400_and_a_clean_close(server, request_bytes):
    with RawClient(server.address("http")) as client:
        client.send_bytes(request_bytes)
        status, headers, body = raw_response(client.wait_closed())
        assert status == 400
        assert headers["connection"] == "close"
        assert "error" in json.loads(body)
    with ApiClient(server.address("http")) as client:
        assert client.get("/healthz").status == 200  # and the server goes on


def test_a_request_framed_both_by_content_length_and_chunked_is_refused_and_closed(server):
    """RFC 9112 6.1: the two framings may be read differently by a proxy in front, and what
    they disagree on is a smuggled request. Found answered (by the chunked framing) on a
    connection that stayed open; now 400, no second answer, and the connection closes."""
    smuggled = b"GET /api/accounts HTTP/1.1\r\nHost: x\r\n\r\n"
    chunked = b"0\r\n\r\n"
    with RawClient(server.address("http")) as client:
        client.send_bytes(
            b"POST /api/domains HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n"
            % len(chunked + smuggled)
            + chunked
            + smuggled
        )
        received = client.wait_closed()  # a timeout here: the connection stayed open
    status, headers, body = raw_response(received)
    assert status == 400
    assert headers["connection"] == "close"
    assert "Transfer-Encoding and Content-Length" in json.loads(body)["error"]
    assert received.count(b"HTTP/1.1 ") == 1  # the smuggled request was not answered


def test_method_not_allowed_names_the_allowed_ones(server):
    with ApiClient(server.address("http"), auth=ADMIN) as client:
        answer = client.request("PUT", "/api/accounts")
        assert answer.status == 405
        assert answer.headers["allow"] == "GET, HEAD, POST"
        assert client.request("DELETE", "/healthz").headers["allow"] == "GET, HEAD"


def test_http_1_0_and_connection_close_end_the_connection_after_the_answer(server):
    with RawClient(server.address("http")) as client:
        client.send_bytes(b"GET /healthz HTTP/1.0\r\n\r\n")
        status, _, body = raw_response(client.wait_closed())
        assert (status, body) == (200, b'{"status":"ok"}\n')
    with RawClient(server.address("http")) as client:
        client.send(get_request("/healthz", ("Connection", "close")), h11.EndOfMessage())
        response, _ = client.receive()
        assert response.status_code == 200
        assert (b"connection", b"close") in response.headers
        assert client.wait_closed() == b""


def test_a_request_that_does_not_arrive_in_time_gets_408(start_server):
    server = start_http(start_server, **{"http.request-timeout": '"1s"'})
    with RawClient(server.address("http")) as client:
        client.send_bytes(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and nothing more
        status, headers, _ = raw_response(client.wait_closed())
        assert status == 408
        assert headers["connection"] == "close"


def test_an_idle_connection_is_closed_silently_after_the_idle_timeout(start_server):
    server = start_http(start_server, **{"idle-timeout": '"1s"'})
    with RawClient(server.address("http")) as client:
        client.send(get_request("/healthz"), h11.EndOfMessage())
        assert client.receive()[0].status_code == 200
        assert client.wait_closed() == b""  # no 408 between requests


@pytest.mark.single_worker(PATCHES_THE_WORKER)
def test_stopping_closes_idle_connections_at_once(start_server):
    server = start_http(start_server, **{"idle-timeout": '"5m"'})
    with RawClient(server.address("http")) as client:
        client.send(get_request("/healthz"), h11.EndOfMessage())
        assert client.receive()[0].status_code == 200
        server.portal.call(server.server.stop)
        client.sock.settimeout(5)  # far less than the idle timeout or the grace period
        assert client.wait_closed() == b""


def test_over_the_listener_limit_a_client_hears_503(start_server):
    server = start_http(start_server, **{"max-connections": "1"})
    with ApiClient(server.address("http")) as first:
        assert first.get("/healthz").status == 200
        with ApiClient(server.address("http")) as second:
            answer = second.get("/healthz")
            assert answer.status == 503
            assert answer.headers["retry-after"] == "5"
            assert answer.json == {
                "error": "Too many connections, try again later",
                "reason": "listener-limit",
            }


def test_a_stream_of_junk_never_hurts_the_server(server):
    address = server.address("http")
    for junk in (b"\x00" * 5000, b"\r\n" * 3000, b"GET " + b"/" * 5000, bytes(range(256)) * 8):
        with socket.create_connection(address, timeout=20) as sock:
            sock.sendall(junk)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):
                pass
    with ApiClient(address) as client:
        assert client.get("/healthz").status == 200


def _head_awaiting_continue(client: RawClient, body: bytes) -> None:
    """Send a request head with Expect: 100-continue and wait for the 100: the server has
    read the request and owes it an answer."""
    client.send(
        h11.Request(
            method="POST",
            target="/api/domains",
            headers=[
                ("Host", "x"),
                ("Content-Length", str(len(body))),
                ("Content-Type", "application/json"),
                ("Expect", "100-continue"),
                ("Authorization", basic(*ADMIN)),
            ],
        )
    )
    event = client.h11.next_event()
    while event is h11.NEED_DATA:
        client.h11.receive_data(client.sock.recv(65536))
        event = client.h11.next_event()
    assert isinstance(event, h11.InformationalResponse) and event.status_code == 100


@pytest.mark.single_worker(PATCHES_THE_WORKER)
def test_stopping_lets_a_request_in_progress_finish_with_connection_close(start_server):
    server = start_http(start_server)
    with RawClient(server.address("http")) as client:
        body = json.dumps({"name": "late.test"}).encode()
        _head_awaiting_continue(client, body)
        server.portal.call(server.server.stop)
        client.send(h11.Data(data=body), h11.EndOfMessage())
        response, answer = client.receive()
        assert response.status_code == 201 and json.loads(answer)["name"] == "late.test"
        assert (b"connection", b"close") in response.headers
        assert client.wait_closed() == b""


@pytest.mark.single_worker(PATCHES_THE_WORKER)
def test_a_request_cut_short_by_the_end_of_the_grace_period_hears_503(start_server):
    server = start_http(
        start_server, base=BASE.replace("[server]", '[server]\nshutdown-timeout = "1s"')
    )
    with RawClient(server.address("http")) as client:
        _head_awaiting_continue(client, b"{}")
        server.portal.call(server.server.stop)  # and the body never comes
        response, answer = client.receive()
        assert response.status_code == 503
        assert json.loads(answer) == {"error": "Server shutting down", "reason": "shutdown"}
        assert client.wait_closed() == b""


def test_too_many_query_parameters_get_400(start_server):
    server = start_http(start_server)
    with RawClient(server.address("http")) as client:
        client.send(get_request("/healthz?" + "a=1&" * 1200), h11.EndOfMessage())
        response, body = client.receive()
        assert response.status_code == 400
        assert json.loads(body) == {"error": "more than 1100 query parameters"}


def test_an_absolute_form_target_is_served(server):
    with RawClient(server.address("http")) as client:
        client.send(get_request("http://mail.example.test/healthz"), h11.EndOfMessage())
        assert client.receive()[0].status_code == 200


def test_the_health_command_asks_readyz_of_a_real_server(tmp_path):
    """``stalwart-py serve`` as a child process finds the http protocol by its entry point;
    ``stalwart-py health`` (the container's HEALTHCHECK) then asks its /readyz."""
    path = write_config(tmp_path, BASE + http_listener())
    with ServerProcess(path) as server:
        result = subprocess.run(
            [sys.executable, "-m", "stalwart_py", "health", "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        with ApiClient(server.address("http")) as client:
            assert client.get("/readyz").json["status"] == "ready"
    assert "GET /readyz -> 200" in server.log()  # the debug access log line
