"""Reload: add, remove, rebind (specific <-> wildcard in one reload), survive bad files."""

from __future__ import annotations

import socket

import pytest

from stalwart_py.config import ConfigError
from stalwart_py.listeners import ApplyError
from tests.support.clients import LineClient, connect
from tests.support.servers import free_port, write_config


def listener(lid: str, bind: str, **extra: str) -> str:
    lines = [f"[server.listener.{lid}]", f"bind = {bind}", 'protocol = "probe"']
    lines += [f"{key} = {value}" for key, value in extra.items()]
    return "\n".join(lines) + "\n\n"


def refused(address) -> bool:
    try:
        connect(address, timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_reload_adds_removes_and_updates(start_server, tmp_path):
    server = start_server(listener("keep", '"127.0.0.1:0"') + listener("gone", '"127.0.0.1:0"'))
    keep, gone = server.address("keep"), server.address("gone")
    session = LineClient(gone)  # an open session on a listener about to be removed
    session.info()
    write_config(
        tmp_path,
        listener("keep", '"127.0.0.1:0"', **{"probe.greeting": '"new settings"'})
        + listener("new", '"127.0.0.1:0"'),
    )
    report = server.reload()
    assert report.added == ["new"]
    assert report.removed == ["gone"]
    assert report.updated == ["keep"]
    assert server.address("keep") == keep  # same socket, not rebound
    with LineClient(keep) as client:
        assert client.info()["greeting"] == "new settings"
    with LineClient(server.address("new")) as client:
        assert client.info()["listener"] == "new"
    assert refused(gone)
    session.send(b"still served\r\n")  # the removed listener's session finishes
    assert session.readline() == b"still served\r\n"
    session.close()
    server.wait_until(lambda: server.registry.open_connections == 0)


@pytest.mark.parametrize(
    ("before", "after"),
    [("127.0.0.1", "*"), ("*", "127.0.0.1"), ("[::1]", "[::]")],
)
def test_rebind_between_specific_and_wildcard_in_one_reload(start_server, tmp_path, before, after):
    port = free_port()
    server = start_server(listener("probe", f'"{before}:{port}"'))
    host = "::1" if "[" in before else "127.0.0.1"
    with LineClient((host, port)) as client:
        assert client.info()["listener"] == "probe"
    write_config(tmp_path, listener("probe", f'"{after}:{port}"'))
    report = server.reload()
    assert report.rebound == ["probe"]
    [bound] = server.addresses("probe")
    assert bound.port == port
    assert bound.host == {"*": "0.0.0.0", "[::]": "::"}.get(after, after.strip("[]"))
    with LineClient((host, port)) as client:
        assert client.info()["listener"] == "probe"


def test_failed_bind_keeps_the_old_sockets(start_server, tmp_path):
    port = free_port()
    server = start_server(listener("probe", f'"127.0.0.1:{port}"'))
    with socket.socket() as squatter:  # another program holds the address we will ask for
        squatter.bind(("127.0.0.2", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        write_config(
            tmp_path,
            listener("probe", f'["*:{port}", "127.0.0.2:{taken}"]')
            + listener("other", '"127.0.0.1:0"'),
        )
        with pytest.raises(ApplyError, match=f"cannot bind 127.0.0.2:{taken}"):
            server.reload()
    assert [str(a) for a in server.addresses("probe")] == [f"127.0.0.1:{port}"]
    assert "other" not in server.registry.listeners  # nothing of the new file was applied
    with LineClient(("127.0.0.1", port)) as client:
        assert client.info()["listener"] == "probe"


def test_switch_to_wildcard_that_fails_restores_the_specific_address(start_server, tmp_path):
    port = free_port()
    server = start_server(listener("probe", f'"127.0.0.1:{port}"'))
    with socket.socket() as squatter:  # holds 127.0.0.2:port, so *:port cannot be bound
        squatter.bind(("127.0.0.2", port))
        squatter.listen()
        write_config(tmp_path, listener("probe", f'"*:{port}"'))
        with pytest.raises(ApplyError, match=f"cannot bind 0.0.0.0:{port}"):
            server.reload()
    assert [str(a) for a in server.addresses("probe")] == [f"127.0.0.1:{port}"]
    with LineClient(("127.0.0.1", port)) as client:
        assert client.info()["listener"] == "probe"


def test_an_invalid_file_changes_nothing(start_server, tmp_path):
    server = start_server(listener("probe", '"127.0.0.1:0"'))
    address = server.address("probe")
    write_config(tmp_path, listener("probe", '"127.0.0.1:0"', **{"socket.backlog": '"lots"'}))
    with pytest.raises(ConfigError, match=r"server\.listener\.probe\.socket\.backlog"):
        server.reload()
    (tmp_path / "config.toml").write_text("[server\nbroken")
    with pytest.raises(ConfigError, match="invalid TOML"):
        server.reload()
    assert server.address("probe") == address
    with LineClient(address) as client:
        assert client.info()["listener"] == "probe"


def test_disable_in_the_file_stops_the_listener(start_server, tmp_path):
    other = listener("other", '"127.0.0.1:0"')  # a file must leave one listener enabled
    server = start_server(listener("probe", '"127.0.0.1:0"') + other)
    address = server.address("probe")
    write_config(tmp_path, listener("probe", '"127.0.0.1:0"', enable="false") + other)
    assert server.reload().removed == ["probe"]
    assert refused(address)


def test_suspend_at_run_time_refuses_new_connections_only(start_server):
    server = start_server(listener("probe", '"127.0.0.1:0"'))
    address = server.address("probe")
    session = LineClient(address)
    session.info()
    server.call(server.registry.set_suspended, "probe", True)
    with LineClient(address) as client:
        assert client.readline() == b"REFUSED disabled\n"
    session.send(b"on\r\n")
    assert session.readline() == b"on\r\n"
    server.call(server.registry.set_suspended, "probe", False)
    with LineClient(address) as client:
        assert client.info()["listener"] == "probe"
    session.close()
