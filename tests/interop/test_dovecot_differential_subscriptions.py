"""Subscriptions against Dovecot, as RFC 9051 6.3.7 has them: kept by name whatever happens
to the mailbox (CREATE subscribes nothing, DELETE and RENAME unsubscribe nothing), listed by
LIST (SUBSCRIBED) with \\NonExistent when the mailbox is gone, with CHILDINFO under
RECURSIVEMATCH (RFC 5258), and by LSUB with \\Noselect for an unsubscribed parent."""

from __future__ import annotations

import pytest

from tests.interop.differential import HIGHESTMODSEQ_ALWAYS, compare
from tests.support.dovecot import Dovecot
from tests.support.servers import InProcessServer

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def servers(stalwart: InProcessServer, dovecot: Dovecot) -> tuple[tuple[str, int], ...]:
    return stalwart.address("imap"), ("127.0.0.1", dovecot.port)


def test_subscriptions_are_kept_by_name(servers):
    compare(
        *servers,
        [
            "CREATE Sub",
            "CREATE Sub/X",
            "CREATE Sub/X/Y",
            "CREATE Sub/Z",
            'LIST (SUBSCRIBED) "" "Sub*"',  # CREATE subscribes nothing
            "SUBSCRIBE Sub/X/Y",
            # (Not compared: SUBSCRIBE of a name that has no mailbox. RFC 9051 6.3.7 lets a
            # server refuse it; Dovecot does.)
            'LIST (SUBSCRIBED) "" "Sub*"',
            'LIST (SUBSCRIBED RECURSIVEMATCH) "" Sub/%',
            'LIST (SUBSCRIBED RECURSIVEMATCH) "" Sub/% RETURN (CHILDREN)',
            'LIST "" "Sub*" RETURN (SUBSCRIBED)',
            'LIST (SUBSCRIBED REMOTE) "" "Sub/*"',
            'LSUB "" "Sub*"',
            'LSUB "" Sub/%',  # Sub/X is not subscribed but has a subscribed child
            "DELETE Sub/X/Y",  # the subscription stays
            'LIST (SUBSCRIBED) "" "Sub*"',
            'LSUB "" "Sub*"',
            "RENAME Sub/Z Sub/W",
            'LIST "" "Sub*" RETURN (SUBSCRIBED)',
            "UNSUBSCRIBE Sub/X/Y",  # of a deleted mailbox: OK
            "UNSUBSCRIBE Sub/Never",
            'LIST (SUBSCRIBED) "" "Sub*"',
        ],
        [HIGHESTMODSEQ_ALWAYS],
    )
