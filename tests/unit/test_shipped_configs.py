"""The two configurations that ship: config.toml (the image's, standard ports) and
local.toml (``make run``: loopback, high ports, data under ./var)."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
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


def test_the_image_uses_every_cpu_it_is_given_and_make_run_one_process(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 2, 5}, raising=False)
    image = load("config.toml")
    assert image.server.workers is None  # unset: the CPU affinity decides
    assert image.server.worker_count == 3
    assert load("local.toml").server.worker_count == 1


def test_the_default_worker_count_follows_the_affinity_within_bounds(monkeypatch):
    settings = load("config.toml").server
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(200)), raising=False)
    assert settings.worker_count == 64  # server.workers' upper bound
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)  # macOS has none
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert settings.worker_count == 6
    assert dataclasses.replace(settings, workers=2).worker_count == 2  # a set value wins
