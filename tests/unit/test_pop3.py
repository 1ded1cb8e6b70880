"""The POP3 plugin's sans-IO core (command lines, byte-stuffing, TOP, sizes) and its import
boundary: it is built on the public plugin API alone."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import stalwart_py.plugin
from protocols.pop3.maildrop import Maildrop, MaildropError, MaildropLock
from protocols.pop3.syntax import (
    BadCommand,
    Command,
    Shape,
    message_reply,
    octets,
    parse_command,
    shape,
    stuffed,
    top,
    with_crlf,
)
from stalwart_py.plugin import MessageInfo

POP3 = Path(__file__).resolve().parents[2] / "protocols" / "pop3"


def test_pop3_imports_only_the_plugin_api_from_the_core():
    """Every ``stalwart_py`` import of protocols/pop3 is ``from stalwart_py.plugin import``,
    of names the plugin API exports (``__all__``)."""
    exported = set(stalwart_py.plugin.__all__)
    seen = 0
    for path in POP3.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
                assert not any(n.split(".")[0] == "stalwart_py" for n in names), (path, names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("stalwart_py"):
                assert node.module == "stalwart_py.plugin", (path, node.module)
                for alias in node.names:
                    assert alias.name in exported, (path, alias.name)
                    seen += 1
    assert seen > 10  # the check looked at real imports


def test_commands_parse_case_insensitively_with_their_arguments():
    assert parse_command(b"stat\r\n") == Command("STAT", ())
    assert parse_command(b"Top 1 10\n") == Command("TOP", ("1", "10"))
    assert parse_command(b"PASS with spaces  in it\r\n") == Command("PASS", ("with spaces  in it",))
    assert parse_command("USER jöe@example.test\r\n".encode()) == Command(
        "USER", ("jöe@example.test",)
    )
    assert parse_command(b"AUTH PLAIN " + b"A" * 5000 + b"\r\n").args[1] == "A" * 5000
    for line in (b"\r\n", b"TOOLONG\r\n", b"RETR  1\r\n", b"LI\x00ST\r\n", b"\xff\r\n"):
        assert isinstance(parse_command(line), BadCommand), line
    assert isinstance(parse_command(b"USER " + b"a" * 300 + b"\r\n"), BadCommand)


def test_byte_stuffing_and_the_terminator():
    assert stuffed(b"a\r\n.b\r\n..c\r\n") == b"a\r\n..b\r\n...c\r\n.\r\n"
    assert stuffed(b".\r\nx") == b"..\r\nx\r\n.\r\n"
    assert stuffed(b"") == b".\r\n"


@given(st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b""))))
def test_unstuffing_gives_back_the_message_and_octets_counts_it(lines):
    data = b"".join(line + b"\r\n" for line in lines)
    wire = stuffed(data)
    assert wire.endswith(b".\r\n") and b"\r\n.\r\n" not in b"\r\n" + wire[:-3]
    got = [line[1:] if line.startswith(b".") else line for line in wire.split(b"\r\n")[:-2]]
    assert b"".join(line + b"\r\n" for line in got) == data
    assert octets(data) == len(data)


@given(st.lists(st.sampled_from([b"a", b".", b"..", b"\r\n", b"\n", b"\r", b"x."])).map(b"".join))
def test_what_a_shape_lets_retr_skip_changes_nothing_it_sends(data):
    """RETR sends ``message_reply(status, data, shape(data))``, which leaves out the scans the
    shape says are not needed: byte for byte what stuffing the CRLF form sends, sized by
    ``octets``."""
    known = shape(data)
    wire = message_reply(b"+OK\r\n", data, known).removeprefix(b"+OK\r\n")
    assert wire == stuffed(with_crlf(data))
    unstuffed = [line[1:] if line.startswith(b".") else line for line in wire.split(b"\r\n")]
    assert unstuffed[-2:] == [b"", b""]  # the terminating line, then nothing
    assert sum(len(line) + 2 for line in unstuffed[:-2]) == known.octets  # each with CRLF


def test_a_message_as_smtp_delivers_it_is_sent_as_it_is_with_the_terminating_line():
    data = b"Subject: plain\r\n\r\nno dot-led lines\r\n"
    assert shape(data) == Shape(len(data), dotted=False)
    assert message_reply(b"+OK\r\n", data, shape(data)) == b"+OK\r\n" + data + b".\r\n"
    assert shape(b".x\r\n").dotted and shape(b"a\r\n.x\r\n").dotted and shape(b"a\n.x").dotted


def test_octets_counts_crlf_line_ends_as_sent():
    assert octets(b"a\nb\n") == 6
    assert octets(b"a\r\nb") == 6  # RETR ends the last line
    assert octets(b"") == 0


def test_top_gives_the_header_and_n_body_lines():
    message = b"Subject: x\r\nTo: y\r\n\r\none\r\ntwo\r\nthree\r\n"
    assert top(message, 0) == b"Subject: x\r\nTo: y\r\n\r\n"
    assert top(message, 2) == b"Subject: x\r\nTo: y\r\n\r\none\r\ntwo\r\n"
    assert top(message, 99) == message
    assert top(b"Subject: only a header\r\n", 5) == b"Subject: only a header\r\n"


def test_maildrop_numbers_and_marks():
    infos = [MessageInfo(uid, 1, frozenset(), 0.0, 10, uid) for uid in (3, 7, 9)]
    drop = Maildrop.snapshot(1, 42, infos)
    assert drop.message("2") == (2, infos[1]) and drop.unique_id(2) == "42.7"
    drop.deleted.add(2)
    for bad in ("2", "0", "4", "-1", "1e3", "²", "99999999999"):
        with pytest.raises(MaildropError):
            drop.message(bad)
    assert drop.live() == [1, 3] and drop.deleted_uids() == [7]


def test_the_lock_is_exclusive_and_released(tmp_path):
    first, second = MaildropLock(tmp_path / "locks", 5), MaildropLock(tmp_path / "locks", 5)
    assert first.acquire()
    assert not second.acquire()
    assert MaildropLock(tmp_path / "locks", 6).acquire()
    first.release()
    assert second.acquire()
    second.release()
