"""Whether StepPay's zone-less date-times are in the zone this bundle reads them in.

StepPay writes date-times without an offset and does not publish their zone (docs/STEPPAY.md,
"Time zone": its examples point to UTC, Korean merchants assume Asia/Seoul). A wrong
`STEPPAY_TIMEZONE` moves every stored StepPay time by the zones' difference. The bundle already
holds the evidence to notice: an order it has just created carries StepPay's `createdAt`, which
must lie within a few seconds of our request. Read in the configured zone, a `createdAt` hours
away from the request means the zone is wrong; the difference, rounded to StepPay-plausible
quarter hours, is the offset to add to the configured one.

A disagreement is reported, never acted on (a clock check cannot tell a wrong zone from a wrong
clock with certainty): one warning log line, the `StepPayZoneDisagreement` metric (the
template's `StepPayZoneAlarm` reads it) and nothing else. Reconciliation does not depend on the
answer: its windows are widened by the zones' difference (steppay.reconciliation.ZONE_SLACK).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

# Clock drift and StepPay's own latency stay well under this; a zone difference is at least 30 min.
TOLERANCE = timedelta(minutes=20)
QUARTER_HOUR = timedelta(minutes=15)


@dataclass(frozen=True)
class ZoneDisagreement:
    """StepPay's `createdAt`, read in the configured zone, is `skew` away from our request."""

    configured: str
    skew: timedelta  # createdAt (as read) minus the time of our request, rounded to 15 minutes
    observed_utc_offset: timedelta  # the offset StepPay's date-times appear to be written in

    def describe(self) -> str:
        hours = self.observed_utc_offset / timedelta(hours=1)
        return (
            f"StepPay's createdAt is {self.skew} away from our request when read as {self.configured}: "
            f"StepPay appears to write UTC{hours:+g}"
        )


def _rounded(delta: timedelta) -> timedelta:
    return QUARTER_HOUR * round(delta / QUARTER_HOUR)


def check_created_at(
    created_at: datetime | None, requested_at: datetime, configured: tzinfo
) -> ZoneDisagreement | None:
    """The disagreement `created_at` (parsed in `configured`) shows, or None when it agrees.

    `requested_at` is when we sent the request (aware). A missing `createdAt` is no evidence.
    """
    if created_at is None or created_at.tzinfo is None:
        return None
    skew = created_at - requested_at
    if abs(skew) <= TOLERANCE:
        return None
    # StepPay wrote wall time W in its zone Z; we read W in `configured` (offset C): the instant
    # we hold is W - C, the true one W - Z, so skew = Z - C and Z = C + skew.
    configured_offset = created_at.utcoffset() or timedelta(0)
    rounded = _rounded(skew)
    return ZoneDisagreement(
        configured=str(configured),
        skew=rounded,
        observed_utc_offset=configured_offset + rounded,
    )


__all__ = ["QUARTER_HOUR", "TOLERANCE", "ZoneDisagreement", "check_created_at"]
