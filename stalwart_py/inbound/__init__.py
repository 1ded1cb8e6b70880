"""Checks of mail from strangers (issue 15): sender authentication, DNS blocklists, rate
limits, and filing quarantined mail into Junk.

``spf`` checks SPF (RFC 7208) for MAIL FROM and HELO and writes ``Received-SPF``
(``spf_record`` parses records, ``spf_macros`` expands macros); every check asks DNS through
the server's one resolver (``stalwart_py.resolver``, ``ServerContext.resolver``).
``results`` writes the ``Authentication-Results`` header (RFC 8601) and removes forged ones;
``rate`` is the per-client rate limiter; ``junk`` files quarantined mail; ``dnsbl`` asks DNS
block- and allowlists; ``checks`` runs them for one SMTP transaction and applies the
``[auth]`` policy (stalwart_py/config/inbound.py). The SMTP session calls them through
``protocols/smtp/intake.py``; ``Inbound`` (on ``ServerContext.inbound``) holds what they share
across sessions.

The verifiers each return a small frozen result carrying what RFC 8601 needs: ``dkim``
(RFC 6376/8463, one result per signature), ``arc`` (RFC 8617, the sealers in instance order),
``dmarc`` (RFC 7489, alignment and the policy to apply) and ``iprev`` (RFC 8601 2.7.3); their
DNS goes through the one ``stalwart_py.resolver``, DKIM and ARC keys fetched before dkimpy
runs (``keys``).
"""
