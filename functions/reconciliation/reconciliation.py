"""Scheduled reconciliation: finds paid StepPay orders that we have no record of.

Webhooks can be lost; this is how a merchant stops losing renewals anyway. Each paid order in
the window goes through the same confirmation path as a webhook (StepPay lookup, verification
rules, conditional write), so running it beside live traffic records nothing twice.
"""

from __future__ import annotations

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


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    minutes = int((event or {}).get("windowMinutes") or get_settings().reconciliation_window_minutes)
    minutes = max(1, min(minutes, 60 * 24 * 31))
    end = datetime.now(UTC)
    report = reconcile(end - timedelta(minutes=minutes), end)
    metrics.add_metric(name="ReconciliationFixed", unit=MetricUnit.Count, value=report.fixed)
    metrics.add_metric(name="ReconciliationFailures", unit=MetricUnit.Count, value=report.failed)
    logger.info("Reconciliation finished", extra={"report": report.as_dict()})
    return report.as_dict()
