"""``include :global`` (RFC 6609) end to end: an administrator uploads a global script over
ManageSieve (``global/<name>``), a user's script includes it, mail delivered over SMTP lands
where it says (read back over IMAP); users cannot write global scripts; include loops are
refused at upload through the store (line and column) and a missing global script keeps the
message."""

from __future__ import annotations

import logging

import pytest
from sievelib.managesieve import Client

from stalwart_py.sieve import SieveSyntaxError, parse_script
from stalwart_py.sieve.include import check_upload
from stalwart_py.store.sqlite import SqliteStore
from tests.support.managesieve import PASSWORD, activate, deliver, sieve_server, where

pytestmark = pytest.mark.filterwarnings("ignore:Credentials are sent over an unencrypted")

MESSAGE = (
    b"From: Ann <ann@remote.test>\r\n"
    b"To: Bob <bob@example.test>\r\n"
    b"Subject: cheap pills\r\n"
    b"X-Pill-Score: 9\r\n"
    b"\r\n"
    b"Buy now.\r\n"
)
GLOBAL = (
    'require ["include", "variables", "fileinto", "relational", "comparator-i;ascii-numeric"];\r\n'
    'global "verdict";\r\n'
    'if header :value "ge" :comparator "i;ascii-numeric" "x-pill-score" "5" {\r\n'
    '  set "verdict" "spam"; fileinto "Junk"; return;\r\n'
    "}\r\n"
    'set "verdict" "ham";\r\n'
)
PERSONAL = (
    'require ["include", "variables", "fileinto", "imap4flags"];\r\n'
    'global "verdict";\r\n'
    'include :global "spam-rules";\r\n'
    'if string "${verdict}" "spam" { addflag "$Junk"; keep; }\r\n'
)


def session(server, user: str) -> Client:
    host, port = server.address("managesieve")
    client = Client(host, port)
    assert client.connect(user, PASSWORD, authmech="PLAIN")
    return client


@pytest.fixture
def server(start_server):
    server = sieve_server(start_server)
    server.add_account("admin@example.test", PASSWORD, is_admin=True)
    return server


def test_an_admins_global_script_filters_a_users_mail(server):
    admin = session(server, "admin@example.test")
    assert admin.putscript("global/spam-rules", GLOBAL), admin.errmsg
    active, scripts = admin.listscripts()
    assert "global/spam-rules" in scripts and active is None
    assert admin.getscript("global/spam-rules").splitlines() == GLOBAL.splitlines()
    assert not admin.setactive("global/spam-rules")
    admin.logout()

    bob = session(server, "bob@example.test")
    assert not bob.putscript("global/spam-rules", "discard;\r\n")
    assert b"only an administrator" in bob.errmsg
    assert not bob.deletescript("global/spam-rules")
    assert bob.listscripts() == (None, [])
    bob.logout()

    activate(server, PERSONAL)
    deliver(server, MESSAGE, "bob@example.test")
    deliver(server, MESSAGE.replace(b"Score: 9", b"Score: 1"), "bob@example.test")
    # fileinto in the global script took the flags of that moment; keep those of the end
    assert where(server) == {"Junk": [[]], "INBOX": [["$Junk"], []]}

    admin = session(server, "admin@example.test")
    assert admin.deletescript("global/spam-rules")
    admin.logout()


def test_a_missing_global_script_keeps_the_message_and_is_logged(server, caplog):
    activate(server, 'require ["include", "fileinto"];\r\ninclude :global "gone";\r\n'
             'fileinto "Never";\r\n')  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="stalwart_py.sieve"):
        [result] = deliver(server, MESSAGE, "bob@example.test")
    assert result.code == 250 and where(server) == {"INBOX": [[]]}
    assert 'no global script "gone"' in caplog.text


def test_an_include_loop_is_refused_at_putscript(server):
    bob = session(server, "bob@example.test")
    assert bob.putscript("b", 'require "include";\r\ninclude "a";\r\n'), bob.errmsg
    assert not bob.putscript("a", 'require "include";\r\nkeep;\r\ninclude "b";\r\n')
    assert b'line 3, column 1: including "a" here makes a loop' in bob.errmsg
    bob.logout()


@pytest.mark.anyio
async def test_loops_and_depth_through_the_store(tmp_path):
    store = SqliteStore(tmp_path)
    await store.open()
    try:
        await store.add_domain("example.test")
        bob = await store.add_account("bob@example.test", "hash", None)

        async def upload(account_id, key, text):
            await check_upload(store, account_id, key, parse_script(text), parse_script, 4)

        await store.put_script(bob.id, "b", 'require "include";\ninclude "a";')
        await upload(bob.id, "c", 'require "include";\ninclude "b";')  # b -> a (missing): fine
        with pytest.raises(SieveSyntaxError, match='line 2, column 1: including "main"'):
            await upload(bob.id, "main", 'require "include";\ninclude "main";')
        await store.put_global_script("g2", 'require "include";\ninclude :global "g1";')
        with pytest.raises(SieveSyntaxError, match='"global/g1" here makes a loop'):
            await upload(None, "global/g1", 'require "include";\ninclude :global "g2";')
        await upload(None, "global/g3", 'require "include";\ninclude :personal "g3";')
        await upload(bob.id, "p", 'require "include";\ninclude :global "g3";')  # g3: global
        for index in range(5):
            body = f'require "include";\ninclude "d{index + 1}";'
            await store.put_script(bob.id, f"d{index}", body)
        with pytest.raises(SieveSyntaxError, match="includes nest deeper than 4"):
            await upload(bob.id, "top", 'require "include";\ninclude "d0";')
    finally:
        await store.close()
