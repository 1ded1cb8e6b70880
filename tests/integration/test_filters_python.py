"""The filter API as a plugin author uses it: a Filter class with its own settings table
(docs/filters.md's example), quarantine to Junk, a filter that fails or overruns its time."""

from __future__ import annotations

import smtplib
from dataclasses import dataclass

import anyio
import pytest

from stalwart_py.filters import (
    Accept,
    AddHeader,
    ChangeHeader,
    Changes,
    Filter,
    FilterMessage,
    Quarantine,
    Reject,
    Verdict,
    runner,
)
from stalwart_py.filters import config as filter_config_module
from stalwart_py.milter import MilterFilter
from tests.support.milters import PASSWORD, filter_config
from tests.support.smtp import connect, mailbox_messages


@dataclass(frozen=True, slots=True)
class TagSettings:
    tag: str = "[SPAM]"
    words: tuple[str, ...] = ()


class SubjectTag(Filter):
    """The example of docs/filters.md."""

    name = "subject-tag"
    settings = TagSettings

    async def check(self, message: FilterMessage) -> Verdict:
        text = message.content.lower()
        hits = [w for w in self.config.words if w.encode() in text]
        if len(hits) > 3:
            return Reject(550, "5.7.1", "Too much of a good thing")
        if hits:
            subject = message.parsed()["Subject"] or ""
            return Accept(
                Changes(
                    headers=(
                        ChangeHeader("Subject", f"{self.config.tag} {subject}"),
                        AddHeader("X-Tagged", ", ".join(hits)),
                    )
                )
            )
        return Accept()


class Junker(Filter):
    name = "junker"

    async def check(self, message: FilterMessage) -> Verdict:
        assert message.peer.ip is not None and message.helo == "client.test"
        return Quarantine("looks like a newsletter")


class Broken(Filter):
    name = "broken"

    async def check(self, message: FilterMessage) -> Verdict:
        raise RuntimeError("the filter's service is down")


class Sleepy(Filter):
    name = "sleepy"

    async def check(self, message: FilterMessage) -> Verdict:
        await anyio.Event().wait()  # never answers
        return Accept()


CLASSES = {cls.name: cls for cls in (SubjectTag, Junker, Broken, Sleepy, MilterFilter)}


@pytest.fixture(autouse=True)
def installed_filters(monkeypatch):
    """As if each class were registered under the entry-point group stalwart_py.filters."""
    monkeypatch.setattr(filter_config_module, "discover_filters", lambda: dict(CLASSES))
    monkeypatch.setattr(runner, "discover_filters", lambda: dict(CLASSES))


def start(start_server, server_cert, tables: str, names: str):
    server = start_server(filter_config(server_cert, tables, names, imap=False))
    server.add_account("bob@example.test", PASSWORD)
    return server


def send(server, body: str = "Hello.") -> dict:
    text = f"From: a@remote.test\r\nTo: bob@example.test\r\nSubject: Hi\r\n\r\n{body}\r\n"
    with connect(server) as client:
        client.ehlo("client.test")
        return client.sendmail("a@remote.test", ["bob@example.test"], text)


TAGGER = """
[filter.tagger]
type = "subject-tag"
tag = "[LOTTO]"
words = ["lottery", "winner", "prize", "claim"]
"""


def test_a_plugin_filter_with_its_own_keys_changes_headers(start_server, server_cert):
    server = start(start_server, server_cert, TAGGER, '["tagger"]')
    send(server, "You are a lottery winner!")
    (stored,) = mailbox_messages(server, "bob@example.test")
    assert b"Subject: [LOTTO] Hi\r\n" in stored
    assert b"X-Tagged: lottery, winner\r\n" in stored
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(server, "Lottery winner: claim your prize!")
    assert refused.value.smtp_code == 550
    assert b"Too much of a good thing" in refused.value.smtp_error


def test_a_plugin_filters_keys_are_validated(start_server, server_cert):
    from stalwart_py.config import ConfigError

    with pytest.raises(ConfigError, match="unknown key"):
        start(start_server, server_cert, TAGGER + "colour = 1\n", '["tagger"]')


def test_quarantine_delivers_to_junk_after_the_other_filters(start_server, server_cert):
    tables = TAGGER + '[filter.junker]\ntype = "junker"\n'
    server = start(start_server, server_cert, tables, '["junker", "tagger"]')
    send(server, "A prize for you")
    assert mailbox_messages(server, "bob@example.test") == []
    (stored,) = mailbox_messages(server, "bob@example.test", "Junk")
    assert b"X-Tagged: prize" in stored  # the chain went on after the quarantine


@pytest.mark.parametrize("kind", ["broken", "sleepy"])
def test_a_failing_filter_follows_on_error(start_server, server_cert, kind):
    tables = (
        f'[filter.strict]\ntype = "{kind}"\ntime-limit = "0.3s"\n'
        f'[filter.lenient]\ntype = "{kind}"\ntime-limit = "0.3s"\non-error = "accept"\n'
    )
    server = start(start_server, server_cert, tables, '["lenient", "strict"]')
    with pytest.raises(smtplib.SMTPDataError) as deferred:
        send(server)
    assert deferred.value.smtp_code == 451
    assert mailbox_messages(server, "bob@example.test") == []


def test_a_disabled_filter_is_skipped(start_server, server_cert):
    tables = '[filter.strict]\ntype = "broken"\nenable = false\n'
    server = start(start_server, server_cert, tables, '["strict"]')
    send(server)
    assert len(mailbox_messages(server, "bob@example.test")) == 1
