"""An administrator could lock themselves out: disabling, over the API, the HTTP listener that
served it left a restart as the only way back (a reload did not re-enable it). Now the API
refuses that without ?force=true, and a reload brings back a listener disabled at run time."""

from __future__ import annotations

import json
import signal

import pytest

from protocols.http import Http
from tests.support.clients import LineClient
from tests.support.http import BASE, ApiClient, Referee, http_listener
from tests.support.servers import ServerProcess, stalwart_cli, write_config

REFEREE = Referee(Http().app.document)
PASSWORD = "a-long-enough-secret"
ADMIN_OF_PROCESS = ("admin@mail.example.test", PASSWORD)  # made at the first start
SMTP = '[server.listener.smtp]\nbind = "127.0.0.1:0"\nprotocol = "smtp"\n\n'
PROBE = '[server.listener.probe]\nbind = "127.0.0.1:0"\nprotocol = "probe"\n\n'


@pytest.fixture
def process(tmp_path):
    """``stalwart-py serve`` with an http and an smtp listener."""
    path = write_config(tmp_path, BASE + http_listener() + SMTP)
    with ServerProcess(path, env={"STALWART_ADMIN_PASSWORD": PASSWORD}) as server:
        yield server


def test_the_api_will_not_disable_the_listener_it_came_through(process):
    """The failure as it was found: the API's own listener disabled over the API."""
    path = process.config_path
    with ApiClient(process.address("http"), auth=ADMIN_OF_PROCESS, referee=REFEREE) as admin:
        refused = admin.post("/api/listeners/http/disable")
        assert refused.status == 409
        assert "this request came through listener http" in refused.json["error"]
        assert admin.get("/api/listeners/http").json["enabled"] is True
        assert admin.post("/api/listeners/http/disable?force=maybe").status == 400
        # found by schemathesis: a bad force was accepted when it named another listener
        assert admin.post("/api/listeners/smtp/disable?force=null").status == 400
        assert admin.post("/api/listeners/smtp/disable?forse=true").status == 400  # misspelt
        assert admin.post("/api/listeners/smtp/disable").status == 200  # another one: fine
        forced = admin.post("/api/listeners/http/disable?force=true")
        assert forced.status == 200 and forced.json["enabled"] is False
    with ApiClient(process.address("http")) as client:
        assert client.get("/healthz").status == 503  # locked out, as asked
    # A reload brings back what the file enables, and says so.
    result = stalwart_cli(path, "reload")
    assert result.returncode == 0, result.stderr
    assert "re-enabled: http, smtp" in result.stdout
    assert json.loads((path.parent / "var" / "stalwart-py.status.json").read_text())["changes"][
        "re-enabled"
    ] == ["http", "smtp"]
    with ApiClient(process.address("http"), auth=ADMIN_OF_PROCESS, referee=REFEREE) as admin:
        assert admin.get("/api/listeners/http").json["enabled"] is True
        answer = admin.post("/api/reload")  # nothing disabled now: nothing re-enabled
        assert answer.status == 200 and answer.json["re-enabled"] == []


def test_an_automatic_reload_keeps_what_was_disabled(start_server):
    """A reload asked for re-enables; the one after a certificate renewal (nobody asked)
    does not undo an operator's decision."""
    server = start_server(PROBE)
    server.call(server.registry.set_suspended, "probe", True)
    assert server.run(lambda: server.server.reload(resume=False)).reenabled == []
    assert server.registry.listeners["probe"].suspended
    assert server.reload().reenabled == ["probe"]
    with LineClient(server.address("probe")) as client:
        assert client.info()["listener"] == "probe"


def test_sighup_reports_the_listeners_it_re_enabled(process):
    with ApiClient(process.address("http"), auth=ADMIN_OF_PROCESS, referee=REFEREE) as admin:
        assert admin.post("/api/listeners/smtp/disable").status == 200
    process.signal(signal.SIGHUP)
    assert process.wait_event("reloaded")["changes"]["re-enabled"] == ["smtp"]
    assert "reloaded " in process.log() and "re-enabled smtp" in process.log()
