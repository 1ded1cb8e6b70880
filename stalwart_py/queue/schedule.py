"""Time in the queue: the clock (injectable, so tests need not wait) and the retry schedule.

A recipient that failed transiently is tried again after ``queue.retry[n]`` where n is the
number of attempts it has had before this one (the last interval repeats), until the message
is ``queue.max-age`` old; then it fails for good (status 4.4.7, delivery time expired,
RFC 3463) and bounces.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch, as the store's timestamps are."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    intervals: Sequence[float]
    max_age: float

    def next_attempt(self, now: float, attempts_before: int) -> float:
        index = min(attempts_before, len(self.intervals) - 1)
        return now + self.intervals[index]

    def expired(self, created: float, now: float) -> bool:
        return now - created >= self.max_age

    def retry_until(self, created: float) -> float:
        return created + self.max_age
