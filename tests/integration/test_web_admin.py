"""The administrator's pages (``/admin/``) against a real server over real HTTP: each page
renders, each form does what it says and the change is seen through the JSON API, and the
steps that need a confirmation do nothing without it. (Access, CSRF and headers for every page
are test_web_security.py's, from the page tables.)"""

from __future__ import annotations

import re

import pytest

from tests.support.http import ADMIN, USER, ApiClient, start_http
from tests.support.web import WebClient

PROBE = '[server.listener.probe]\nbind = "127.0.0.1:0"\nprotocol = "probe"\n\n'


@pytest.fixture
def server(start_server):
    return start_http(start_server, extra=PROBE)


@pytest.fixture
def web(server):
    with WebClient(server.address("http")) as client:
        assert client.sign_in(*ADMIN, next_page="/admin/").status_code == 303
        yield client


@pytest.fixture
def api(server):
    with ApiClient(server.address("http"), auth=ADMIN) as client:
        yield client


def ok(answer, *texts: str) -> str:
    assert answer.status_code == 200, (answer.status_code, answer.text[:500])
    for text in texts:
        assert text in answer.text, text
    assert "<script" not in answer.text and "style=" not in answer.text
    return answer.text


def redirected(answer, location: str) -> None:
    assert answer.status_code == 303, (answer.status_code, answer.text[:500])
    assert answer.headers["location"] == location


def test_the_dashboard_shows_listeners_queue_activity_certificates_and_health(web, api):
    api.post("/api/inject", {"from": "a@example.test", "to": ["x@far.test"], "text": "hi"})
    page = ok(web.get("/admin/"), 'id="listeners"', "probe", 'id="health"', "Ready")
    assert re.search(r'id="queue-size"><a href="/admin/queue">1 message</a>', page)
    assert "(this page)" in page  # the listener serving it is marked
    assert re.search(r"Recipients through the delivery pipeline</dt>\s*<dd>delivered: 1<", page)


def test_accounts_add_search_page_quota_password_and_delete_with_confirmation(server, web, api):
    answer = web.submit(
        "/admin/accounts",
        {
            "address": "carol@example.test",
            "password": "carol's password",
            "confirm": "carol's password",
            "quota": "5",
        },
    )
    redirected(answer, "/admin/accounts/carol@example.test?done=created")
    assert api.get("/api/accounts/carol@example.test").json["quota-bytes"] == 5 * 1024 * 1024
    ok(web.get(answer.headers["location"]), "The account is created.", "5.0 MiB")
    refused = web.submit(
        "/admin/accounts", {"address": "d@nowhere.test", "password": "x" * 12, "confirm": "x" * 12}
    )
    assert refused.status_code == 422 and "not a local domain" in refused.text
    assert "d@nowhere.test" in refused.text  # the form keeps what was typed
    short = web.submit(
        "/admin/accounts", {"address": "e@example.test", "password": "x", "confirm": "x"}
    )
    assert short.status_code == 422 and api.get("/api/accounts/e@example.test").status == 404

    found = ok(web.get("/admin/accounts?q=CAROL"), "carol@example.test", "1 account matching")
    assert USER[0] not in found

    page = "/admin/accounts/carol@example.test"
    redirected(
        web.submit(f"{page}/quota", {"quota": "", "messages": "10"}, form_page=page),
        f"{page}?done=quota",
    )
    changed = api.get("/api/accounts/carol@example.test").json
    assert (changed["quota-bytes"], changed["quota-messages"]) == (None, 10)
    bad = web.submit(f"{page}/quota", {"quota": "lots"}, form_page=page)
    assert bad.status_code == 422 and "whole number" in bad.text

    redirected(
        web.submit(
            f"{page}/password",
            {"password": "a new password", "confirm": "a new password"},
            form_page=page,
        ),
        f"{page}?done=password",
    )
    with ApiClient(server.address("http"), auth=("carol@example.test", "a new password")) as carol:
        assert carol.get("/api/accounts").status == 403  # signed in (not an administrator)

    # deletion: the account page links to a confirmation page; a POST without confirm=yes
    # shows that page again and deletes nothing
    ok(web.get(page), f'href="{page}/delete"')
    ok(web.get(f"{page}/delete"), "This cannot be undone", 'name="confirm" value="yes"')
    unconfirmed = web.submit(f"{page}/delete", {}, form_page=page)
    ok(unconfirmed, "This cannot be undone")
    assert api.get("/api/accounts/carol@example.test").status == 200
    redirected(
        web.submit(f"{page}/delete", {"confirm": "yes"}, form_page=f"{page}/delete"),
        "/admin/accounts?done=deleted",
    )
    assert api.get("/api/accounts/carol@example.test").status == 404
    assert web.get(page).status_code == 404
    own = f"/admin/accounts/{ADMIN[0]}/delete"
    assert web.submit(own, {"confirm": "yes"}, form_page="/admin/").status_code == 409
    assert api.get(f"/api/accounts/{ADMIN[0]}").status == 200


def test_the_accounts_list_is_paged(server, web):
    for n in range(60):
        server.add_account(f"user{n:02d}@example.test", "a long password")
    first = ok(web.get("/admin/accounts"), 'id="next-page"', "63 accounts")
    assert first.count('<a href="/admin/accounts/') == 50
    second = ok(web.get("/admin/accounts?page=2"), 'id="previous-page"')
    assert second.count('<a href="/admin/accounts/') == 13 and 'id="next-page"' not in second
    searched = ok(web.get("/admin/accounts?q=user5"), "10 accounts matching")
    assert 'id="next-page"' not in searched
    assert web.get("/admin/accounts?page=0").status_code == 400
