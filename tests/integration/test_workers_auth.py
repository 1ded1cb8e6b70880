"""A password changed in one worker is in force in every worker at once.

Each worker has its own authentication cache (``stalwart_py.auth_cache``): a login that
succeeded is remembered there for ``ttl``. Its entries are keyed by the password hash stored
*now*, read afresh at every login, so a change made in another process (a fresh salt, another
hash) can never match an old entry; this test holds that with two real worker processes,
each having cached the old password before the change.
"""

from __future__ import annotations

import imaplib

from stalwart_py import cli
from tests.integration.test_workers import PASSWORD, USER, worker_of, workers_config
from tests.support.nodes import change_password
from tests.support.servers import WAIT, ServerProcess

ADMIN, ADMIN_PASSWORD = "admin@example.test", "admin password of the test"
NEW_PASSWORD = "a new and different one"


def imap_login(server: ServerProcess, password: str) -> tuple[int, bool]:
    """(the worker that served it, whether LOGIN succeeded) for one new IMAP connection."""
    client = imaplib.IMAP4(*server.address("imap"), timeout=WAIT)
    worker = worker_of(server, client.sock.getsockname()[1])
    try:
        client.login(USER, password)
    except imaplib.IMAP4.error:
        ok = False
    else:
        ok = True
    client.logout()
    return worker, ok


def logins_in_each_worker(server: ServerProcess, password: str) -> dict[int, bool]:
    """Log in over new connections until both workers have answered; each one's answer
    (a worker that answered both ways fails the test)."""
    answers: dict[int, set[bool]] = {}
    for _ in range(60):
        worker, ok = imap_login(server, password)
        answers.setdefault(worker, set()).add(ok)
        if len(answers) == 2:
            break
    assert len(answers) == 2, "the kernel gave every connection to one worker"
    assert all(len(seen) == 1 for seen in answers.values()), answers
    return {worker: seen.pop() for worker, seen in answers.items()}


def test_a_password_changed_in_one_worker_is_in_force_in_both_at_once(tmp_path):
    config = workers_config(tmp_path)
    # The old password is refused over as many connections as it takes to reach both
    # workers: with the default limit (5 for the address and account) those refusals could
    # lock the pair out before the new password is tried.
    config.write_text(
        config.read_text().replace(
            'failure-delay = "10ms"',
            'failure-delay = "10ms"\nmax-failures-per-address-and-account = 64',
        )
    )
    secret = tmp_path / "admin-password"
    secret.write_text(ADMIN_PASSWORD)
    add_admin = ["account", "add", ADMIN, "--admin", "--password-file", str(secret)]
    assert cli.main([*add_admin, "--config", str(config)]) == 0
    with ServerProcess(config) as server:
        # both workers have verified (and cached) the old password
        assert logins_in_each_worker(server, PASSWORD) == {0: True, 1: True}
        change_password(server, (ADMIN, ADMIN_PASSWORD), USER, NEW_PASSWORD)
        assert logins_in_each_worker(server, PASSWORD) == {0: False, 1: False}
        assert logins_in_each_worker(server, NEW_PASSWORD) == {0: True, 1: True}
