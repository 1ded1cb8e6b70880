"""The cluster of deploy/compose.yaml without containers: the real HAProxy on
deploy/cluster/haproxy.cfg (its SMTP and IMAP routes, pointed at this machine's ports) in
front of two node processes on one PostgreSQL database and one S3 store. Mail sent through
HAProxy is spread over both nodes and read back through it from either; each node sees the
client's own address and port from the PROXY v2 header, never HAProxy's connection."""

from __future__ import annotations

import re
import smtplib
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.integration.imap_support import Raw
from tests.integration.test_pg_node_processes import FLAGS, PASSWORD, running_nodes
from tests.interop.test_haproxy import _wait_listening
from tests.support.servers import WAIT, free_port

pytest.importorskip("psycopg")
pytestmark = [
    pytest.mark.interop,
    pytest.mark.own_blob_backend,
    pytest.mark.own_store_backend("nodes of their own"),
]
DEPLOYED = Path(__file__).resolve().parents[2] / "deploy" / "cluster" / "haproxy.cfg"
ROUTES = {"smtp": 25, "imap": 143}  # the listeners of the nodes here, by their port in the file


def local_config(nodes, fronts: dict[str, int]) -> str:
    """The deployed file with its smtp and imap routes only, bound on loopback, to the nodes'
    ports here, no Docker DNS (the addresses are literal), and fewer connections (the
    file's 20000 need a descriptor limit of 40000, which the container is given)."""
    text = DEPLOYED.read_text()
    head = text.split("\nfrontend ", 1)[0]
    head = head.replace(" resolvers docker", "").replace("maxconn 20000", "maxconn 1000")
    head = re.sub(r"\nresolvers docker\n(    .*\n)+", "\n", head)
    for name in ROUTES:
        block = re.search(rf"\nfrontend {name}\n.*?(?=\nfrontend |\Z)", text, re.S).group(0)
        block = block.replace(f"bind :{ROUTES[name]}", f"bind 127.0.0.1:{fronts[name]}")
        for index, node in enumerate(nodes, start=1):
            host, port = node.address(name)
            block = block.replace(f"node{index}:{ROUTES[name]}", f"{host}:{port}")
        head += block
    return head


@pytest.fixture
def cluster(postgres, seaweedfs, tmp_path) -> Iterator[tuple[dict[str, int], tuple]]:
    binary = require_tool("haproxy")
    trusted = 'proxy.trusted-networks = ["127.0.0.0/8"]\n'  # every connection: from HAProxy
    with running_nodes(postgres, seaweedfs, tmp_path, trusted) as nodes:
        fronts = {name: free_port() for name in ROUTES}
        path = tmp_path / "haproxy.cfg"
        path.write_text(local_config(nodes, fronts))
        check = subprocess.run([binary, "-c", "-f", str(path)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        process = subprocess.Popen(
            [binary, "-f", str(path), "-db"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            for port in fronts.values():
                _wait_listening(port, process)
            yield fronts, nodes
        finally:
            process.terminate()
            process.wait(10)


def test_mail_through_haproxy_reaches_both_nodes_and_reads_back_from_either(cluster):
    fronts, nodes = cluster
    client_ports = []
    for n in range(4):  # round robin: two each
        sock = socket.create_connection(("127.0.0.1", fronts["smtp"]), timeout=WAIT)
        client_ports.append(sock.getsockname()[1])
        client = smtplib.SMTP(timeout=WAIT)
        client.sock, client.file = sock, None
        assert client.getreply()[0] == 220
        client.sendmail("bob@remote.test", [FLAGS], f"Subject: {n}\r\n\r\nthrough HAProxy\r\n")
        client.quit()
    # each node saw the clients' own ports (the PROXY header), and each served some of them
    served = {
        index: [port for port in client_ports if f"127.0.0.1:{port} on smtp" in node.log()]
        for index, node in enumerate(nodes)
    }
    assert sorted(served[0] + served[1]) == sorted(client_ports)
    assert served[0] and served[1], served
    for _ in range(2):  # leastconn: either node; both have the four
        with Raw(("127.0.0.1", fronts["imap"])) as raw:
            _, tagged = raw.command(f'LOGIN "{FLAGS}" "{PASSWORD}"', "login")
            assert tagged.startswith(b"login OK"), tagged
            untagged, _ = raw.command("SELECT INBOX")
            assert b"* 4 EXISTS" in untagged
