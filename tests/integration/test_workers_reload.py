"""Reloads with ``server.workers = 2`` (real supervisor and workers) that answer as one process
does: a removed listener's port refuses connections, and a bad file asked for over the HTTP
API is "invalid", not "cannot be applied"."""

from __future__ import annotations

import base64
import http.client
import json
import socket

from stalwart_py import cli
from tests.integration.test_workers import workers_config
from tests.support.servers import WAIT, ServerProcess

ADMIN, ADMIN_PASSWORD = "admin@example.test", "admin password of the test"
EXTRA = '\n[server.listener.extra]\nbind = "127.0.0.1:0"\nprotocol = "smtp"\n'


def post_reload(server: ServerProcess) -> tuple[int, dict]:
    api = http.client.HTTPConnection(*server.address("http"), timeout=WAIT)
    token = base64.b64encode(f"{ADMIN}:{ADMIN_PASSWORD}".encode()).decode()
    api.request("POST", "/api/reload", headers={"Authorization": f"Basic {token}"})
    response = api.getresponse()
    answer = response.status, json.loads(response.read())
    api.close()
    return answer


def test_a_removed_listener_refuses_and_a_bad_file_is_invalid(tmp_path):
    path = workers_config(tmp_path, extra=EXTRA)
    secret = tmp_path / "admin-password"
    secret.write_text(ADMIN_PASSWORD)
    add = ["account", "add", ADMIN, "--admin", "--password-file", str(secret)]
    assert cli.main([*add, "--config", str(path)]) == 0
    with ServerProcess(path) as server:
        extra = server.address("extra")
        path.write_text(path.read_text().replace(EXTRA, ""))
        status, report = post_reload(server)
        assert (status, report["removed"]) == (200, ["extra"])
        # Before: each worker kept the copy it inherited at the fork, so the port still
        # listened and connections waited in the backlog with nobody to accept them.
        for _ in range(5):
            probe = socket.socket()
            probe.settimeout(WAIT)
            try:
                refused = probe.connect_ex(extra)
            finally:
                probe.close()
            assert refused != 0, "the removed listener's port still takes connections"
        path.write_text(path.read_text() + "\n[server.listener.broken]\nprotocol = 7\n")
        status, failure = post_reload(server)
        assert status == 422
        assert failure["error"] == "the configuration is invalid; nothing changed"
        assert any("server.listener.broken.protocol" in e for e in failure["errors"])
