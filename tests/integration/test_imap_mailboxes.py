"""Mailbox commands over real sockets: CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST
(LIST-EXTENDED, LIST-STATUS, SPECIAL-USE, CHILDREN), LSUB, STATUS, APPEND (APPENDUID),
QUOTA (RFC 9208) with the OVERQUOTA refusal and the DELETED and DELETED-STORAGE status items,
and non-ASCII mailbox names."""

from __future__ import annotations

import math

import pytest

from tests.integration.imap_support import PASSWORD, Raw, login, message, start


@pytest.fixture
def server(start_server, server_cert):
    return start(start_server, server_cert)


def test_list_of_a_new_account(server):
    with Raw(server) as raw:
        raw.login()
        untagged, tagged = raw.command('LIST "" "*"')
        assert tagged == b"t1 OK LIST completed"
        assert untagged == [
            b'* LIST (\\HasNoChildren) "/" "INBOX"',
            b'* LIST (\\HasNoChildren \\Archive) "/" "Archive"',
            b'* LIST (\\HasNoChildren \\Drafts) "/" "Drafts"',
            b'* LIST (\\HasNoChildren \\Junk) "/" "Junk"',
            b'* LIST (\\HasNoChildren \\Sent) "/" "Sent"',
            b'* LIST (\\HasNoChildren \\Trash) "/" "Trash"',
        ]
        assert raw.command('LIST "" ""')[0] == [b'* LIST (\\Noselect) "/" ""']


def test_create_rename_delete_and_hierarchy(server):
    with Raw(server) as raw:
        raw.login()
        assert raw.command("CREATE Work/2024/Q1")[1] == b"t1 OK CREATE completed"
        untagged, _ = raw.command('LIST "" Work*')
        assert untagged == [
            b'* LIST (\\HasChildren) "/" "Work"',
            b'* LIST (\\HasChildren) "/" "Work/2024"',
            b'* LIST (\\HasNoChildren) "/" "Work/2024/Q1"',
        ]
        assert raw.command('LIST "Work/" %')[0] == [b'* LIST (\\HasChildren) "/" "Work/2024"']
        assert raw.command("CREATE Work")[1] == (
            b"t1 NO [ALREADYEXISTS] Mailbox Work already exists"
        )
        assert raw.command("CREATE inbox")[1] == b"t1 NO [ALREADYEXISTS] INBOX always exists"
        assert raw.command('CREATE "a//b"')[1] == b"t1 NO [CANNOT] empty level in the mailbox name"
        assert raw.command("CREATE a*b")[1].startswith(b"t1 BAD")  # not even an astring
        assert raw.command("RENAME Work Jobs")[1] == b"t1 OK RENAME completed"
        untagged, _ = raw.command('LIST "" "Jobs/*"')
        assert untagged == [
            b'* LIST (\\HasChildren) "/" "Jobs/2024"',
            b'* LIST (\\HasNoChildren) "/" "Jobs/2024/Q1"',
        ]
        assert raw.command("RENAME Nope Other")[1] == b"t1 NO [NONEXISTENT] No mailbox Nope"
        assert raw.command("RENAME Jobs Jobs/Inner")[1] == (
            b"t1 NO [CANNOT] A mailbox cannot be moved below itself"
        )
        assert raw.command("DELETE Jobs/2024")[1] == b"t1 OK DELETE completed"
        # a child survives its parent's deletion; the parent is then only a name
        untagged, _ = raw.command('LIST "" "Jobs*"')
        assert untagged == [
            b'* LIST (\\HasChildren) "/" "Jobs"',
            b'* LIST (\\Noselect \\HasChildren) "/" "Jobs/2024"',
            b'* LIST (\\HasNoChildren) "/" "Jobs/2024/Q1"',
        ]
        untagged, _ = raw.command('LIST () "" "Jobs/%"')
        assert untagged == [b'* LIST (\\NonExistent \\HasChildren) "/" "Jobs/2024"']
        assert raw.command("DELETE INBOX")[1] == b"t1 NO [CANNOT] INBOX cannot be deleted"
        assert raw.command("DELETE Nope")[1] == b"t1 NO [NONEXISTENT] No mailbox Nope"


def test_a_mailbox_with_messages_is_deleted_with_them(server):
    client = login(server)
    client.create("Old")
    for n in range(3):
        assert client.append("Old", None, None, message(f"old {n}"))[0] == "OK"
    assert client.delete("Old") == ("OK", [b"DELETE completed"])
    assert client.list('""', "Old") == ("OK", [None])
    client.logout()


def test_subscriptions_lsub_and_list_extended(server):
    with Raw(server) as raw:
        raw.login()
        raw.command("CREATE Lists/python")
        raw.command("CREATE Lists/rust")
        # CREATE subscribes nothing; UNSUBSCRIBE of a name not subscribed (or of no
        # mailbox) is OK (RFC 9051 section 6.3.7: subscriptions are names).
        assert raw.command("SUBSCRIBE Lists/python")[1] == b"t1 OK SUBSCRIBE completed"
        assert raw.command("UNSUBSCRIBE Lists")[1] == b"t1 OK UNSUBSCRIBE completed"
        assert raw.command("UNSUBSCRIBE Nope")[1] == b"t1 OK UNSUBSCRIBE completed"
        assert raw.command("SUBSCRIBE Nope")[1] == b"t1 NO [NONEXISTENT] No mailbox Nope"
        assert raw.command('LSUB "" "Lists*"')[0] == [b'* LSUB () "/" "Lists/python"']
        untagged, _ = raw.command('LIST (SUBSCRIBED) "" "Lists*"')
        assert untagged == [b'* LIST (\\HasNoChildren \\Subscribed) "/" "Lists/python"']
        untagged, _ = raw.command('LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
        assert b'* LIST (\\HasChildren) "/" "Lists" ("CHILDINFO" ("SUBSCRIBED"))' in untagged
        untagged, _ = raw.command('LIST "" "Lists*" RETURN (SUBSCRIBED)')
        assert untagged == [
            b'* LIST (\\HasChildren) "/" "Lists"',
            b'* LIST (\\HasNoChildren \\Subscribed) "/" "Lists/python"',
            b'* LIST (\\HasNoChildren) "/" "Lists/rust"',
        ]
        assert raw.command("SUBSCRIBE Lists/rust")[1] == b"t1 OK SUBSCRIBE completed"
        untagged, _ = raw.command('LIST (SPECIAL-USE) "" "*"')
        assert [line.rsplit(b" ", 1)[1] for line in untagged] == [
            b'"Archive"',
            b'"Drafts"',
            b'"Junk"',
            b'"Sent"',
            b'"Trash"',
        ]
        assert raw.command("CREATE Sent2 (USE (\\Sent))")[1] == b"t1 OK CREATE completed"
        assert raw.command('LIST "" Sent2')[0] == [b'* LIST (\\HasNoChildren \\Sent) "/" "Sent2"']
        assert raw.command("CREATE Odd (USE (\\Important))")[1] == (
            b"t1 NO [USEATTR] Unsupported special-use attribute"
        )


def test_status_and_list_status(server):
    client = login(server)
    for index in range(3):
        typ, data = client.append(
            "INBOX", "(\\Seen)" if index else None, None, message(f"m{index}")
        )
        assert typ == "OK"
        assert data[0].startswith(b"[APPENDUID ")
    typ, data = client.status("INBOX", "(MESSAGES UIDNEXT UNSEEN DELETED SIZE RECENT)")
    size = sum(len(message(f"m{i}")) for i in range(3))
    assert data == [
        f'"INBOX" (MESSAGES 3 UIDNEXT 4 UNSEEN 1 DELETED 0 SIZE {size} RECENT 3)'.encode()
    ]
    uidvalidity = client.status("INBOX", "(UIDVALIDITY)")[1][0]
    assert uidvalidity.startswith(b'"INBOX" (UIDVALIDITY ')
    typ, data = client.status("INBOX", "(HIGHESTMODSEQ APPENDLIMIT)")
    assert data == [b'"INBOX" (HIGHESTMODSEQ 4 APPENDLIMIT 52428800)']  # 3 arrivals after 1
    with Raw(server) as raw:
        raw.login()
        untagged, _ = raw.command('LIST "" "INBOX" RETURN (STATUS (MESSAGES UNSEEN))')
        assert untagged == [
            b'* LIST (\\HasNoChildren) "/" "INBOX"',
            b'* STATUS "INBOX" (MESSAGES 3 UNSEEN 1)',
        ]
        assert raw.command("STATUS Nope (MESSAGES)")[1] == b"t1 NO [NONEXISTENT] No mailbox Nope"
    client.logout()


def test_append_forms_and_errors(server):
    client = login(server)
    typ, data = client.append("Drafts", "(\\Draft $Todo)", '"05-Mar-2024 13:04:05 +0200"', b"x")
    assert typ == "OK"
    _uidvalidity, uid = data[0].split(b"]")[0].split()[1:]
    assert uid == b"1"
    client.select("Drafts")
    typ, data = client.fetch("1", "(FLAGS INTERNALDATE)")
    # new to every session, so \\Recent to this one, which selected the mailbox first
    assert data == [b'1 (FLAGS (\\Draft \\Recent $Todo) INTERNALDATE "05-Mar-2024 11:04:05 +0000")']
    typ, data = client.append("Nope", None, None, b"x")
    assert (typ, data) == ("NO", [b"[TRYCREATE] No mailbox Nope"])
    with Raw(server) as raw:
        raw.login()
        raw.send(b"t1 APPEND INBOX ~{5}\r\n")
        assert raw.line() == b"+ Ready for literal data"
        raw.send(b"a\x00b\r\n\r\n")
        assert raw.until("t1")[1].startswith(b"t1 OK [APPENDUID ")
        raw.send(b"t2 APPEND INBOX {60000000}\r\n")
        assert raw.line() == (
            b"t2 NO [TOOBIG] literal of 60000000 octets is over the limit of 52428800"
        )
    client.logout()


def test_quota_roots_and_refusal_on_append(server):
    server.add_account("bob@example.test", PASSWORD, quota_bytes=4096, quota_messages=3)
    client = login(server, "bob@example.test")
    typ, data = client.getquotaroot("INBOX")
    assert typ == "OK"
    assert data == [[b'"INBOX" ""'], [b'"" (STORAGE 0 4 MESSAGE 0 3)']]
    assert client.append("INBOX", None, None, b"x" * 3000)[0] == "OK"
    typ, data = client.getquota('""')
    assert data == [b'"" (STORAGE 3 4 MESSAGE 1 3)']
    typ, data = client.append("INBOX", None, None, b"y" * 2000)
    assert typ == "NO"
    assert data == [b"[OVERQUOTA] mailbox full: storage quota exceeded"]
    with Raw(server) as raw:
        raw.login()  # alice has no quota
        untagged, _ = raw.command("GETQUOTAROOT INBOX")
        assert untagged == [b'* QUOTAROOT "INBOX"']
        assert raw.command('GETQUOTA ""')[1] == b"t1 NO [NONEXISTENT] No quota root ''"
        assert raw.command('SETQUOTA "" (STORAGE 10)')[1] == (
            b"t1 NO [NOPERM] Quotas are set by the administrator"
        )
    client.logout()


def test_deleted_and_deleted_storage_status_items(server):
    """RFC 9208 section 4.1.4: QUOTA=RES-STORAGE requires DELETED-STORAGE, the storage an
    EXPUNGE would reclaim, in octets (its permitted approximation is the sum of RFC822.SIZE of
    the \\Deleted messages); QUOTA=RES-MESSAGE requires DELETED."""
    server.add_account("dave@example.test", PASSWORD, quota_bytes=64 * 1024)
    bodies = [message(f"m{n}", "x" * size + "\r\n") for n, size in enumerate((500, 1500, 3000))]
    total, deleted = sum(map(len, bodies)), len(bodies[0]) + len(bodies[2])
    client = login(server, "dave@example.test")
    for body in bodies:
        assert client.append("INBOX", None, None, body)[0] == "OK"
    client.select("INBOX")
    assert client.store("1,3", "+FLAGS.SILENT", "(\\Deleted)")[0] == "OK"
    with Raw(server) as raw:
        raw.command(f'LOGIN "dave@example.test" "{PASSWORD}"')
        capabilities = raw.command("CAPABILITY")[0][0].split()
        assert b"QUOTA=RES-STORAGE" in capabilities and b"QUOTA=RES-MESSAGE" in capabilities
        untagged, tagged = raw.command("STATUS INBOX (MESSAGES DELETED DELETED-STORAGE SIZE)")
        expected = f"MESSAGES 3 DELETED 2 DELETED-STORAGE {deleted} SIZE {total}"
        assert untagged == [f'* STATUS "INBOX" ({expected})'.encode()]
        assert tagged == b"t1 OK STATUS completed"
        assert raw.command("status inbox (deleted-storage)")[0] == [
            f'* STATUS "INBOX" (DELETED-STORAGE {deleted})'.encode()
        ]
        untagged, _ = raw.command('LIST "" INBOX RETURN (STATUS (DELETED DELETED-STORAGE))')
        assert untagged[1] == f'* STATUS "INBOX" (DELETED 2 DELETED-STORAGE {deleted})'.encode()
        assert raw.command("STATUS Trash (DELETED DELETED-STORAGE)")[0] == [
            b'* STATUS "Trash" (DELETED 0 DELETED-STORAGE 0)'
        ]
        assert raw.command('GETQUOTA ""')[0] == [
            f'* QUOTA "" (STORAGE {math.ceil(total / 1024)} 64)'.encode()
        ]
        assert client.expunge() == ("OK", [b"3", b"1"])
        # the expunge gave back exactly the octets DELETED-STORAGE announced
        account = server.run(server.context.store.get_account, "dave@example.test")
        assert account.used_bytes == total - deleted == len(bodies[1])
        expected = f"MESSAGES 1 DELETED 0 DELETED-STORAGE 0 SIZE {len(bodies[1])}"
        assert raw.command("STATUS INBOX (MESSAGES DELETED DELETED-STORAGE SIZE)")[0] == [
            f'* STATUS "INBOX" ({expected})'.encode()
        ]
        assert raw.command('GETQUOTA ""')[0] == [b'* QUOTA "" (STORAGE 2 64)']
    client.logout()


def test_non_ascii_names_in_modified_utf7_and_utf8(server):
    with Raw(server) as raw:
        raw.login()
        assert raw.command("CREATE Entw&APw-rfe/&ZeVnLIqe-")[1] == b"t1 OK CREATE completed"
        untagged, _ = raw.command('LIST "" "Entw*"')
        assert untagged == [
            b'* LIST (\\HasChildren) "/" "Entw&APw-rfe"',
            b'* LIST (\\HasNoChildren) "/" "Entw&APw-rfe/&ZeVnLIqe-"',
        ]
        assert raw.command("CREATE &Jjo!")[1] == (
            b"t1 BAD malformed modified UTF-7 in the mailbox name"
        )
        raw.command("ENABLE IMAP4rev2")
        untagged, _ = raw.command('LIST "" "Entw*"')
        assert untagged[1] == '* LIST (\\HasNoChildren) "/" {19}\r\nEntwürfe/日本語'.encode()
        assert raw.command("SELECT {9+}\r\nEntwürfe".encode())[1] == (
            b"t1 OK [READ-WRITE] SELECT completed"
        )
