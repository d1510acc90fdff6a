"""Time handling: aware datetimes inside, StepPay's zone-less wall time outside.

StepPay writes every date-time as a zone-less local date-time (``2023-06-19T06:19:55.403711``)
and does not say in which zone. Its own order example points to UTC (the ``idKey``
``1687155595516...`` is the epoch milliseconds of that order's ``createdAt`` read as UTC), so the
sandbox writes UTC by default; ``Asia/Seoul`` is the other choice (``--timezone``). The sandbox
keeps timezone-aware datetimes internally and only formats them this way at the edge (API
responses, webhooks); zone-less request values are read in the same zone.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo

try:  # pragma: no cover - depends on the platform's tz database
    from zoneinfo import ZoneInfo

    SEOUL: tzinfo = ZoneInfo("Asia/Seoul")
except Exception:  # noqa: BLE001 - no tz database: Korea has no DST, a fixed offset is exact
    SEOUL = timezone(timedelta(hours=9), "KST")

# The zones the sandbox can write its zone-less date-times in (StepPay's is unverified).
ZONES: dict[str, tzinfo] = {"UTC": UTC, "Asia/Seoul": SEOUL}
DEFAULT_ZONE_NAME = "UTC"


def zone_named(name: object) -> tzinfo:
    """``UTC`` or ``Asia/Seoul``; ``ValueError`` for anything else."""
    if not isinstance(name, str) or name not in ZONES:
        raise ValueError(f"timezone must be one of {', '.join(ZONES)}")
    return ZONES[name]


def zone_name(zone: tzinfo) -> str:
    return next((name for name, value in ZONES.items() if value is zone), str(zone))


_LOCAL_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?", re.ASCII)
_REQUEST_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?", re.ASCII)


def now() -> datetime:
    """The current time, timezone-aware, in Asia/Seoul."""
    return datetime.now(SEOUL)


def to_steppay(value: datetime | None, zone: tzinfo = SEOUL) -> str | None:
    """Format an aware datetime as StepPay does: zone-less wall time in ``zone``, with microseconds."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetimes are not allowed inside the sandbox")
    return value.astimezone(zone).strftime("%Y-%m-%dT%H:%M:%S.%f")


def parse_datetime(text: str, zone: tzinfo = SEOUL) -> datetime:
    """Parse an ISO date-time; a zone-less one is read as wall time in ``zone``.

    Accepts a plain date (``2023-06-19``) as its midnight. Raises ``ValueError`` when invalid.
    """
    if not isinstance(text, str) or not text or len(text) > 64:
        raise ValueError("not a date-time")
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    if "T" not in value and " " not in value and len(value) == 10:
        value += "T00:00:00"
    # Python < 3.11 cannot read more than 6 fractional digits: StepPay never sends more.
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed


def parse_request_datetime(text: object, zone: tzinfo = SEOUL) -> datetime:
    """A date-time as a request body may carry it: ``2023-06-19T06:19:55[.ffffff][Z|+09:00]``.

    Stricter than ``parse_datetime`` (no bare dates): what StepPay's API accepts as date-time.
    """
    if not isinstance(text, str) or not _REQUEST_RE.fullmatch(text):
        raise ValueError("not an ISO 8601 date-time")
    return parse_datetime(text, zone)


def is_steppay_local(text: str) -> bool:
    """True when ``text`` looks like StepPay's zone-less local date-time."""
    return bool(_LOCAL_RE.fullmatch(text))


def to_iso(value: datetime | None) -> str | None:
    """ISO 8601 with offset: the state file's and the control API's own format."""
    return None if value is None else value.isoformat()


def from_iso(value: str | None) -> datetime | None:
    return None if value is None else parse_datetime(value)


def add_interval(value: datetime, unit: str, count: int = 1) -> datetime:
    """Move ``value`` forward by ``count`` DAY/WEEK/MONTH/YEAR, clamping month ends (Jan 31 → Feb 28)."""
    if unit == "DAY":
        return value + timedelta(days=count)
    if unit == "WEEK":
        return value + timedelta(weeks=count)
    if unit in ("MONTH", "YEAR"):
        months = count * (12 if unit == "YEAR" else 1)
        index = value.month - 1 + months
        year, month = value.year + index // 12, index % 12 + 1
        day = min(value.day, calendar.monthrange(year, month)[1])
        return value.replace(year=year, month=month, day=day)
    raise ValueError(f"unknown interval unit {unit!r}")


def epoch_seconds(value: datetime | None = None) -> int:
    return int((value or datetime.now(UTC)).timestamp())
