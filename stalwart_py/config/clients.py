"""``[mta-sts]``: the MTA-STS policy this server publishes for its domains (RFC 8461).

```toml
[mta-sts]
mode = "testing"        # "testing" | "enforce" | "none" (RFC 8461 5)
max-age = "7d"          # how long senders may cache the policy (at most 31557600 s, a year)
mx = ["mail.example.com"]   # the MX names senders may deliver to; default: server.hostname
```

The policy is served at ``https://mta-sts.<domain>/.well-known/mta-sts.txt`` for every domain
the server hosts (protocols/http/autoconfig.py), and ``stalwart-py dns records`` prints the
``_mta-sts`` TXT record whose ``id`` changes whenever the policy text does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from stalwart_py.config.types import Hostname, ValueParser, parse_duration

MAX_AGE_LIMIT = 31_557_600  # RFC 8461 3.2: max_age is at most 31557600 seconds (about a year)


def _max_age(raw: object) -> float:
    seconds = parse_duration(raw)
    if not 1 <= seconds <= MAX_AGE_LIMIT:
        raise ValueError(f"from 1 to {MAX_AGE_LIMIT} seconds")
    return seconds


MaxAge = Annotated[
    float,
    ValueParser(_max_age, 'a duration of at most a year (RFC 8461 3.2), such as "7d"'),
]


@dataclass(frozen=True, slots=True)
class MtaStsSettings:
    """``[mta-sts]``: see the module docstring."""

    # RFC 8461 5: "enforce": senders deliver only over verified TLS to the mx hosts;
    # "testing": they deliver anyway and report failures (TLS-RPT); "none": policy withdrawn.
    mode: Literal["testing", "enforce", "none"] = "testing"
    # RFC 8461 3.2 recommends weeks or more once a policy is settled; a week is where
    # Stalwart starts, short enough that a mistake in "testing" does not linger.
    max_age: MaxAge = 7 * 86400.0
    # The MX host names senders may deliver to; empty: server.hostname.
    mx: tuple[Hostname, ...] = field(default=(), metadata={"one_or_many": True})
