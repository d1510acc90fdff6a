"""Reconciliation: every paid order in a window, confirmed through the webhook path."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from aws_lambda_powertools import Logger

from steppay.client import get_client
from steppay.errors import StepPayError
from steppay.persistence import VerifiedVia
from steppay.problems import StorageUnavailable
from steppay.service import get_payment_flows

logger = Logger(child=True)


@dataclass
class ReconciliationReport:
    window_start: str
    window_end: str
    orders_seen: int = 0
    paid_seen: int = 0
    fixed: int = 0  # paid orders recorded by this run (no webhook or redirect had told us)
    failed: int = 0  # orders that could not be confirmed this time; the next run retries

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def reconcile(start: datetime, end: datetime, *, page_size: int = 100) -> ReconciliationReport:
    """Confirm every paid order created in [start, end) and record the ones we lacked.

    StepPay's order list carries ids but no codes, so each paid order is confirmed by id: the
    order lookup and the conditional write make this a no-op for orders already recorded, and
    safe beside live webhooks and redirects.
    """
    report = ReconciliationReport(start.isoformat(), end.isoformat())
    flows = get_payment_flows()
    for summary in get_client().iter_orders(start, end, page_size=page_size):
        report.orders_seen += 1
        if summary.payment_date is None:
            continue
        report.paid_seen += 1
        try:
            result, record, newly = flows.confirm_order(str(summary.id), via=VerifiedVia.RECONCILIATION)
            if record is not None and record.subscription_id is not None and newly:
                flows.sync_subscription(record.subscription_id)
        except (StepPayError, StorageUnavailable) as exc:
            report.failed += 1
            logger.warning(
                "Reconciliation could not confirm an order",
                extra={"order_id": summary.id, "error": type(exc).__name__},
            )
            continue
        if newly:
            report.fixed += 1
            logger.info(
                "Reconciliation recorded a missed order",
                extra={"order_code": record.order_code if record else None, "verdict": result.verdict.value},
            )
    return report
