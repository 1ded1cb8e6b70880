"""The ACME side of the HTTP listener: HTTP-01 answers at /.well-known/acme-challenge/<token>
(RFC 8555 8.3) served without credentials, over plain HTTP, from the files the renewal task
writes; and POST /api/certificates/{id}/renew for an id that is not configured."""

from __future__ import annotations

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
    data_dir = server.context.config.storage.data_dir
    challenges.publish_http01(data_dir, TOKEN, f"{TOKEN}.thumbprint")
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
        challenges.withdraw_http01(data_dir, TOKEN)
        assert anonymous.get(f"/.well-known/acme-challenge/{TOKEN}").status == 404


def test_renew_of_an_unconfigured_id_is_404_and_needs_an_admin(server):
    with ApiClient(server.address("http"), auth=ADMIN, referee=REFEREE) as admin:
        answer = admin.post("/api/certificates/nothing/renew")
        assert answer.status == 404
        assert 'no [acme."nothing"]' in answer.json["error"]
        assert admin.post("/api/certificates/nothing/renew", auth=False).status == 401
