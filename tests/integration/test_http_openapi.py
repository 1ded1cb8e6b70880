"""The OpenAPI document: valid OpenAPI 3.1, served as generated, and true to every route.

``test_every_operation_answers_as_documented`` calls every documented operation as an
administrator, without credentials, with wrong ones, and as an ordinary account; the
``Referee`` checks each answer's status and body against the document.
"""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker
from openapi_spec_validator import validate as validate_spec

from protocols.http import Http
from protocols.http.schemas import COMPONENTS
from protocols.http.validation import FORMATS, SUPPORTED, SchemaError, keywords, validate
from tests.support.http import ADMIN, USER, ApiClient, Referee, start_http
from tests.support.totp import rfc6238

APP = Http().app
DOCUMENT = APP.document
# The formats the server asserts, with the same checks, for the full implementation.
FORMAT_CHECKER = FormatChecker(formats=())
for _name, _check in FORMATS.items():
    FORMAT_CHECKER.checks(_name, raises=ValueError)(
        lambda value, check=_check: not isinstance(value, str) or bool(check(value))
    )


def full_validator(name: str) -> Draft202012Validator:
    root = {"$ref": f"#/components/schemas/{name}", "components": {"schemas": COMPONENTS}}
    return Draft202012Validator(root, format_checker=FORMAT_CHECKER)


def test_the_document_is_valid_openapi_3_1():
    validate_spec(DOCUMENT)
    assert DOCUMENT["openapi"] == "3.1.0"


def test_every_route_is_documented_and_every_operation_is_a_route():
    documented = {
        (method.upper(), path) for path, methods in DOCUMENT["paths"].items() for method in methods
    }
    routed = {(route.method, route.template) for route in APP.router.routes}
    assert documented == routed
    for route in APP.router.routes:
        operation = DOCUMENT["paths"][route.template][route.method.lower()]
        names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]
        assert names == [s[1:-1] for s in route.segments if s.startswith("{")]


def test_the_validator_implements_every_keyword_the_schemas_use():
    used = set()
    for schema in COMPONENTS.values():
        used |= keywords(schema)
    assert used <= SUPPORTED, used - SUPPORTED


FIELD_NAMES = [
    *("address", "password", "admin", "quota-bytes", "name", "targets", "raw", "to", "x"),
    *("from", "sender", "recipients", "headers", "subject", "text", "html"),
]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**12) | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(FIELD_NAMES),
            children,
            max_size=5,
        )
    ),
    max_leaves=12,
)
REQUEST_SCHEMAS = ["NewAccount", "AccountUpdate", "NewDomain", "NewAlias", "Injection"]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(name=st.sampled_from(REQUEST_SCHEMAS), value=JSON_VALUES)
def test_request_validation_agrees_with_a_full_json_schema_implementation(name, value):
    expected = full_validator(name).is_valid(value)
    try:
        validate(value, COMPONENTS[name], COMPONENTS)
        ours = True
    except SchemaError:
        ours = False
    assert ours == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("NewAccount", {"address": "a@b.c", "password": "12345678", "quota-bytes": None}),
        ("NewAlias", {"address": "a@b.c", "targets": ["x@y.z"]}),
        ("Injection", {"from": "a@b.c", "to": ["x@y.z", "w@y.z"], "text": "hi"}),
        ("Injection", {"sender": "", "recipients": "x@y.z", "raw": "Subject: x\r\n\r\n"}),
    ],
)
def test_valid_requests_pass_both_validators(name, value):
    validate(value, COMPONENTS[name], COMPONENTS)
    full_validator(name).validate(value)


@pytest.fixture
def server(start_server):
    return start_http(
        start_server, extra='[server.listener.probe]\nbind = "127.0.0.1:0"\nprotocol = "probe"\n'
    )


def test_the_served_document_is_the_generated_one(server):
    with ApiClient(server.address("http")) as client:
        answer = client.get("/api/openapi.json", auth=None)
        assert answer.status == 200
        assert answer.json == json.loads(json.dumps(DOCUMENT))


def _prepare(server, client: ApiClient) -> dict[str, str]:
    """Objects for every path parameter: an account, a domain, an alias, a queued message."""
    assert client.post("/api/domains", {"name": "walk.test"}).status == 201
    assert (
        client.post(
            "/api/accounts", {"address": "walker@walk.test", "password": "walker-password"}
        ).status
        == 201
    )
    assert (
        client.post(
            "/api/aliases", {"address": "team@walk.test", "targets": ["walker@walk.test"]}
        ).status
        == 201
    )
    injected = client.post(
        "/api/inject", {"from": "walker@walk.test", "to": "far@remote.test", "text": "hi"}
    )
    assert injected.status == 200
    [entry] = client.get("/api/queue").json["messages"]
    app_password = client.post(
        "/api/accounts/walker@walk.test/app-passwords", {"name": "phone", "protocols": ["imap"]}
    )
    assert app_password.status == 201
    # An enrolment waiting for its code, which is computed now: the walk reaches it in well
    # under the step of tolerance.
    started = client.post("/api/accounts/walker@walk.test/totp")
    assert started.status == 201
    code = rfc6238(started.json["secret"], int(time.time()) // 30)
    return {
        "queue": str(entry["id"]),
        "app-password": str(app_password.json["id"]),
        "totp-code": code,
    }


NEEDS_A_CA = {"renew_certificate"}  # answers its documented 404 here (no [acme] configured)


def _calls(ids: dict[str, str]) -> dict[str, tuple[str, str, object, dict]]:
    """operationId -> (method, path, JSON body, options), one valid call per operation, in an
    order where each finds what it needs (deletions last)."""
    return {
        "healthz": ("GET", "/healthz", None, {}),
        "readyz": ("GET", "/readyz", None, {}),
        "metrics": ("GET", "/metrics", None, {}),
        "openapi": ("GET", "/api/openapi.json", None, {}),
        "list_accounts": ("GET", "/api/accounts", None, {}),
        "create_account": (
            "POST",
            "/api/accounts",
            {"address": "new@walk.test", "password": "new-password"},
            {},
        ),
        "get_account": ("GET", "/api/accounts/walker@walk.test", None, {}),
        "update_account": ("PATCH", "/api/accounts/walker@walk.test", {"quota-bytes": 10**6}, {}),
        "list_domains": ("GET", "/api/domains", None, {}),
        "create_domain": ("POST", "/api/domains", {"name": "other.test"}, {}),
        "list_aliases": ("GET", "/api/aliases", None, {}),
        "create_alias": (
            "POST",
            "/api/aliases",
            {"address": "sales@walk.test", "targets": ["new@walk.test"]},
            {},
        ),
        "get_alias": ("GET", "/api/aliases/team@walk.test", None, {}),
        "list_listeners": ("GET", "/api/listeners", None, {}),
        "get_listener": ("GET", "/api/listeners/probe", None, {}),
        "disable_listener": ("POST", "/api/listeners/probe/disable", None, {}),
        "enable_listener": ("POST", "/api/listeners/probe/enable", None, {}),
        "reload": ("POST", "/api/reload", None, {}),
        "effective_config": ("GET", "/api/config/effective", None, {}),
        "list_queue": ("GET", "/api/queue?limit=10", None, {}),
        "get_queue_entry": ("GET", f"/api/queue/{ids['queue']}", None, {}),
        "retry_entry": ("POST", f"/api/queue/{ids['queue']}/retry", None, {}),
        "retry_all": ("POST", "/api/queue/retry", None, {}),
        "list_reports": ("GET", "/api/reports", None, {}),
        "inject": (
            "POST",
            "/api/inject",
            {"from": "a@remote.test", "to": "walker@walk.test", "text": "x"},
            {},
        ),
        "dns_records_of": ("GET", "/api/dns/walk.test", None, {}),
        # no CA here: its success is the Pebble tier's (tests/interop/test_acme_pebble.py)
        "renew_certificate": ("POST", "/api/certificates/none/renew", None, {}),
        "list_certificates": ("GET", "/api/certificates", None, {}),
        "put_global_script": ("PUT", "/api/sieve/global/walk", {"script": "keep;"}, {}),
        "list_global_scripts": ("GET", "/api/sieve/global", None, {}),
        "get_global_script": ("GET", "/api/sieve/global/walk", None, {}),
        "delete_global_script": ("DELETE", "/api/sieve/global/walk", None, {}),
        "list_app_passwords": ("GET", "/api/accounts/walker@walk.test/app-passwords", None, {}),
        "create_app_password": (
            "POST",
            "/api/accounts/walker@walk.test/app-passwords",
            {"name": "laptop", "protocols": ["smtp", "pop3"]},
            {},
        ),
        "revoke_app_password": (
            "DELETE",
            f"/api/accounts/walker@walk.test/app-passwords/{ids['app-password']}",
            None,
            {},
        ),
        "totp_status": ("GET", "/api/accounts/walker@walk.test/totp", None, {}),
        "confirm_totp": (
            "POST",
            "/api/accounts/walker@walk.test/totp/confirm",
            {"code": ids["totp-code"]},
            {},
        ),
        "disable_totp": ("DELETE", "/api/accounts/walker@walk.test/totp", None, {}),
        "start_totp": ("POST", "/api/accounts/walker@walk.test/totp", None, {}),
        "delete_queue_entry": ("DELETE", f"/api/queue/{ids['queue']}", None, {}),
        "delete_alias": ("DELETE", "/api/aliases/sales@walk.test", None, {}),
        "delete_account": ("DELETE", "/api/accounts/new@walk.test", None, {}),
        "delete_domain": ("DELETE", "/api/domains/other.test", None, {}),
    }


def test_every_operation_answers_as_documented(server):
    referee = Referee(DOCUMENT)
    address = server.address("http")
    with ApiClient(address, auth=ADMIN, referee=referee) as admin:
        calls = _calls(_prepare(server, admin))
        assert set(calls) == {route.name for route in APP.router.routes}, "a route has no call"
        public = {"healthz", "readyz", "openapi"}
        with (
            ApiClient(address, referee=referee) as anonymous,
            ApiClient(
                address, auth=("root@example.test", "wrong password"), referee=referee
            ) as wrong,
            ApiClient(address, auth=USER, referee=referee) as user,
        ):
            for name, (method, path, body, _options) in calls.items():
                if name in public:
                    continue
                # no data to a caller who is not an administrator, whatever the route
                for client, status in ((anonymous, 401), (wrong, 401), (user, 403)):
                    answer = client.request(method, path, body)
                    assert answer.status == status, (name, client.auth, answer.body)
                    assert set(answer.json) == {"error"}, answer.body
                    assert answer.operation is not None
                    assert ("www-authenticate" in answer.headers) == (status == 401)
        for name, (method, path, body, _options) in calls.items():
            answer = admin.request(method, path, body)
            expected = 404 if name in NEEDS_A_CA else None
            assert answer.status == expected or answer.status < 300, (name, answer.body)
    operations = {
        f"{method.upper()} {path}"
        for path, methods in DOCUMENT["paths"].items()
        for method in methods
    } - {"POST /api/certificates/{id}/renew"}
    assert {operation for operation, status in referee.seen if status < 300} == operations
