"""DKIM signatures (RFC 6376) that dkimpy verifies against the key published in DNS."""

from __future__ import annotations

import anyio.to_thread
import dkim
import pytest

from stalwart_py.config.schema import DkimSettings
from stalwart_py.queue import generate_key
from stalwart_py.queue.dkim import IMPORTED_DIR, DkimSigner, import_key_files
from stalwart_py.store import AlreadyExists
from tests.support.dkim_keys import key_file, legacy_key_file
from tests.support.mail_peers import dkim_key_lookup, txt_text
from tests.support.queue_world import make_world, running

pytestmark = pytest.mark.anyio


@pytest.fixture
async def world(tmp_path, ca):
    async with make_world(tmp_path, ca) as world:
        world.dns.add("remote.test", "A", "127.0.0.12")
        yield world


async def verify(world, data: bytes) -> bool:
    lookup = dkim_key_lookup(world.dns.port)
    return await anyio.to_thread.run_sync(lambda: dkim.verify(data, dnsfunc=lookup))


@pytest.mark.parametrize(
    ("algorithm", "tag"), [("rsa", b"rsa-sha256"), ("ed25519", b"ed25519-sha256")]
)
async def test_generated_key_signs_and_the_published_record_verifies(world, algorithm, tag):
    key = await generate_key(world.store, "example.test", algorithm=algorithm, selector="sel1")
    world.dns.add(key.record_name, "TXT", txt_text(key.public_record))
    peer = await world.peer("127.0.0.12")
    await world.enqueue("bob@remote.test")
    async with running(world.manager(port=peer.port)) as manager:
        await manager.flush()
    [message] = peer.received
    assert message.data.startswith(b"DKIM-Signature: v=1; a=" + tag + b"; c=relaxed/relaxed;")
    assert b" d=example.test;" in message.data
    assert b" s=sel1;" in message.data
    assert await verify(world, message.data)
    # And the signature covers the content: a changed body no longer verifies.
    assert not await verify(world, message.data.replace(b"Hello Bob.", b"Hello Eve."))


async def test_a_key_generated_while_running_is_used_from_the_next_message(world):
    peer = await world.peer("127.0.0.12")
    async with running(world.manager(port=peer.port)) as manager:
        await world.enqueue("bob@remote.test")
        await manager.flush()
        key = await generate_key(world.store, "example.test", selector="later")
        world.dns.add(key.record_name, "TXT", txt_text(key.public_record))
        await world.enqueue("bob@remote.test")
        await manager.flush()
    first, second = peer.received
    assert not first.data.startswith(b"DKIM-Signature")
    assert await verify(world, second.data)


async def test_configured_key_and_from_domain_choice(world, tmp_path):
    path = tmp_path / "elsewhere" / "cfg.pem"
    key = key_file(path, "example.test", "cfg")
    world.dns.add(key.record_name, "TXT", txt_text(key.public_record))
    configured = {"example.test": DkimSettings(selector="cfg", private_key=path)}
    signer = DkimSigner(configured)
    message = b"From: someone@other.test\r\nSubject: x\r\n\r\nbody\r\n"
    assert signer.sign(message, "alice@example.test") == message  # From: decides, not the sender
    signed = signer.sign(message.replace(b"other.test", b"example.test"), "")
    assert await verify(world, signed)


async def test_generate_refuses_an_existing_selector(world):
    await generate_key(world.store, "example.test", selector="one", algorithm="ed25519")
    with pytest.raises(AlreadyExists, match="choose another selector"):
        await generate_key(world.store, "example.test", selector="one")
    with pytest.raises(ValueError, match="selector"):
        await generate_key(world.store, "example.test", selector="bad selector")
    [stored] = await world.store.dkim_keys()
    assert b"PRIVATE KEY" not in repr(stored).encode()  # a secret stays out of logs


async def test_key_files_of_an_earlier_version_are_imported_once_and_sign(world):
    """The upgrade: keys that were files keep signing with their selectors (the published
    records stay right), from the store; the files move aside, and a key deleted later does
    not come back at the next start."""
    key, path = legacy_key_file(world.tmp, "example.test", "old", algorithm="ed25519")
    world.dns.add(key.record_name, "TXT", txt_text(key.public_record))
    assert await import_key_files(world.store, world.tmp) == 1
    assert not path.exists()
    assert (world.tmp / IMPORTED_DIR / "example.test" / "old.pem").exists()
    peer = await world.peer("127.0.0.12")
    await world.enqueue("bob@remote.test")
    async with running(world.manager(port=peer.port)) as manager:
        await manager.flush()
    [message] = peer.received
    assert b" s=old;" in message.data and await verify(world, message.data)
    await world.store.delete_dkim_key("example.test", "old")
    assert await import_key_files(world.store, world.tmp) == 0
    assert await world.store.dkim_keys() == []
