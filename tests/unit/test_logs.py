"""The log formatters: one record is one line, whatever a client put into it."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from stalwart_py.logs import JSONFormatter, TextFormatter, escape

# Every character that ends a line for some reader (str.splitlines, a terminal, JavaScript),
# DEL, a C1 control, a bidirectional override, and a lone surrogate (surrogateescape).
HOSTILE = "bob\r\nFORGED\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\x00\x1b[2J\x7f\x9b\u202e\udcff end"


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.makeLogRecord(
        {"name": "stalwart_py.imap", "levelno": logging.INFO, "levelname": "INFO"}
    )
    made.msg, made.args = message, args
    made.__dict__.update(extra)
    return made


def test_escape_leaves_ordinary_text_alone():
    text = "Grüße, 日本語 and emoji 📬; a backslash \\ and quotes \"'"
    assert escape(text) == text


def test_escape_names_each_control():
    assert escape("a\r\nb\tc\x00\x7f\x85\u2028\u202e\udcff") == (
        "a\\r\\nb\\tc\\x00\\x7f\\x85\\u2028\\u202e\\udcff"
    )


def test_text_format_is_one_line_per_record_with_extras_escaped():
    line = TextFormatter().format(
        record("login failed from %s: user=<%s>", "192.0.2.1", HOSTILE, client=HOSTILE)
    )
    assert len(line.splitlines()) == 1
    assert line.isprintable()
    assert "user=<bob\\r\\nFORGED" in line
    assert line.endswith("client=bob\\r\\nFORGED\\x0b\\x0c\\x1c\\x1d\\x1e\\x85\\u2028\\u2029"
                         "\\x00\\x1b[2J\\x7f\\x9b\\u202e\\udcff end")  # fmt: skip
    line.encode("utf-8")  # a lone surrogate would make a strict stream drop the record


def test_json_format_is_one_line_per_record():
    made = record("user=<%s>", HOSTILE, client=HOSTILE)
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        made.exc_info = sys.exc_info()
    line = JSONFormatter().format(made)
    assert len(line.splitlines()) == 1
    assert line.isascii() and line.isprintable()  # no control, DEL or separator survives
    entry = json.loads(line)
    assert entry["msg"] == f"user=<{HOSTILE}>"  # escaped, not lost: the reader gets it back
    assert entry["client"] == HOSTILE
    assert "second line" in entry["exc"]


def test_a_traceback_stays_readable_in_the_text_format():
    made = record("checking %s failed", "x\ny")
    try:
        raise ValueError("boom")
    except ValueError:
        made.exc_info = sys.exc_info()
    lines = TextFormatter().format(made).splitlines()
    assert lines[0].endswith("checking x\\ny failed")
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "ValueError: boom"


@pytest.mark.parametrize("formatter", [TextFormatter(), JSONFormatter()])
def test_a_strict_utf8_stream_takes_every_record(formatter):
    stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.handleError = lambda record: pytest.fail("the record was dropped")  # type: ignore
    handler.emit(record("user=<%s>", HOSTILE))
    stream.flush()
    assert len(stream.buffer.getvalue().splitlines()) == 1
