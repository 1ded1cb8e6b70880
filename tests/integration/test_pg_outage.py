"""A node while its PostgreSQL is away (``postgres.refusing``: its sessions ended, new ones
refused): what reads the database in the background says so in one log line each time it
tries, without a traceback (it is the database, not a bug), and goes on once it is back. (The
SMTP rate limits' part of it: test_pg_rates.py.)"""

from __future__ import annotations

import logging
import re

import anyio
import pytest

from tests.support.logs import watch_log
from tests.support.nodes import certificates_of
from tests.support.servers import LOG_OF_ONE_WORKER, WAIT
from tests.support.smtp import server_base

pytest.importorskip("psycopg")

LISTENER = '\n[server.listener.smtp]\nbind = "127.0.0.1:0"\nprotocol = "smtp"\n'
UNREAD = "cannot read the certificates another process installed"


@pytest.mark.own_store_backend("a database of its own, which the test takes away")
@pytest.mark.single_worker(LOG_OF_ONE_WORKER)
def test_the_certificates_follower_logs_one_line_per_try_and_reads_again_when_back(
    postgres, tmp_path, start_server, server_cert, ca
):
    url = postgres.database()
    storage = f'[storage]\ndata-dir = "{tmp_path}"\nbackend = "postgresql"\nurl = "{url}"\n'
    server = start_server(storage + server_base(server_cert) + LISTENER)
    with watch_log(UNREAD) as unread, postgres.refusing(url):
        # the change listener, cut off, wakes every watch every few seconds: a try each
        failed = unread.wait(WAIT)
    assert failed[0].levelno == logging.WARNING and not failed[0].exc_info, "a traceback"
    line = failed[0].getMessage()  # the driver's error, named: OperationalError, AdminShutdown
    assert re.fullmatch(rf"{UNREAD}: [A-Za-z]+: [^\n\t]+", line), line
    # back: a certificate another node installs now is put in force here, by the same loop
    issued = ca.issue_cert("mail.example.test")
    chain = b"".join(blob.bytes() for blob in issued.cert_chain_pems)

    async def install() -> None:
        async with certificates_of(server.server.config_path, tmp_path / "other") as other:
            await other.install("acme-after", chain, issued.private_key_pem.bytes())

    with watch_log("certificate acme-after in force") as in_force:
        anyio.run(install)
        in_force.wait(WAIT)
