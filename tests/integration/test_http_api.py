"""The admin API over real sockets: directory, listeners at run time, reload, the effective
configuration, the queue and reports, and who may use it (Basic, TLS, throttling)."""

from __future__ import annotations

import json

import pytest

from protocols.http import Http
from stalwart_py.config import explain_json
from tests.support.clients import LineClient
from tests.support.http import ADMIN, BASE, USER, ApiClient, Referee, http_listener, start_http
from tests.support.servers import write_config

REFEREE = Referee(Http().app.document)
PROBE = '[server.listener.probe]\nbind = "127.0.0.1:0"\nprotocol = "probe"\n\n'


@pytest.fixture
def server(start_server):
    return start_http(start_server, extra=PROBE)


@pytest.fixture
def admin(server):
    with ApiClient(server.address("http"), auth=ADMIN, referee=REFEREE) as client:
        yield client


def test_accounts_create_read_update_delete(server, admin):
    created = admin.post(
        "/api/accounts",
        {"address": "Carol@Example.Test", "password": "carol-password", "quota-bytes": 5000},
    )
    assert created.status == 201
    assert created.headers["location"] == "/api/accounts/carol@example.test"
    assert created.json["address"] == "carol@example.test"
    assert created.json["quota-bytes"] == 5000 and created.json["admin"] is False
    again = admin.post("/api/accounts", {"address": "carol@example.test", "password": "x" * 9})
    assert again.status == 409
    assert (
        admin.post("/api/accounts", {"address": "d@nowhere.test", "password": "x" * 9})
        .json["error"]
        .startswith("nowhere.test is not a local domain")
    )
    short = admin.post("/api/accounts", {"address": "e@example.test", "password": "short"})
    assert (short.status, short.json["error"]) == (400, "body.password: at least 8 characters")
    assert admin.post("/api/accounts", {"address": "e@example.test"}).json == {
        "error": "body: password is required"
    }
    listed = admin.get("/api/accounts").json["accounts"]
    assert {a["address"] for a in listed} == {
        "admin@mail.example.test",  # made by the server at its first start
        ADMIN[0],
        USER[0],
        "carol@example.test",
    }
    assert admin.get("/api/accounts/carol%40example.test").json["quota-bytes"] == 5000
    changed = admin.request(
        "PATCH",
        "/api/accounts/carol@example.test",
        {"quota-bytes": None, "quota-messages": 10, "admin": True},
    )
    assert changed.status == 200
    assert (changed.json["quota-bytes"], changed.json["quota-messages"]) == (None, 10)
    assert changed.json["admin"] is True
    assert admin.request("DELETE", "/api/accounts/carol@example.test").status == 204
    assert admin.get("/api/accounts/carol@example.test").status == 404
    assert admin.request("DELETE", "/api/accounts/carol@example.test").status == 404


def test_a_changed_password_takes_effect_at_once(server, admin):
    with ApiClient(server.address("http"), auth=USER, referee=REFEREE) as user:
        assert user.get("/api/domains").status == 403  # verified (and remembered), not admin
        assert (
            admin.request(
                "PATCH",
                f"/api/accounts/{USER[0]}",
                {"password": "new-user-password", "admin": True},
            ).status
            == 200
        )
        assert user.get("/api/domains").status == 401  # the remembered password is void
        assert user.get("/api/domains", auth=(USER[0], "new-user-password")).status == 200


def test_an_administrator_cannot_demote_or_delete_themselves(admin):
    demote = admin.request("PATCH", f"/api/accounts/{ADMIN[0]}", {"admin": False})
    assert (demote.status, demote.json["error"]) == (
        409,
        "you cannot take away your own administrator right",
    )
    assert admin.request("DELETE", f"/api/accounts/{ADMIN[0]}").status == 409
    assert admin.get(f"/api/accounts/{ADMIN[0]}").json["admin"] is True


def test_domains_and_aliases(admin):
    assert admin.post("/api/domains", {"name": "Sales.Test"}).json["name"] == "sales.test"
    assert admin.post("/api/domains", {"name": "sales.test"}).status == 409
    assert "sales.test" in {d["name"] for d in admin.get("/api/domains").json["domains"]}
    first = admin.post("/api/aliases", {"address": "team@sales.test", "targets": [USER[0]]})
    assert first.status == 201
    more = admin.post("/api/aliases", {"address": "team@sales.test", "targets": ["x@far.test"]})
    assert more.status == 200
    assert sorted(more.json["targets"]) == sorted([USER[0], "x@far.test"])
    catch_all = admin.post("/api/aliases", {"address": "@sales.test", "targets": [USER[0]]})
    assert catch_all.status == 201
    assert admin.get("/api/aliases/@sales.test").json["targets"] == [USER[0]]
    assert (
        admin.post("/api/accounts", {"address": "z@sales.test", "password": "z" * 8}).status == 201
    )
    in_use = admin.request("DELETE", "/api/domains/sales.test")
    assert (in_use.status, in_use.json["error"]) == (
        409,
        "domain sales.test still has accounts; delete them first",
    )
    assert admin.request("DELETE", "/api/accounts/z@sales.test").status == 204
    assert admin.request("DELETE", "/api/aliases/team@sales.test?target=x@far.test").status == 204
    assert admin.get("/api/aliases/team@sales.test").json["targets"] == [USER[0]]
    assert (
        admin.request("DELETE", "/api/aliases/team@sales.test?target=nobody@x.test").status == 404
    )
    assert admin.request("DELETE", "/api/aliases/team@sales.test").status == 204
    assert admin.get("/api/aliases/team@sales.test").status == 404
    assert admin.request("DELETE", "/api/domains/sales.test").status == 204
    assert admin.get("/api/aliases").json == {"aliases": []}  # the catch-all went with it
    assert admin.request("DELETE", "/api/domains/sales.test").status == 404
    bad = admin.post("/api/aliases", {"address": "x@nowhere.test", "targets": [USER[0]]})
    assert bad.status == 422


def test_a_disabled_listener_refuses_new_connections_and_keeps_its_sessions(server, admin):
    [probe] = [
        item for item in admin.get("/api/listeners").json["listeners"] if item["id"] == "probe"
    ]
    host, port = server.address("probe")
    assert probe["bind"] == [f"{host}:{port}"] and probe["enabled"] is True
    assert probe["protocol"] == "probe" and probe["tls"] == "none"
    with LineClient(server.address("probe")) as session:
        session.info()
        disabled = admin.post("/api/listeners/probe/disable")
        assert disabled.status == 200 and disabled.json["enabled"] is False
        assert disabled.json["open-connections"] == 1
        with LineClient(server.address("probe")) as refused:
            assert refused.readline() == b"REFUSED disabled\n"
        session.send(b"still here\n")  # the established session goes on
        assert session.readline() == b"still here\n"
    enabled = admin.post("/api/listeners/probe/enable")
    assert enabled.json["enabled"] is True
    with LineClient(server.address("probe")) as client:
        assert client.info()["listener"] == "probe"
    assert admin.post("/api/listeners/nope/disable").status == 404
    assert admin.get("/api/listeners/nope").status == 404


def test_a_disabled_http_listener_answers_503(start_server):
    server = start_http(start_server, extra=http_listener("other"))
    with ApiClient(server.address("http"), auth=ADMIN, referee=REFEREE) as admin:
        assert admin.post("/api/listeners/other/disable").status == 200
        with ApiClient(server.address("other")) as client:
            answer = client.get("/healthz")
            assert answer.status == 503
            assert answer.json == {"error": "Service temporarily unavailable", "reason": "disabled"}
        assert admin.post("/api/listeners/other/enable").status == 200
        with ApiClient(server.address("other")) as client:
            assert client.get("/healthz").status == 200


def test_reload_with_a_valid_and_an_invalid_file(server, admin, tmp_path):
    config = BASE + http_listener() + PROBE
    write_config(
        tmp_path, config + '[server.listener.extra]\nbind = "127.0.0.1:0"\nprotocol = "probe"\n'
    )
    answer = admin.post("/api/reload")
    assert answer.status == 200
    assert answer.json == {
        "changed": True,
        "added": ["extra"],
        "removed": [],
        "rebound": [],
        "updated": [],
        "re-enabled": [],
    }
    ids = {item["id"] for item in admin.get("/api/listeners").json["listeners"]}
    assert ids == {"http", "probe", "extra"}
    write_config(tmp_path, config + "[server.listener.broken]\nprotocol = 7\n")
    failed = admin.post("/api/reload")
    assert failed.status == 422
    assert failed.json["changed"] is False
    assert failed.json["error"] == "the configuration is invalid; nothing changed"
    assert any("server.listener.broken.protocol" in e for e in failed.json["errors"])
    ids = {item["id"] for item in admin.get("/api/listeners").json["listeners"]}
    assert ids == {"http", "probe", "extra"}  # nothing changed
    write_config(
        tmp_path, config + '[server.listener.extra]\nbind = "127.0.0.1:0"\nprotocol = "probe"\n'
    )
    assert admin.post("/api/reload").json["changed"] is False


def test_the_effective_configuration_is_explain_as_json(server, admin):
    answer = admin.get("/api/config/effective")
    assert answer.json == json.loads(json.dumps(explain_json(server.context.config)))
    [http] = [item for item in answer.json["listeners"] if item["id"] == "http"]
    assert http["settings"]["hostname"] == {"value": "mail.example.test", "origin": "[server]"}
    assert http["settings"]["http.max-body-size"] == {
        "value": 25 * 1024 * 1024,
        "origin": "default",
    }


def test_the_queue_and_the_reports(server, admin):
    injected = admin.post(
        "/api/inject", {"from": "a@example.test", "to": ["x@far.test", "y@far.test"], "text": "hi"}
    )
    assert [r["message"] for r in injected.json["results"]] == ["Queued", "Queued"]
    [entry] = admin.get("/api/queue").json["messages"]
    assert entry["from"] == "a@example.test" and entry["source"] == "http"
    assert [r["address"] for r in entry["recipients"]] == ["x@far.test", "y@far.test"]
    assert admin.get(f"/api/queue/{entry['id']}").json == entry
    assert admin.post(f"/api/queue/{entry['id']}/retry").json == {"recipients": 2}
    assert admin.post("/api/queue/retry").json == {"recipients": 2}
    assert admin.get("/api/queue?limit=0").status == 400
    assert admin.request("DELETE", f"/api/queue/{entry['id']}").status == 204
    assert admin.get(f"/api/queue/{entry['id']}").status == 404
    assert admin.post(f"/api/queue/{entry['id']}/retry").status == 404
    assert admin.request("DELETE", f"/api/queue/{entry['id']}").status == 404
    assert admin.get("/api/queue/nonsense").status == 404
    # /api/queue/retry is the retry-all resource: other methods are 405, not a message "retry"
    for method in ("GET", "DELETE", "HEAD"):
        answer = admin.request(method, "/api/queue/retry")
        assert (answer.status, answer.headers["allow"]) == (405, "POST")
    for id_ in ("99999999999999999999", "%C2%B2", "0"):  # past SQLite's integers, "²", zero
        assert admin.get(f"/api/queue/{id_}").status == 404
        assert admin.post(f"/api/queue/{id_}/retry").status == 404
        assert admin.request("DELETE", f"/api/queue/{id_}").status == 404
    assert admin.get("/api/queue?limit=%C2%B2").status == 400
    summary = json.dumps({"status": "5.1.1", "recipient": "x@far.test"})
    store = server.context.store
    server.run(store.add_report, "dsn", "far.test", "mailer-daemon@far.test", summary, b"report")
    [report] = admin.get("/api/reports?limit=5").json["reports"]
    assert report["kind"] == "dsn" and report["domain"] == "far.test"
    assert report["summary"] == {"status": "5.1.1", "recipient": "x@far.test"}


HOSTILE_DOMAINS = ["e.x/../../../../evil", "..", "a/b.example", "e\x01x.test", "crlf\r\n.test"]
HOSTILE_ADDRESSES = [
    "../../etc/passwd@example.test",
    "a\x00b@example.test",
    "crlf\r\nx@example.test",
]


def test_hostile_names_are_refused_with_the_reason(admin):
    """The field failures: each of these was answered 201 and stored."""
    for name in HOSTILE_DOMAINS:
        answer = admin.post("/api/domains", {"name": name})
        assert answer.status == 400 and "not a valid domain name" in answer.json["error"], name
    for address in HOSTILE_ADDRESSES:
        answer = admin.post("/api/accounts", {"address": address, "password": "long-enough"})
        assert answer.status == 400 and "the local part" in answer.json["error"], address
        answer = admin.post("/api/aliases", {"address": address, "targets": [USER[0]]})
        assert answer.status == 400 and "the local part" in answer.json["error"], address
        answer = admin.post("/api/aliases", {"address": "x@example.test", "targets": [address]})
        assert answer.status == 400 and "the local part" in answer.json["error"], address
    # what the schema's format takes but a directory name may not be: an address literal
    answer = admin.post("/api/accounts", {"address": "a@[192.0.2.1]", "password": "long-enough"})
    assert (answer.status, answer.json["error"]) == (
        422,
        "'a@[192.0.2.1]': an address literal names no mailbox here",
    )
    assert {d["name"] for d in admin.get("/api/domains").json["domains"]} == {
        "example.test",
        "mail.example.test",
    }
    assert len(admin.get("/api/accounts").json["accounts"]) == 3
    assert admin.get("/api/aliases").json == {"aliases": []}


SASLPREP_REFUSED = {
    "nul\u0000-password": "U+0000",  # a control character (RFC 3454 C.2.1)
    "c1\u0083-password": "U+0083",  # a C1 control (C.2.2)
    "ltr\u200e-password": "U+200E",  # a left-to-right mark (C.8)
}


def test_a_password_saslprep_refuses_is_422_with_the_reason(server, admin):
    """The field failure: these answered 500 (the hash refused them after every check)."""
    for password, code in SASLPREP_REFUSED.items():
        for method, path, body in (
            ("POST", "/api/accounts", {"address": "p@example.test", "password": password}),
            ("PATCH", f"/api/accounts/{USER[0]}", {"password": password}),
        ):
            answer = admin.request(method, path, body)
            assert answer.status == 422, (method, code, answer.body)
            assert answer.json["error"] == (
                f"the password is not allowed: SASLprep prohibits the character {code} (RFC 4013)"
            )
    # soft hyphens are mapped to nothing: eight of them are an empty password
    for method, path, body in (
        ("POST", "/api/accounts", {"address": "p@example.test", "password": "\u00ad" * 8}),
        ("PATCH", f"/api/accounts/{USER[0]}", {"password": "\u00ad" * 8}),
    ):
        answer = admin.request(method, path, body)
        assert (answer.status, answer.json["error"]) == (
            422,
            "the password must have at least 8 characters after SASLprep (RFC 4013), not 0",
        )
    assert admin.get("/api/accounts/p@example.test").status == 404
    with ApiClient(server.address("http"), auth=USER) as user:  # its password is unchanged
        assert user.get("/api/accounts").status == 403


def test_the_document_states_the_configured_password_length(start_server):
    server = start_http(start_server, extra="[directory]\nmin-password-length = 12\n\n")
    with ApiClient(server.address("http"), auth=ADMIN) as admin:
        document = admin.get("/api/openapi.json", auth=False).json
        for name in ("NewAccount", "AccountUpdate"):
            password = document["components"]["schemas"][name]["properties"]["password"]
            assert password["minLength"] == 12
        answer = admin.post("/api/accounts", {"address": "p@example.test", "password": "x" * 11})
        assert (answer.status, answer.json["error"]) == (
            400,
            "body.password: at least 12 characters",
        )
        answer = admin.post("/api/accounts", {"address": "p@example.test", "password": "x" * 12})
        assert answer.status == 201


def test_bodies_are_checked_against_their_schema(admin):
    assert admin.post("/api/domains", {"name": "x.test", "extra": 1}).json == {
        "error": "body: unknown field 'extra' (known: name)"
    }
    assert admin.post("/api/domains", {"name": 5}).json == {"error": "body.name: expected a string"}
    answer = admin.post(
        "/api/domains", raw=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert answer.status == 400 and answer.json["error"].startswith("the body is not JSON")
    answer = admin.post("/api/domains", raw=b"name=x", headers={"Content-Type": "text/plain"})
    assert (answer.status, answer.json["error"]) == (
        415,
        "expected application/json, got text/plain",
    )


def test_plain_http_credentials_only_from_allowed_networks(start_server, server_cert, client_tls):
    cert, key = server_cert
    https = http_listener(
        "https",
        **{
            "tls.implicit": "true",
            "tls.certificate": f'"{cert}"',
            "tls.private-key": f'"{key}"',
            "http.allow-plaintext-from": "[]",
        },
    )
    server = start_http(start_server, extra=https, **{"http.allow-plaintext-from": "[]"})
    with ApiClient(server.address("http"), auth=ADMIN, referee=REFEREE) as plain:
        refused = plain.get("/api/accounts")
        assert refused.status == 403
        assert refused.json == {
            "error": "use HTTPS: credentials are not accepted over plain HTTP here"
        }
        assert "www-authenticate" not in refused.headers
        assert plain.get("/healthz").status == 200
    with ApiClient(server.address("https"), auth=ADMIN, referee=REFEREE, tls=client_tls) as secure:
        assert secure.get("/api/accounts").status == 200


def test_too_many_failures_are_throttled(start_server):
    server = start_http(
        start_server,
        base=BASE.replace('block-time = "0s"', 'max-failures-per-address = 3\nblock-time = "60s"'),
    )
    with ApiClient(server.address("http"), auth=(ADMIN[0], "wrong"), referee=REFEREE) as client:
        statuses = [client.get("/api/domains").status for _ in range(4)]
        assert statuses == [401, 401, 401, 429]
        answer = client.get("/api/domains", auth=ADMIN)  # even the right password, for now
        assert answer.status == 429 and answer.headers["retry-after"] == "60"


def test_metrics_may_be_public_for_a_peer_scope(start_server):
    server = start_http(
        start_server,
        extra='[server.listener.http.peer."127.0.0.0/8"]\nhttp.public-metrics = true\n',
    )
    with ApiClient(server.address("http"), referee=REFEREE) as client:
        assert client.get("/metrics").status == 200
        assert client.get("/api/accounts").status == 401


def test_json_nested_too_deeply_is_a_400(admin):
    answer = admin.post(
        "/api/domains", raw=b"[" * 100000, headers={"Content-Type": "application/json"}
    )
    assert (answer.status, answer.json) == (400, {"error": "the body's JSON is nested too deeply"})
