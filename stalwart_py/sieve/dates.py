"""Dates for the "date" extension (RFC 5260 sections 4 and 5): parsing a header field's date,
moving it to a time zone, and the date-parts a ``date`` or ``currentdate`` test compares.

* A field's date is its RFC 5322 ``date-time`` (obsolete forms too: two-digit years,
  "EST"-style zones, comments); for ``Received`` it is the text after the last ";"
  (RFC 5260 section 4). A field without a valid date gives no value, so the test is false.
* The zone a date is shown in: ``:zone "+hhmm"`` that zone, ``:originalzone`` the field's
  own, neither the server's local zone (section 4). An invalid ``:zone`` is taken as local
  time, as Pigeonhole does (it warns at upload); the RFC does not say.
* A leap second (":60") is read as :59, as Pigeonhole does: the date-parts stay consistent
  with every other conversion. ``iso8601`` writes a zero offset as "Z", as Pigeonhole.
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass
from email.utils import parsedate_tz

DATE_PARTS = frozenset(
    {
        "year", "month", "day", "date", "julian", "hour", "minute", "second", "time",
        "iso8601", "std11", "zone", "weekday",
    }
)  # fmt: skip
_ZONE = re.compile(r"[+-](?:[01][0-9]|2[0-3])[0-5][0-9]\Z")
_COMMENT = re.compile(r"\([^()]*\)")
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
MJD_EPOCH = -3506716800  # 1858-11-17T00:00:00Z, day 0 of the Modified Julian Day


@dataclass(frozen=True, slots=True)
class Moment:
    """An instant (seconds since the epoch, UTC) and the offset of the zone it is shown in."""

    timestamp: int
    offset: int  # seconds east of UTC


def valid_zone(zone: str) -> bool:
    return bool(_ZONE.match(zone))


def zone_offset(zone: str) -> int:
    """ "+hhmm" / "-hhmm" in seconds east of UTC."""
    sign = -1 if zone[0] == "-" else 1
    return sign * (int(zone[1:3]) * 3600 + int(zone[3:5]) * 60)


def local_offset(timestamp: int) -> int:
    """The server's local zone offset at ``timestamp``."""
    return time.localtime(timestamp).tm_gmtoff


def parse_date(text: str, *, received: bool = False) -> Moment | None:
    """The date of a header field value in its own zone, or None when it has none."""
    if received:
        if ";" not in text:
            return None
        text = text.rpartition(";")[2]
    text = _COMMENT.sub(" ", text).strip()
    parsed = parsedate_tz(text)
    if parsed is None:
        return None
    year, month, day, hour, minute, second = parsed[:6]
    offset = parsed[9] or 0  # no zone (or -0000): UTC, RFC 5322 3.3
    if 100 <= year < 1000:  # RFC 5322 4.3 obs-year: three digits mean 1900 + the year
        year += 1900  # (two are mapped by parsedate_tz; Pigeonhole refuses three)
    if not (1 <= month <= 12 and 0 <= hour <= 23 and 0 <= minute <= 59 and 0 <= second <= 60):
        return None
    if not 1 <= day <= calendar.monthrange(year, month)[1] or not 0 <= year <= 9999:
        return None
    second = min(second, 59)
    timestamp = calendar.timegm((year, month, day, hour, minute, second)) - offset
    return Moment(timestamp, offset)


def in_zone(moment: Moment, zone: str | None, original: bool) -> Moment:
    """``moment`` shown as the test asks: :originalzone, :zone, or local time."""
    if original:
        return moment
    if zone is not None and valid_zone(zone):
        return Moment(moment.timestamp, zone_offset(zone))
    return Moment(moment.timestamp, local_offset(moment.timestamp))


def date_part(moment: Moment, part: str) -> str | None:
    """One date-part of RFC 5260 section 4.2 (None for an unknown part name)."""
    part = part.lower()
    fields = time.gmtime(moment.timestamp + moment.offset)
    sign = "-" if moment.offset < 0 else "+"
    hours, minutes = divmod(abs(moment.offset) // 60, 60)
    if part == "year":
        return f"{fields.tm_year:04d}"
    if part == "month":
        return f"{fields.tm_mon:02d}"
    if part == "day":
        return f"{fields.tm_mday:02d}"
    if part == "date":
        return f"{fields.tm_year:04d}-{fields.tm_mon:02d}-{fields.tm_mday:02d}"
    if part == "julian":  # the Modified Julian Day of the date in that zone
        local = moment.timestamp + moment.offset
        return str((local - MJD_EPOCH) // 86400)
    if part == "hour":
        return f"{fields.tm_hour:02d}"
    if part == "minute":
        return f"{fields.tm_min:02d}"
    if part == "second":
        return f"{fields.tm_sec:02d}"
    if part == "time":
        return f"{fields.tm_hour:02d}:{fields.tm_min:02d}:{fields.tm_sec:02d}"
    if part == "iso8601":
        zone = "Z" if moment.offset == 0 else f"{sign}{hours:02d}:{minutes:02d}"
        return (
            f"{fields.tm_year:04d}-{fields.tm_mon:02d}-{fields.tm_mday:02d}T"
            f"{fields.tm_hour:02d}:{fields.tm_min:02d}:{fields.tm_sec:02d}{zone}"
        )
    if part == "std11":  # RFC 5322 date-time, the day in two digits as Pigeonhole writes it
        return (
            f"{_WEEKDAYS[fields.tm_wday]}, {fields.tm_mday:02d} {_MONTHS[fields.tm_mon - 1]} "
            f"{fields.tm_year:04d} {fields.tm_hour:02d}:{fields.tm_min:02d}:"
            f"{fields.tm_sec:02d} {sign}{hours:02d}{minutes:02d}"
        )
    if part == "zone":
        return f"{sign}{hours:02d}{minutes:02d}"
    if part == "weekday":  # 0 is Sunday
        return str((fields.tm_wday + 1) % 7)
    return None
