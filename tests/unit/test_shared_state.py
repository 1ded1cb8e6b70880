"""The workers' shared listener counts: slots of listeners that came and went are taken again,
never those with connections or disabled, and a worker that cached a slot taken meanwhile
finds its listener again."""

from __future__ import annotations

import pytest

from stalwart_py.shared import SLOTS, SharedState


def test_listeners_that_come_and_go_never_run_out_of_slots(tmp_path):
    path = tmp_path / "shared"
    first = SharedState(path, create=True, worker=0)
    second = SharedState(path, worker=1)
    first.enter("busy")
    first.set_suspended("off", True)
    for n in range(3 * SLOTS):  # reloads that rename listeners, each served once
        server, listener = second.enter(f"gone-{n}")
        assert (server, listener) == (2, 1)
        second.leave(f"gone-{n}")
    assert first.enter("busy") == (2, 2) and second.open_connections("busy") == 2
    assert second.is_suspended("off") and not second.is_suspended("new")
    first.leave("busy")
    first.leave("busy")


def test_a_cached_slot_taken_by_another_listener_is_looked_up_again(tmp_path):
    path = tmp_path / "shared"
    first = SharedState(path, create=True, worker=0)
    second = SharedState(path, worker=1)
    for n in range(SLOTS):
        first.enter(f"l{n}")
        first.leave(f"l{n}")
    assert first.open_connections("l0") == 0  # cached by the first worker
    second.enter("newcomer")  # every slot has had a name: it takes an idle one
    first.enter("l0")
    assert first.open_connections("newcomer") == 1 and second.open_connections("l0") == 1


def test_a_slot_is_never_taken_from_a_listener_with_connections(tmp_path):
    state = SharedState(tmp_path / "shared", create=True)
    for n in range(SLOTS):
        state.enter(f"l{n}")
    with pytest.raises(RuntimeError, match="more than 64 listeners"):
        state.enter("one-too-many")
