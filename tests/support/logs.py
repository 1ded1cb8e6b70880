"""The server's log as an operator's file would hold it, for tests of what lands in it."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from stalwart_py.logs import JSONFormatter, TextFormatter


class CapturedLog:
    """Everything logged under ``stalwart_py`` meanwhile, as the text and the JSON format
    render it (the formatters ``serve`` uses), and the records themselves."""

    def __init__(self) -> None:
        self.text_stream = io.StringIO()
        self.json_stream = io.StringIO()
        self.records: list[logging.LogRecord] = []

    @property
    def text(self) -> str:
        return self.text_stream.getvalue()

    def text_lines(self) -> list[str]:
        return self.text.splitlines()

    def json_lines(self) -> list[str]:
        return self.json_stream.getvalue().splitlines()

    def json_entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.json_lines()]


class _Recorder(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__()
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def capture_log(level: int = logging.INFO) -> Iterator[CapturedLog]:
    """Capture the server's log while the block runs (the server logs from its own thread;
    a handler's lock keeps each record whole). A line is written before the reply that
    follows it is sent, so whatever a client has been answered is in the log already."""
    captured = CapturedLog()
    text = logging.StreamHandler(captured.text_stream)
    text.setFormatter(TextFormatter())
    as_json = logging.StreamHandler(captured.json_stream)
    as_json.setFormatter(JSONFormatter())
    handlers = [text, as_json, _Recorder(captured.records)]
    logger = logging.getLogger("stalwart_py")
    previous = logger.level
    logger.setLevel(level)
    for handler in handlers:
        logger.addHandler(handler)
    try:
        yield captured
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
        logger.setLevel(previous)


class LogWatch(logging.Handler):
    """The records under ``stalwart_py`` whose message contains ``text``, as they are
    logged (from the server's thread too); ``wait`` returns at the first, a signal rather than
    a poll of the log."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.records: list[logging.LogRecord] = []
        self._seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.records.append(record)
            self._seen.set()

    def wait(self, timeout: float) -> list[logging.LogRecord]:
        """The records so far, once there is one; AssertionError after ``timeout`` seconds."""
        assert self._seen.wait(timeout), f"nothing logged with {self.text!r} in {timeout} s"
        return list(self.records)


@contextmanager
def watch_log(text: str, level: int = logging.INFO) -> Iterator[LogWatch]:
    """A ``LogWatch`` for ``text`` while the block runs (``level``: the least it sees)."""
    watch = LogWatch(text)
    logger = logging.getLogger("stalwart_py")
    previous = logger.level
    logger.setLevel(min(level, previous) if previous else level)
    logger.addHandler(watch)
    try:
        yield watch
    finally:
        logger.removeHandler(watch)
        logger.setLevel(previous)
