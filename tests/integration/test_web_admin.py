"""The administrator's pages (``/admin/``) against a real server over real HTTP: each page
renders, each form does what it says and the change is seen through the JSON API, and the
steps that need a confirmation do nothing without it. (Access, CSRF and headers for every page
are test_web_security.py's, from the page tables.)"""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.support.clients import LineClient
from tests.support.http import ADMIN, BASE, USER, ApiClient, http_listener, start_http
from tests.support.mail_peers import ZoneServer, background_loop
from tests.support.servers import write_config
from tests.support.web import WebClient

PROBE = '[server.listener.probe]\nbind = "127.0.0.1:0"\nprotocol = "probe"\n\n'


@pytest.fixture
def server(start_server):
    return start_http(start_server, extra=PROBE)


@pytest.fixture(scope="module")
def zone():
    """A DNS server on loopback for the domain page's live check (never the real DNS)."""
    with background_loop() as portal:
        server = ZoneServer()
        portal.call(server.start)
        yield server
        portal.call(server.close)


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


def test_the_dashboard_shows_listeners_queue_activity_certificates_and_health(server, web, api):
    api.post("/api/inject", {"from": "a@example.test", "to": ["x@far.test"], "text": "hi"})
    page = ok(web.get("/admin/"), 'id="listeners"', "probe", 'id="health"', "Ready")
    assert re.search(r'id="queue-size"><a href="/admin/queue">1 message</a>', page)
    assert "(this page)" in page  # the listener serving it is marked
    assert re.search(r"Recipients through the delivery pipeline</dt>\s*<dd>delivered: 1<", page)
    # a refusal: a connection to a disabled listener
    assert api.post("/api/listeners/probe/disable").status == 200
    with LineClient(server.address("probe")) as refused:
        assert refused.readline() == b"REFUSED disabled\n"
    page = ok(web.get("/admin/"))
    assert re.search(r"Connections refused</dt>\s*<dd>disabled: 1<", page)


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
    mine = f"/admin/accounts/{ADMIN[0]}"
    new_own = {"password": "my new password", "confirm": "my new password"}
    redirected(web.submit(f"{mine}/password", new_own, form_page=mine), f"{mine}?done=password")
    ok(web.get(mine))  # this browser goes on, with a new session (its old one ended)


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


def test_domains_add_dns_records_and_check_dkim_key_and_remove_with_confirmation(
    start_server, zone, tmp_path
):
    resolver = f'[resolver]\nnameservers = ["127.0.0.1:{zone.port}"]\ntimeout = "2s"\n\n'
    storage = f'[storage]\ndata-dir = "{tmp_path}"\n\n'
    server = start_http(start_server, base=BASE + resolver + storage)
    with (
        WebClient(server.address("http")) as web,
        ApiClient(server.address("http"), auth=ADMIN) as api,
    ):
        assert web.sign_in(*ADMIN, next_page="/admin/").status_code == 303
        ok(web.get("/admin/domains"), 'id="domain-name"', "example.test")
        added = web.submit("/admin/domains", {"name": "Family.Test"})
        redirected(added, "/admin/domains/family.test?done=added")
        assert "family.test" in [d["name"] for d in api.get("/api/domains").json["domains"]]
        bad = web.submit("/admin/domains", {"name": "not a domain"})
        assert bad.status_code == 422 and "not a valid domain name" in bad.text

        page = "/admin/domains/family.test"
        shown = ok(web.get(page), 'id="dns-records"', 'id="dns-check"', "None: mail from")
        expected = api.get("/api/dns/family.test").json
        for record in expected["records"]:
            assert f"<td>{record['name']}</td><td>{record['type']}</td>" in shown
        mx = next(r for r in expected["records"] if r["type"] == "MX")
        zone.add(mx["name"], "MX", mx["value"])
        checked = ok(web.get(f"{page}?check=true"), 'id="dns-result"', "does not have every")
        assert f"<td>{mx['name']}</td><td>MX</td>" in checked
        assert checked.count('class="ok">ok') == 1 and 'class="error">missing' in checked

        redirected(
            web.submit(
                f"{page}/dkim", {"algorithm": "ed25519", "selector": "web1"}, form_page=page
            ),
            f"{page}?done=dkim",
        )
        keyed = ok(web.get(page), "<strong>web1</strong> (ed25519-sha256)", "web1._domainkey")
        assert "web1._domainkey.family.test" in {
            r["name"] for r in api.get("/api/dns/family.test").json["records"]
        }
        assert "None: mail from" not in keyed
        again = web.submit(
            f"{page}/dkim", {"algorithm": "ed25519", "selector": "web1"}, form_page=page
        )
        assert again.status_code == 422 and "exists already" in again.text

        ok(web.get(f"{page}/remove"), "Remove the domain", 'name="confirm" value="yes"')
        ok(web.submit(f"{page}/remove", {}, form_page=page), "Remove the domain")
        assert api.get("/api/dns/family.test").status == 200  # not removed unconfirmed
        redirected(
            web.submit(f"{page}/remove", {"confirm": "yes"}, form_page=page),
            "/admin/domains?done=removed",
        )
        assert api.get("/api/dns/family.test").status == 404
        # a domain with accounts is not removed: the directory's refusal is on the page
        held = web.submit(
            "/admin/domains/example.test/remove", {"confirm": "yes"}, form_page="/admin/domains"
        )
        assert held.status_code == 409 and "example.test" in held.text
        assert web.get("/admin/domains/nowhere.test").status_code == 404


def test_aliases_add_list_and_remove(web, api):
    ok(web.get("/admin/aliases"), "No alias yet", 'id="alias-address"', 'id="alias-targets"')
    redirected(
        web.submit(
            "/admin/aliases",
            {"address": "Family@example.test", "targets": f"{USER[0]}\n{ADMIN[0]}, x@far.test"},
        ),
        "/admin/aliases?done=added",
    )
    alias = api.get("/api/aliases/family@example.test").json
    assert sorted(alias["targets"]) == sorted([USER[0], ADMIN[0], "x@far.test"])
    listed = ok(web.get("/admin/aliases?done=added"), "family@example.test", "The alias is saved.")
    assert ", ".join(alias["targets"]) in listed
    refused = web.submit("/admin/aliases", {"address": "a@nowhere.test", "targets": USER[0]})
    assert refused.status_code == 422 and "a@nowhere.test" in refused.text
    catch_all = web.submit("/admin/aliases", {"address": "@example.test", "targets": USER[0]})
    redirected(catch_all, "/admin/aliases?done=added")
    assert api.get("/api/aliases/@example.test").status == 200
    redirected(
        web.submit("/admin/aliases/family@example.test/remove", {}, form_page="/admin/aliases"),
        "/admin/aliases?done=removed",
    )
    assert api.get("/api/aliases/family@example.test").status == 404
    assert api.get("/api/aliases/@example.test").status == 200
    gone = web.submit("/admin/aliases/family@example.test/remove", {}, form_page="/admin/aliases")
    assert gone.status_code == 404


def test_the_queue_is_paged_shows_a_message_retries_and_deletes_with_confirmation(web, api):
    for n in range(53):
        injected = api.post(
            "/api/inject", {"from": f"s{n}@example.test", "to": ["x@far.test"], "text": "hi"}
        )
        assert injected.status == 200, injected.body
    first = ok(web.get("/admin/queue"), "53 messages waiting", 'id="next-page"', 'id="retry-all"')
    assert first.count('id="queued-') == 50
    second = ok(web.get("/admin/queue?page=2"), 'id="previous-page"')
    assert second.count('id="queued-') == 3
    ok(web.get("/admin/queue?page=9"), "The queue is empty past this page")

    oldest = api.get("/api/queue?limit=1").json["messages"][0]
    page = f"/admin/queue/{oldest['id']}"
    ok(web.get(page), "s0@example.test", "x@far.test", 'id="retry"', f'href="{page}/delete"')
    redirected(web.submit(f"{page}/retry", {}, form_page=page), f"{page}?retried=1")
    ok(web.get(f"{page}?retried=1"), "1 recipient due now.")
    [recipient] = api.get(f"/api/queue/{oldest['id']}").json["recipients"]
    assert recipient["next-attempt"] <= time.time()  # due now
    redirected(
        web.submit("/admin/queue/retry", {}, form_page="/admin/queue"), "/admin/queue?retried=53"
    )

    ok(web.submit(f"{page}/delete", {}, form_page=page), "no bounce is sent")
    assert api.get(f"/api/queue/{oldest['id']}").status == 200  # not without confirming
    redirected(
        web.submit(f"{page}/delete", {"confirm": "yes"}, form_page=page),
        "/admin/queue?done=deleted",
    )
    assert api.get(f"/api/queue/{oldest['id']}").status == 404
    assert web.get(page).status_code == 404
    assert web.get("/admin/queue/nonsense").status_code == 404
    assert web.get("/admin/queue/99999999999999999999").status_code == 404


def test_listeners_disable_and_enable_and_the_serving_one_only_after_confirming(server, web, api):
    def enabled(lid: str) -> bool:
        [item] = [i for i in api.get("/api/listeners").json["listeners"] if i["id"] == lid]
        return item["enabled"]

    page = ok(web.get("/admin/listeners"), 'id="disable-probe"', 'id="disable-http"')
    assert "(serves this page)" in page
    redirected(
        web.submit("/admin/listeners/probe/disable", {}, form_page="/admin/listeners"),
        "/admin/listeners?changed=probe&state=disabled",
    )
    assert enabled("probe") is False
    ok(web.get("/admin/listeners"), 'id="enable-probe"', 'id="state-probe">disabled')
    redirected(
        web.submit("/admin/listeners/probe/enable", {}, form_page="/admin/listeners"),
        "/admin/listeners?changed=probe&state=enabled",
    )
    assert enabled("probe") is True

    # the listener serving the page: a confirmation page first, and nothing disabled
    asked = web.submit("/admin/listeners/http/disable", {}, form_page="/admin/listeners")
    ok(asked, "Disable http, which serves this page?", 'name="confirm" value="yes"')
    assert enabled("http") is True
    redirected(
        web.submit(
            "/admin/listeners/http/disable", {"confirm": "yes"}, form_page="/admin/listeners"
        ),
        "/admin/listeners?changed=http&state=disabled",
    )
    assert server.registry.is_suspended("http")
    server.call(server.registry.set_suspended, "http", False)
    assert (
        web.submit("/admin/listeners/nope/disable", {}, form_page="/admin/listeners").status_code
        == 404
    )


def test_reload_shows_what_changed_and_the_configuration_errors(server, web, tmp_path):
    config = BASE + http_listener() + PROBE
    ok(web.get("/admin/reload"), 'id="reload"')
    write_config(
        tmp_path, config + '[server.listener.extra]\nbind = "127.0.0.1:0"\nprotocol = "probe"\n'
    )
    applied = web.submit("/admin/reload", {})
    ok(applied, 'id="reload-result"', "<dt>Added</dt><dd>extra</dd>")
    write_config(tmp_path, config + "[server.listener.broken]\nprotocol = 7\n")
    failed = web.submit("/admin/reload", {})
    assert failed.status_code == 422
    assert "The configuration is invalid; nothing changed" in failed.text
    assert "server.listener.broken.protocol" in failed.text
    assert {i["id"] for i in server.registry.status()} == {"http", "probe", "extra"}


def test_reports_are_listed(server, web):
    ok(web.get("/admin/reports"), "None received.")
    summary = json.dumps({"status": "5.1.1", "recipient": "x@far.test"})
    store = server.context.store
    server.run(store.add_report, "dsn", "far.test", "mailer-daemon@far.test", summary, b"report")
    page = ok(web.get("/admin/reports"), "DSN", "far.test", "mailer-daemon@far.test")
    assert "status: 5.1.1; recipient: x@far.test" in page
    ok(web.get("/admin/"), "DSN for far.test from mailer-daemon@far.test")


def test_a_disabled_account_cannot_log_in_and_its_web_sessions_end(server, web, api):
    with WebClient(server.address("http")) as user:
        assert user.sign_in(*USER).status_code == 303
        assert user.get("/account/").status_code == 200
        page = f"/admin/accounts/{USER[0]}"
        ok(web.get(page), 'id="disable-account"', ">enabled<")
        redirected(web.submit(f"{page}/disable", {}, form_page=page), f"{page}?done=disabled")
        assert api.get(page.replace("/admin/", "/api/")).json["disabled"] is True
        ok(web.get(page), 'id="enable-account"', "every login refused")
        assert user.get("/account/").status_code == 303  # the session ended: sign in again
        assert user.sign_in(*USER).status_code != 303
        with ApiClient(server.address("http"), auth=USER) as basic:
            assert basic.get("/api/accounts").status == 401
        redirected(web.submit(f"{page}/enable", {}, form_page=page), f"{page}?done=enabled")
        assert api.get(page.replace("/admin/", "/api/")).json["disabled"] is False
        assert user.sign_in(*USER).status_code == 303
    own = f"/admin/accounts/{ADMIN[0]}"
    assert web.submit(f"{own}/disable", {}, form_page=own).status_code == 409
    assert api.request("PATCH", f"/api/accounts/{ADMIN[0]}", {"disabled": True}).status == 409
