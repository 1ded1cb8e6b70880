"""Checks of mail from strangers (issue 15): sender authentication, DNS blocklists, rate
limits, and filing quarantined mail into Junk.

``results`` writes the ``Authentication-Results`` header (RFC 8601) and removes forged ones;
``rate`` is the per-client rate limiter; ``junk`` files quarantined mail; ``dnsbl`` asks DNS
block- and allowlists; ``checks`` runs them for one SMTP transaction and applies the
``[auth]`` policy (stalwart_py/config/inbound.py). The SMTP session calls them through
``protocols/smtp/intake.py``; ``Inbound`` (on ``ServerContext.inbound``) holds what they share
across sessions.
"""
