"""The ACME side of the HTTP listener: HTTP-01 answers at /.well-known/acme-challenge/<token>
(RFC 8555 8.3) served without credentials, over plain HTTP, from what the renewal task keeps
in the store; and POST /api/certificates/{id}/renew for an id that is not configured."""

from __future__ import annotations

import socket
import time

import pytest

from protocols.http import Http
from stalwart_py.acme import challenges
from tests.support.http import ADMIN, ApiClient, Referee, start_http

REFEREE = Referee(Http().app.document)
TOKEN = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"


@pytest.fixture
def server(start_server):
    return start_http(start_server)


def test_http01_answer_is_public_and_plain(server):
    store = server.context.store
    server.run(challenges.publish_http01, store, TOKEN, f"{TOKEN}.thumbprint")
    with ApiClient(server.address("http")) as anonymous:
        answer = anonymous.get(f"/.well-known/acme-challenge/{TOKEN}", auth=False)
        assert answer.status == 200
        assert answer.body == f"{TOKEN}.thumbprint".encode()
        assert anonymous.request("HEAD", f"/.well-known/acme-challenge/{TOKEN}").status == 200
        refused = anonymous.post(f"/.well-known/acme-challenge/{TOKEN}", auth=False)
        assert refused.status == 405 and refused.headers["allow"] == "GET, HEAD"
        assert anonymous.get("/.well-known/acme-challenge/unknown", auth=False).status == 404
        escape = anonymous.get("/.well-known/acme-challenge/..%2F..%2Fstalwart-py.pid")
        assert escape.status == 404
        server.run(challenges.withdraw_http01, store, TOKEN)
        assert anonymous.get(f"/.well-known/acme-challenge/{TOKEN}").status == 404


def test_renew_of_an_unconfigured_id_is_404_and_needs_an_admin(server):
    with ApiClient(server.address("http"), auth=ADMIN, referee=REFEREE) as admin:
        answer = admin.post("/api/certificates/nothing/renew")
        assert answer.status == 404
        assert 'no [acme."nothing"]' in answer.json["error"]
        assert admin.post("/api/certificates/nothing/renew", auth=False).status == 401


def test_an_id_whose_first_order_failed_is_listed_with_its_error(start_server):
    with socket.socket() as unused:  # a port nothing listens on: the CA is unreachable
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    server = start_http(
        start_server,
        f"""
[acme."lab"]
directory = "https://127.0.0.1:{port}/dir"
domains = ["mail.example.test"]
challenge = "http-01"
""",
    )
    with ApiClient(server.address("http"), auth=ADMIN, referee=REFEREE) as admin:
        deadline = time.monotonic() + 10
        while True:
            listed = {c["id"]: c for c in admin.get("/api/certificates").json["certificates"]}
            if listed.get("lab", {}).get("last-error") or time.monotonic() > deadline:
                break
            time.sleep(0.05)  # ok: polling the API for the first attempt's outcome
    lab = listed["lab"]
    assert lab["source"] == "acme" and "names" not in lab
    assert lab["failures"] >= 1 and lab["last-error"]
    assert lab["next-renewal"] is not None
