"""/readyz answers 503 with the failing check named when the server is not ready: an enabled
listener that is not bound, or a store that fails or does not answer in time. /healthz (the
liveness probe) stays 200 meanwhile."""

from __future__ import annotations

import socket
import sqlite3

import anyio
import pytest

from protocols.http.handlers import health
from tests.support.http import ApiClient, start_http
from tests.support.servers import PATCHES_THE_WORKER

SMTP = '[server.listener.smtp]\nbind = ["127.0.0.1:0", "[::1]:0"]\nprotocol = "smtp"\n\n'
READY = {"status": "ready", "checks": {"listeners": True, "store": True}}


def readiness(server) -> tuple[int, object]:
    with ApiClient(server.address("http")) as client:
        assert client.get("/healthz").status == 200
        answer = client.get("/readyz")
        return answer.status, answer.json


@pytest.mark.single_worker(PATCHES_THE_WORKER)
def test_readyz_is_503_while_an_enabled_listener_is_not_bound(start_server):
    server = start_http(start_server, extra=SMTP)
    assert readiness(server) == (200, READY)
    runtime = server.registry.listeners["smtp"]

    async def lose_a_socket(family: int) -> None:
        # What a failed reload that could not bind an address again leaves behind
        # (ListenerRegistry._restore): the listener is configured but that address is unbound.
        [address] = [a for a in runtime.sockets if a.family == family]
        await runtime.sockets.pop(address).close()

    server.run(lose_a_socket, socket.AF_INET6)  # 127.0.0.1 is still served
    assert readiness(server) == (
        503,
        {"status": "not-ready", "checks": {"listeners": False, "store": True}},
    )
    server.run(lose_a_socket, socket.AF_INET)  # now nothing is
    assert readiness(server) == (
        503,
        {"status": "not-ready", "checks": {"listeners": False, "store": True}},
    )
    assert server.reload().rebound == ["smtp"]  # a reload binds both again
    assert readiness(server) == (200, READY)


@pytest.mark.single_worker(PATCHES_THE_WORKER)
def test_readyz_is_503_when_the_store_fails_or_hangs(start_server, monkeypatch, caplog):
    server = start_http(start_server)
    store = server.context.store
    not_ready = (503, {"status": "not-ready", "checks": {"listeners": True, "store": False}})

    async def fails() -> list:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store, "list_domains", fails)
    assert readiness(server) == not_ready
    assert "readiness: the store does not answer: OperationalError('disk I/O error')" in (
        caplog.text
    )

    async def hangs() -> list:
        await anyio.sleep_forever()
        return []

    monkeypatch.setattr(health, "STORE_CHECK_TIMEOUT", 0.2)
    monkeypatch.setattr(store, "list_domains", hangs)
    assert readiness(server) == not_ready
    assert "readiness: the store does not answer: TimeoutError()" in caplog.text
    monkeypatch.undo()
    assert readiness(server) == (200, READY)
