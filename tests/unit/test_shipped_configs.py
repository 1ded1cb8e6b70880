"""The two configurations that ship: config.toml (the image's, standard ports) and
local.toml (``make run``: loopback, high ports, data under ./var)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from stalwart_py.server import load as load_file

ROOT = Path(__file__).resolve().parents[2]


def load(name: str):
    return load_file(ROOT / "config" / name)


def test_local_toml_serves_every_protocol_on_loopback_high_ports_with_data_in_var():
    local = load("local.toml")
    assert local.storage.data_dir.resolve() == ROOT / "var"
    for listener in local.listeners.values():
        assert listener.enable
        for address in listener.bind:
            assert ipaddress.ip_address(address.host).is_loopback, (listener.id, address)
            assert address.port >= 1024, (listener.id, address)  # no root needed


def test_both_files_have_the_same_listeners_and_protocols():
    local, image = load("local.toml"), load("config.toml")
    protocols = {lid: listener.protocol for lid, listener in image.listeners.items()}
    assert {lid: listener.protocol for lid, listener in local.listeners.items()} == protocols
    assert set(protocols.values()) == {"smtp", "lmtp", "imap", "http", "managesieve", "pop3"}
