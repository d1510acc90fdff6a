"""Reconciliation: every paid order in a window, confirmed through the webhook path."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from aws_lambda_powertools import Logger

from steppay.client import get_client
from steppay.errors import StepPayError
from steppay.persistence import PaymentState, VerifiedVia, get_payment_store
from steppay.problems import StorageUnavailable
from steppay.service import get_payment_flows

logger = Logger(child=True)


@dataclass
class ReconciliationReport:
    window_start: str
    window_end: str
    orders_seen: int = 0
    paid_seen: int = 0
    already_recorded: int = 0  # paid orders we hold as PAID (or refunded): not asked about again
    fixed: int = 0  # paid orders recorded by this run (no webhook or redirect had told us)
    unregistered: int = 0  # paid orders this bundle never registered (made elsewhere): not recorded
    failed: int = 0  # orders that could not be confirmed this time; the next run retries

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def reconcile(start: datetime, end: datetime, *, page_size: int = 100) -> ReconciliationReport:
    """Confirm every paid order created in [start, end) and record the ones we lacked.

    StepPay's order list carries ids but no codes. An order we already hold as PAID, with no
    refund showing in the list, or as CANCELED (final) is skipped: windows overlap, so without
    this every paid order would be looked up at StepPay on every run that covers it. Any other
    paid order is confirmed by id through the webhook path (order lookup, verification rules,
    conditional write), which is safe beside live webhooks and redirects; an order the index
    does not show yet is simply confirmed again.
    """
    report = ReconciliationReport(start.isoformat(), end.isoformat())
    flows = get_payment_flows()
    store = get_payment_store()
    for summary in get_client().iter_orders(start, end, page_size=page_size):
        report.orders_seen += 1
        if summary.payment_date is None:
            continue
        report.paid_seen += 1
        try:
            state = store.settled_state_by_order_id(summary.id)
            refund_shown = bool(summary.returned_amount)
            if state is PaymentState.CANCELED or (state is PaymentState.PAID and not refund_shown):
                report.already_recorded += 1
                continue
            confirmation = flows.confirm_order(str(summary.id), via=VerifiedVia.RECONCILIATION)
            result, record, newly = confirmation.result, confirmation.record, confirmation.newly_recorded
            if not confirmation.registered:
                report.unregistered += 1
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
