"""Sieve "enotify" with the mailto method (RFC 5435, RFC 5436): the mailto URI (recipients,
header fields kept and ignored, injection refused), the notify action and the notify tests,
:encodeurl, what is refused at upload (line and column), the rules that suppress a
notification, and the notification message itself."""

from __future__ import annotations

import email
import email.policy

import pytest

from stalwart_py.sieve import Environment, Interpreter, MessageView, SieveSyntaxError, parse_script
from stalwart_py.sieve.actions import Notify, SieveRuntimeError
from stalwart_py.sieve.notify import InvalidUri, build, parse_mailto, refusal

REQUIRE = 'require ["enotify", "variables", "relational", "comparator-i;ascii-numeric"];\n'
MESSAGE = (
    b"From: Ann <ann@remote.test>\r\n"
    b"To: bob@example.test\r\n"
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
    b"\r\n"
    b"Hello\r\n"
)


def run(script: str, message: bytes = MESSAGE):
    environment = Environment(MessageView(message), "ann@remote.test", "bob@example.test")
    return Interpreter(parse_script(REQUIRE + script), environment).run()


def notifies(script: str) -> list[Notify]:
    return [a for a in run(script).actions if isinstance(a, Notify)]


def test_mailto_uri_recipients_and_header_fields():
    uri = parse_mailto(
        "mailto:alice@example.org,%22Bob%22%20%3Cbob@example.org%3E"
        "?cc=carol@example.org&bcc=hidden@example.org&subject=Hi%20there"
        "&body=line%201%0D%0Aline%202&X-Tag=1&From=evil@example.org"
        "&Auto-Submitted=no&Received=x&Reply-To=me@example.org"
    )
    assert uri.to == ("alice@example.org", "bob@example.org")
    assert uri.cc == ("carol@example.org",)  # bcc: ignored
    assert uri.subject == "Hi there" and uri.body == "line 1\r\nline 2"
    assert uri.headers == (("x-tag", "1"), ("reply-to", "me@example.org"))


@pytest.mark.parametrize(
    "uri",
    [
        "xmpp:bob@example.org",
        "mailto:not an address",
        "mailto:a@example.org?subject=a%0D%0ABcc:%20x@example.org",
        "mailto:a@example.org?novalue",
        "mailto:" + ",".join(f"u{i}@example.org" for i in range(9)),
        "just text",
    ],
)
def test_invalid_mailto_uris(uri):
    with pytest.raises(InvalidUri):
        parse_mailto(uri)


def test_notify_action_and_its_defaults():
    [first, second] = notifies(
        'notify :importance "1" :from "bob@example.test" :options ["a=b"] :message "m"'
        ' "mailto:alice@example.org";\n'
        'notify "mailto:carol@example.org";\n'
    )
    assert first == Notify("mailto:alice@example.org", "bob@example.test", 1, ("a=b",), "m")
    assert second == Notify("mailto:carol@example.org", None, 2, (), None)
    assert run('notify "mailto:carol@example.org";').implicit_keep  # notify keeps


def test_valid_notify_method_and_capability():
    script = (
        'if valid_notify_method ["mailto:a@example.org", "mailto:b@example.org"] {'
        ' notify "mailto:ok1@example.org"; }\n'
        'if valid_notify_method ["mailto:a@example.org", "xmpp:b@example.org"] {'
        ' notify "mailto:no1@example.org"; }\n'
        'if notify_method_capability "mailto:a@example.org" "Online" "maybe" {'
        ' notify "mailto:ok2@example.org"; }\n'
        'if notify_method_capability "mailto:a@example.org" "online" ["yes", "no"] {'
        ' notify "mailto:no2@example.org"; }\n'
        'if notify_method_capability "xmpp:a@example.org" "online" "maybe" {'
        ' notify "mailto:no3@example.org"; }\n'
        'if notify_method_capability :count "eq" :comparator "i;ascii-numeric"'
        ' "mailto:a@example.org" "other" "0" { notify "mailto:ok3@example.org"; }\n'
    )
    assert [n.method for n in notifies(script)] == [
        "mailto:ok1@example.org",
        "mailto:ok2@example.org",
        "mailto:ok3@example.org",
    ]


def test_encodeurl_modifier():
    script = (
        'if header :matches "subject" "*" { set :encodeurl "s" "${1} & more/~._-"; }\n'
        'notify "mailto:alice@example.org?subject=${s}";\n'
    )
    [action] = notifies(script)
    assert action.method == "mailto:alice@example.org?subject=Gr%C3%BC%C3%9Fe%20%26%20more%2F~._-"
    assert parse_mailto(action.method).subject == "Grüße & more/~._-"
    # precedence 15: after :upper (40), before :length (10)
    [upper] = notifies(
        'set :upper :encodeurl "x" "a b"; notify "mailto:x@example.org?subject=${x}";'
    )
    assert upper.method.endswith("subject=A%20B")


def test_a_method_built_from_variables_is_checked_when_run():
    with pytest.raises(SieveRuntimeError, match="unsupported notification method"):
        run('set "m" "xmpp:x@example.org"; notify "${m}";')
    with pytest.raises(SieveRuntimeError, match="importance"):
        run('set "i" "7"; notify :importance "${i}" "mailto:x@example.org";')


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ('notify "mailto:x@example.org";', 'line 1, column 1: "notify" needs require "enotify"'),
        (
            'require "enotify";\nnotify "xmpp:x@example.org";',
            'line 2, column 1: notify: unsupported notification method "xmpp" (mailto)',
        ),
        (
            'require "enotify";\nnotify :importance "4" "mailto:x@example.org";',
            'line 2, column 1: notify :importance must be "1", "2" or "3", not "4"',
        ),
        (
            'require "enotify";\nnotify :from "nobody" "mailto:x@example.org";',
            'notify :from "nobody" is not a valid address',
        ),
        (
            'require "enotify";\nnotify :options "novalue" "mailto:x@example.org";',
            'notify :options "novalue" is not of the form name=value',
        ),
        ('require "variables";\nset :encodeurl "a" "b";', '":encodeurl" needs require "enotify"'),
        ('require "enotify";\nif valid_notify_method {}', "valid_notify_method"),
    ],
)
def test_refused_at_upload(script, message):
    with pytest.raises(SieveSyntaxError) as info:
        parse_script(script)
    assert message in str(info.value)


def test_no_notification_for_automatic_list_or_bounced_mail():
    view = MessageView(MESSAGE)
    assert refusal(view, "ann@remote.test") is None
    assert refusal(view, "") == "a bounce (the null sender)"
    for header, why in (
        (b"Auto-Submitted: auto-notified; owner-email=x@y\r\n", "Auto-Submitted"),
        (b"Auto-Submitted: auto-replied\r\n", "Auto-Submitted"),
        (b"List-Id: <l.remote.test>\r\n", "mailing list"),
        (b"Precedence: bulk\r\n", "Precedence"),
    ):
        assert why in (refusal(MessageView(header + MESSAGE), "ann@remote.test") or "")
    assert refusal(MessageView(b"Auto-Submitted: no\r\n" + MESSAGE), "ann@remote.test") is None


def test_the_notification_message():
    action = Notify(
        "mailto:alice@example.org?cc=carol@example.org&X-Tag=t&From=evil@example.org", None, 1, (),
        None,
    )  # fmt: skip
    data = build(
        action,
        MessageView(MESSAGE),
        owner="bob@example.test",
        sender="bob@example.test",
        recipients=("alice@example.org", "carol@example.org"),
        hostname="mail.example.test",
    )
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert message["From"] == "bob@example.test"
    assert message["To"] == "alice@example.org" and message["Cc"] == "carol@example.org"
    assert message["Subject"] == "Notification: Grüße"
    assert message["Auto-Submitted"] == 'auto-notified; owner-email="bob@example.test"'
    assert message["X-Priority"] == "1 (Highest)" and message["Importance"] == "High"
    assert message["X-Tag"] == "t" and message.get_all("From") == ["bob@example.test"]
    assert "From: Ann <ann@remote.test>" in message.get_content()
    with_message = Notify("mailto:alice@example.org?subject=s&body=b", None, 2, (), "Urgent")
    data = build(
        with_message,
        MessageView(MESSAGE),
        owner="bob@example.test",
        sender="bob@example.test",
        recipients=("alice@example.org",),
        hostname="h",
    )
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert message["Subject"] == "Urgent" and message.get_content().strip() == "b"
    assert message["Importance"] is None
