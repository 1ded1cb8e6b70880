"""The Autodiscover request parser (protocols/http/autoconfig.py) on hostile input: any bytes
give the request's fields or a 400, never another exception, and no entity is expanded."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.http.autoconfig import OUTLOOK_SCHEMA, parse_autodiscover
from protocols.http.messages import HttpError

REQUEST = (
    '<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/'
    'requestschema/2006"><Request><EMailAddress> a@example.test </EMailAddress>'
    f"<AcceptableResponseSchema>{OUTLOOK_SCHEMA}</AcceptableResponseSchema></Request>"
    "</Autodiscover>"
).encode()


def test_an_outlook_request():
    assert parse_autodiscover(REQUEST) == ("a@example.test", OUTLOOK_SCHEMA)
    bare = b"<Autodiscover><Request><EMailAddress>b@x.test</EMailAddress></Request></Autodiscover>"
    assert parse_autodiscover(bare) == ("b@x.test", None)


@pytest.mark.parametrize(
    "body",
    [
        b'<!DOCTYPE r [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b"<Autodiscover><Request><EMailAddress>&e;</EMailAddress></Request></Autodiscover>",
        b'<!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
        b"<Autodiscover><Request><EMailAddress>&b;</EMailAddress></Request></Autodiscover>",
        b"<Autodiscover><Request><EMailAddress></EMailAddress></Request></Autodiscover>",
        b"<Other><Request><EMailAddress>a@b.c</EMailAddress></Request></Other>",
        b"",
        b"\xff\xfe<",
    ],
)
def test_refused(body):
    with pytest.raises(HttpError) as raised:
        parse_autodiscover(body)
    assert raised.value.status == 400


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.builds(
            lambda cut, junk: REQUEST[:cut] + junk + REQUEST[cut:],
            st.integers(0, len(REQUEST)),
            st.binary(max_size=20),
        ),
    )
)
def test_any_bytes_give_fields_or_400(body):
    status = 200
    try:
        email, schema = parse_autodiscover(body)
    except HttpError as exc:
        status = exc.status
    else:
        assert isinstance(email, str) and email
        assert schema is None or isinstance(schema, str)
    assert status in (200, 400)
