"""LIST-EXTENDED against Dovecot (RFC 5258, 6154, 5819): selection options (SUBSCRIBED,
REMOTE, RECURSIVEMATCH, SPECIAL-USE), return options (CHILDREN, SUBSCRIBED, SPECIAL-USE,
STATUS), several patterns, % and *. Subscriptions: test_dovecot_differential_subscriptions.py."""

from __future__ import annotations

import pytest

from tests.interop.differential import HIGHESTMODSEQ_ALWAYS, compare
from tests.support.dovecot import Dovecot
from tests.support.servers import InProcessServer

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def servers(stalwart: InProcessServer, dovecot: Dovecot) -> tuple[tuple[str, int], ...]:
    return stalwart.address("imap"), ("127.0.0.1", dovecot.port)


def test_list_extended(servers):
    compare(
        *servers,
        [
            # (Parents are created one by one: CREATE of List/A/B alone makes List and List/A
            # mailboxes here, as RFC 9051 6.3.4 suggests; Dovecot's fs layout makes them
            # \Noselect directories. Not compared.)
            "CREATE List",
            "CREATE List/A",
            "CREATE List/A/B",
            "CREATE List/C",
            'LIST "" "List*"',
            'LIST "" List/%',
            'LIST "List/" %',
            'LIST "" %',
            'LIST "" List/%/%',
            'LIST "" ""',
            # (Not compared: LIST "" *x*. Dovecot matches every pattern against INBOX
            # case-insensitively, so it finds INBOX; we do where the pattern names INBOX.)
            'LIST "" *rch*',
            'LIST "" ~foo',  # an atom may begin with "~" (it is not a literal8 here)
            'LIST "" INBOX',
            'LIST "" inbox',
            'LIST (SPECIAL-USE) "" *',
            'LIST "" % RETURN (SPECIAL-USE)',
            'LIST "" "List*" RETURN (CHILDREN)',
            'LIST (REMOTE) "" "List/*"',
            'LIST "" ("List" "List/C" "Nothing")',
            'LIST "" List/% RETURN (STATUS (MESSAGES UNSEEN UIDNEXT))',
            'LIST "" List/A/B RETURN (CHILDREN STATUS (MESSAGES))',
            'LIST (BOGUS) "" *',
            'LIST (RECURSIVEMATCH) "" *',  # RECURSIVEMATCH alone is BAD (RFC 5258 3)
            "RENAME List/A List/E",
            'LIST "" "List*" RETURN (CHILDREN)',
            # (Not compared: DELETE of List/E while List/E/B exists. RFC 9051 6.3.4 permits
            # it, and here List/E then stays as \Noselect; Dovecot refuses with NO.)
            "DELETE List/E/B",
            "DELETE List/E",
            'LIST "" "List*"',
        ],
        [HIGHESTMODSEQ_ALWAYS],
    )
