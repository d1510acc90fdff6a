"""Scheduled reconciliation: records the payments, late deposits, refunds and subscription changes
that StepPay shows and no webhook told us about.

Webhooks can be lost; this is how a merchant stops losing them anyway. Each difference goes
through the same confirmation path as a webhook (StepPay lookup, verification rules, conditional
write), so running it beside live traffic records nothing twice. A run that is not healthy (an
order or subscription it could not check, a list that was empty where we hold orders, out of
time) puts 1 in `ReconciliationFailed`; a run that raises counts in the function's `Errors`: both
alarm (template.yaml, ReconciliationFailedAlarm / ReconciliationErrorsAlarm).

The event may carry `windowMinutes` (the recent window), `lookbackDays` (refunds) and `asOf`
(an ISO 8601 date-time with its zone, within 31 days of now: reconcile as if it were then).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from steppay.reconciliation import reconcile
from steppay.service import get_settings
from steppay.tracing import get_tracer

logger = Logger()
tracer = get_tracer()
metrics = Metrics()

DEFAULT_LOOKBACK_DAYS = 30
MAX_MINUTES = 60 * 24 * 31
MAX_LOOKBACK_DAYS = 90
MAX_AS_OF_DISTANCE = timedelta(days=31)


def _whole(value: Any, what: str, low: int, high: int) -> int:
    """A whole number clamped into [low, high]; anything else is refused (the run fails loudly)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{what} must be a whole number")
    number = int(value)
    return max(low, min(number, high))


def _as_of(value: Any, real_now: datetime) -> datetime:
    if value is None:
        return real_now
    if not isinstance(value, str):
        raise ValueError("asOf must be an ISO 8601 date-time")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("asOf must carry its zone")
    if abs(moment - real_now) > MAX_AS_OF_DISTANCE:
        raise ValueError("asOf must be within 31 days of now")
    return moment.astimezone(UTC)


def run_parameters(event: dict[str, Any], real_now: datetime) -> tuple[datetime, timedelta, timedelta]:
    """(now, recent window, lookback) from the event, else the function's configuration."""
    minutes = _whole(
        event.get("windowMinutes") or get_settings().reconciliation_window_minutes,
        "windowMinutes",
        1,
        MAX_MINUTES,
    )
    days = _whole(
        event.get("lookbackDays") or os.environ.get("RECONCILIATION_LOOKBACK_DAYS") or DEFAULT_LOOKBACK_DAYS,
        "lookbackDays",
        1,
        MAX_LOOKBACK_DAYS,
    )
    return _as_of(event.get("asOf"), real_now), timedelta(minutes=minutes), timedelta(days=days)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        now, window, lookback = run_parameters(event if isinstance(event, dict) else {}, datetime.now(UTC))
        report = reconcile(
            now, window, lookback, time_left=lambda: context.get_remaining_time_in_millis() / 1000
        )
    except Exception:
        # Flushed by log_metrics even so; the function's Errors alarm fires too.
        metrics.add_metric(name="ReconciliationFailed", unit=MetricUnit.Count, value=1)
        logger.exception("Reconciliation failed")
        raise
    metrics.add_metric(name="ReconciliationFixed", unit=MetricUnit.Count, value=report.fixed)
    metrics.add_metric(
        name="ReconciliationRefundsRecorded", unit=MetricUnit.Count, value=report.refunds_recorded
    )
    metrics.add_metric(
        name="ReconciliationSubscriptionsSynced", unit=MetricUnit.Count, value=report.subscriptions_synced
    )
    metrics.add_metric(
        name="ReconciliationFailures",
        unit=MetricUnit.Count,
        value=report.failed + report.subscriptions_failed,
    )
    metrics.add_metric(name="ReconciliationFailed", unit=MetricUnit.Count, value=0 if report.healthy else 1)
    if report.healthy:
        logger.info("Reconciliation finished", extra={"report": report.as_dict()})
    else:
        logger.error("Reconciliation finished unhealthy", extra={"report": report.as_dict()})
    return report.as_dict()
