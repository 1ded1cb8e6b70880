"""Rate limits for strangers on MX listeners (``smtp.rate.connections-per-ip``,
``messages-per-ip``), over SMTP from clients posing as outside addresses through PROXY headers;
submission is not limited."""

from __future__ import annotations

import re
import smtplib

import pytest

from tests.support.inbound import PASSWORD, USER, inbound_config
from tests.support.proxied import ProxiedSMTP


@pytest.fixture
def server(start_server, server_cert):
    server = start_server(
        inbound_config(
            server_cert,
            smtp="rate.connections-per-ip = 2\nrate.messages-per-ip = 2",
            extra='[auth.spf]\nverify = "disable"\n[auth.dkim]\nverify = "disable"\n'
            '[auth.dmarc]\nverify = "disable"\n[auth.arc]\nverify = "disable"\n'
            '[auth.iprev]\nverify = "disable"\n',
        )
    )
    server.add_account(USER, PASSWORD)
    return server


def test_connections_over_the_rate_get_421_with_a_retry_time(server):
    address = server.address("mx")
    first = ProxiedSMTP("198.51.100.7", *address)
    second = ProxiedSMTP("198.51.100.7", *address)
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        ProxiedSMTP("198.51.100.7", *address)
    assert refused.value.smtp_code == 421
    text = refused.value.smtp_error.decode()
    assert re.fullmatch(
        r"4\.7\.0 mail\.example\.test Too many connections from your address, "
        r"try again in (29|30) seconds",
        text,
    ), text
    # Another address is not limited by this one; the open sessions go on.
    with ProxiedSMTP("198.51.100.8", *address) as other:
        assert other.noop()[0] == 250
    for client in (first, second):
        assert client.noop()[0] == 250
        client.quit()
    # Submission is not an MX listener: not limited.
    for _ in range(4):
        with ProxiedSMTP("198.51.100.7", *server.address("submission")) as client:
            assert client.noop()[0] == 250


def test_messages_over_the_rate_get_451_and_authenticated_clients_are_not_limited(server):
    with ProxiedSMTP("203.0.113.9", *server.address("mx")) as client:
        for _ in range(2):
            client.sendmail("a@remote.test", [USER], b"Subject: hi\r\n\r\nhello\r\n")
        code, text = client.mail("a@remote.test")
        assert code == 451
        assert re.fullmatch(
            rb"4\.7\.0 Too many messages from your address, try again in (29|30) seconds", text
        ), text
    with ProxiedSMTP("203.0.113.9", *server.address("submission")) as client:
        client.login(USER, PASSWORD)
        for _ in range(3):
            client.sendmail(USER, [USER], b"Subject: mine\r\n\r\nhello\r\n")
