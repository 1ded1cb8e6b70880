"""When to renew, and when to try again after a failure (pure functions, tested alone).

* A certificate is renewed ``renew-before`` ahead of its notAfter, less a random jitter (up to
  a tenth of renew-before, at most a day), so that many servers set up alike, or one server's
  several certificates, do not all ask the CA at the same second (Let's Encrypt asks clients
  to spread renewals). Jitter only moves a renewal earlier, never past the configured margin.
* After a failure, the next try waits an exponential backoff (1 min, 2, 4, ... up to 6 h, with
  +-20 % jitter), or the CA's ``Retry-After`` when that is longer (a rate limit says when it
  lifts, RFC 8555 6.6). A Retry-After is honoured up to a week; past that it is taken as a
  mistake rather than a reason to let a certificate expire silently.
"""

from __future__ import annotations

import random

FIRST_BACKOFF = 60.0
MAX_BACKOFF = 6 * 3600.0
MAX_RETRY_AFTER = 7 * 86400.0
MAX_JITTER = 86400.0


def renewal_time(not_after: float, renew_before: float, rng: random.Random) -> float:
    """The time (epoch seconds) to renew a certificate valid until ``not_after``."""
    jitter = rng.uniform(0.0, min(renew_before / 10.0, MAX_JITTER))
    return not_after - renew_before - jitter


def retry_delay(failures: int, retry_after: float | None, rng: random.Random) -> float:
    """Seconds to wait after the ``failures``-th failure in a row (1 for the first)."""
    base = min(MAX_BACKOFF, FIRST_BACKOFF * 2.0 ** max(0, failures - 1))
    delay = base * rng.uniform(0.8, 1.2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay
