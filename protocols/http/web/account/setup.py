"""``/account/setup``: how to set up a mail client, from the listeners really bound.

The endpoints are ``stalwart_py.clients.endpoints``, the same list autoconfig, Autodiscover
and the Apple profile describe (``protocols/http/autoconfig.py``), so this page cannot
disagree with them: per service, implicit TLS first, then STARTTLS. The user name is the
address; the password the account's own, or an app password (which two-factor sign-in
requires). Apple devices get the profile link; Thunderbird and Outlook find the settings by
themselves from the address.
"""

from __future__ import annotations

from urllib.parse import quote

from protocols.http.autoconfig import apple_profile_plist
from protocols.http.messages import Response
from protocols.http.web.pages import PageTable, WebRequest
from stalwart_py import clients

pages = PageTable()

SERVICES = (
    ("imap", "Incoming mail (IMAP)"),
    ("pop3", "Incoming mail (POP3)"),
    ("submission", "Outgoing mail (SMTP submission)"),
    ("managesieve", "Filters (ManageSieve)"),
)
SECURITY = {"tls": "SSL/TLS (implicit TLS)", "starttls": "STARTTLS"}


@pages.page("/account/setup")
async def setup(web: WebRequest) -> Response:
    server = web.server
    found = clients.endpoints(server.config, server.listeners)
    groups = [
        (label, [e for e in found if e.service == service])
        for service, label in SERVICES
        if any(e.service == service for e in found)
    ]
    state = await server.directory.two_factor.status(web.account.id)
    address = web.account.address
    return web.render(
        "account/setup.html",
        title="Set up a mail client",
        groups=groups,
        security=SECURITY,
        address=address,
        # only when the profile can be made (it wants IMAP and submission)
        profile=f"/apple/{quote(address, safe='@')}.mobileconfig"
        if apple_profile_plist(address, found) is not None
        else None,
        two_factor=state is not None and state.enabled,
    )
