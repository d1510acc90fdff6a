"""Reconciliation: every change StepPay shows that no webhook or redirect told us about.

What StepPay's order list (`GET /api/v1/orders`) can and cannot tell us, and how this copes:

* Its date range is on the order's *creation* time (the spec: "조회 시작/끝 시점", sort default
  "생성 시점"); nothing filters on when an order was paid, deposited or refunded, and no
  `modifiedAt` filter exists. An order paid or refunded a day after its creation is therefore
  outside any short "recent" window. So three kinds of list are read, each bounded by what can
  still change:

  1. *recent*: every order created in the last `window` (renewals StepPay creates and charges by
     itself, and fresh checkouts);
  2. *late payments*: orders with an item `PAID`, created since the oldest of **our own open
     registrations** (PENDING orders, known until they expire; a first payment can only happen
     to one of them), of which only those registrations are looked up. A virtual-account
     deposit days later is found here;
  3. *refunds*: orders with an item in a refund state (`status` filter, one list per state,
     `..._REFUNDED_PARTIALLY` among them) created in the last `lookback` (30 days by default),
     compared with our record: a PAID order showing money returned, or a PARTIALLY_REFUNDED one
     showing more returned than we hold, is looked up (each later partial refund, and the one
     that empties the payment, is recorded and announced once).

* The list's rows carry ids but (in the spec) no order codes, and a status filter matches an order
  when *any* of its items has that status. A row is compared with our record (state, and whether
  StepPay shows money returned); only a difference is looked up (`confirm_order`: the order
  detail, the verification rules, a conditional write), so StepPay lookups grow with what changed,
  not with what was sold. Our records come from one read of the table (`reconciliation_snapshot`)
  and, for orders it does not hold (renewals carry no creation time), the settled-orders index.
* The zone of the list's zone-less dates is not published (UTC or Asia/Seoul, see
  docs/STEPPAY.md): every range sent is widened by `ZONE_SLACK` on both sides, so a wrong zone
  setting costs a few more rows, never a missed order.
* An empty answer is indistinguishable from a wrong window. When we hold orders created in a
  window but StepPay lists none, the run is not healthy (`suspect_empty_lists`, an error log
  line, the `ReconciliationFailed` metric), instead of reporting "nothing to fix".

Subscriptions: StepPay's subscription list (`GET /api/v1/subscriptions`) filters only by a
creation-date range and has no status or modification filter, so finding changes in it means
listing every subscription ever sold. Instead every subscription we hold whose status can still
change (not CANCELED or EXPIRED) is looked up by id (`GET /api/v1/subscriptions/{id}`), oldest
observation first, at most `max_subscription_lookups` per run (the rest wait for the next run and
are counted as `subscriptions_deferred`); a status different from ours goes through
`sync_subscription`, the path webhooks use, whose conditional write announces it once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from aws_lambda_powertools import Logger

from steppay.errors import StepPayError
from steppay.persistence import (
    KnownOrder,
    KnownSubscription,
    PaymentState,
    ReconciliationSnapshot,
    VerifiedVia,
)
from steppay.problems import StorageUnavailable
from steppay.transitions import REFUNDED_STATES

if TYPE_CHECKING:
    from steppay.listing_models import OrderSummary
    from steppay.payments import Confirmation
    from steppay.persistence import SubscriptionRecord
    from steppay.subscription_models import Subscription

logger = Logger(child=True)

# StepPay's zone is UTC or Asia/Seoul (unverified): a range widened by their difference on both
# sides covers its creation times whichever it is.
ZONE_SLACK = timedelta(hours=9)
# An order we registered moments ago may not be in StepPay's list yet (their side may lag).
LIST_GRACE = timedelta(minutes=2)
REFUND_ITEM_STATUSES = (
    "CANCELLATION_REFUNDED",
    "CANCELLATION_REFUNDED_PARTIALLY",
    "RETURN_REFUNDED",
    "RETURN_REFUNDED_PARTIALLY",
)
OPEN_STATES = frozenset({PaymentState.PENDING, PaymentState.FAILED})  # may still become PAID
FINAL_SUBSCRIPTION_STATUSES = frozenset({"CANCELED", "EXPIRED"})
DEFAULT_MAX_SUBSCRIPTION_LOOKUPS = 1000
# Stop starting lookups this long before the function's timeout, so the report is still written.
DEADLINE_MARGIN_SECONDS = 20.0


class OrderLister(Protocol):
    def iter_orders(
        self, start: datetime, end: datetime, page_size: int = 100, *, status: str | None = None
    ) -> Iterator[OrderSummary]: ...

    def get_subscription(self, subscription_id: int | str) -> Subscription: ...


class ReconciliationStore(Protocol):
    def reconciliation_snapshot(self, since: datetime) -> ReconciliationSnapshot: ...

    def settled_state_by_order_id(self, order_id: int) -> PaymentState | None: ...


class ConfirmingFlows(Protocol):
    def confirm_order(self, order_ref: str, *, via: VerifiedVia) -> Confirmation: ...

    def sync_subscription(self, subscription_id: int) -> tuple[SubscriptionRecord, bool]: ...


class Decision(StrEnum):
    NOT_PAID = "not_paid"  # StepPay shows no payment and no refund: nothing to record
    RECORDED = "recorded"  # our record already says what the row shows
    LOOKUP = "lookup"  # the row differs from our record (or we have none): ask StepPay


def compare(
    summary: OrderSummary, known: PaymentState | None, known_returned: Decimal | None = None
) -> Decision:
    """What one row of StepPay's list means against our record of that order (pure).

    `known_returned`: the returned amount our record holds, when the caller read it (the
    snapshot does; the settled-orders index does not, and then a partly refunded order is looked
    up: its conditional write records only a larger amount).
    """
    refund_shown = bool(summary.returned_amount)
    if summary.payment_date is None and not refund_shown:
        return Decision.NOT_PAID
    if known is PaymentState.CANCELED or known is PaymentState.MISMATCH:
        return Decision.RECORDED  # final: CANCELED never moves again, MISMATCH waits for a person
    if known is PaymentState.PAID and not refund_shown:
        return Decision.RECORDED
    if known is PaymentState.PARTIALLY_REFUNDED and known_returned is not None:
        shown = summary.returned_amount or Decimal(0)
        return Decision.LOOKUP if shown > known_returned else Decision.RECORDED  # another refund?
    return Decision.LOOKUP


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


@dataclass
class ReconciliationReport:
    window_start: str  # the recent window, UTC (as asked, before ZONE_SLACK)
    window_end: str
    windows: dict[str, dict[str, str] | None] = field(default_factory=dict)  # each list's range as sent, UTC
    lookback_days: int = 0
    orders_seen: int = 0  # distinct orders StepPay listed, over every list
    paid_seen: int = 0  # of which paid or refunded
    already_recorded: int = 0  # rows our record already matched: not asked about
    fixed: int = 0  # order changes recorded by this run (payments and refunds)
    late_payments_recorded: int = 0  # of which: open registrations paid after the recent window
    refunds_recorded: int = 0  # of which: refunds (partial ones, and the one that empties a payment)
    unregistered: int = 0  # paid orders this bundle never registered (made elsewhere): not recorded
    failed: int = 0  # orders that could not be confirmed this time; the next run retries
    open_registrations: int = 0  # our PENDING/FAILED orders, matched against the PAID list
    subscriptions_known: int = 0
    subscriptions_checked: int = 0
    subscriptions_synced: int = 0  # a status StepPay showed differently, stored (and announced once)
    subscriptions_failed: int = 0
    subscriptions_deferred: int = 0  # over the per-run lookup bound, or out of time: next run
    suspect_empty_lists: list[str] = field(default_factory=list)  # lists empty where we hold orders
    incomplete: bool = False  # stopped before the function's timeout; the next run continues

    @property
    def healthy(self) -> bool:
        return not (self.failed or self.subscriptions_failed or self.suspect_empty_lists or self.incomplete)

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "healthy": self.healthy}


class Reconciler:
    def __init__(
        self,
        client: OrderLister,
        store: ReconciliationStore,
        flows: ConfirmingFlows,
        *,
        page_size: int = 100,
        max_subscription_lookups: int = DEFAULT_MAX_SUBSCRIPTION_LOOKUPS,
        time_left: Callable[[], float] | None = None,
    ) -> None:
        self._client = client
        self._store = store
        self._flows = flows
        self._page_size = page_size
        self._max_subscription_lookups = max_subscription_lookups
        self._time_left = time_left

    def _out_of_time(self, report: ReconciliationReport) -> bool:
        if self._time_left is not None and self._time_left() < DEADLINE_MARGIN_SECONDS:
            report.incomplete = True
        return report.incomplete

    def run(self, now: datetime, window: timedelta, lookback: timedelta) -> ReconciliationReport:
        recent_start = now - window
        lookback_start = now - max(lookback, window)
        report = ReconciliationReport(_utc(recent_start), _utc(now), lookback_days=lookback.days)
        snapshot = self._store.reconciliation_snapshot(lookback_start - ZONE_SLACK)
        ours: dict[int, KnownOrder] = {o.order_id: o for o in snapshot.orders if o.order_id is not None}
        seen: set[int] = set()

        # 1. recent: every order created in the window.
        start, end = recent_start - ZONE_SLACK, now + ZONE_SLACK
        report.windows["recent"] = {"start": _utc(start), "end": _utc(end)}
        listed = self._walk(report, self._client.iter_orders(start, end, self._page_size), ours, seen)
        expected = [o for o in snapshot.orders if recent_start <= o.created_at <= now - LIST_GRACE]
        self._check_not_empty(report, "recent", listed, expected)

        # 2. late payments: our open registrations, against the PAID list since the oldest of them.
        open_orders = {i: o for i, o in ours.items() if o.state in OPEN_STATES}
        report.open_registrations = len(open_orders)
        if open_orders:
            start = min(o.created_at for o in open_orders.values()) - ZONE_SLACK
            report.windows["late_payments"] = {"start": _utc(start), "end": _utc(end)}
            rows = self._client.iter_orders(start, end, self._page_size, status="PAID")
            self._walk(report, rows, ours, seen, only=set(open_orders), late_after=recent_start)
        else:
            report.windows["late_payments"] = None

        # 3. refunds: every order with an item in a refund state, over the lookback.
        start = lookback_start - ZONE_SLACK
        report.windows["refunds"] = {"start": _utc(start), "end": _utc(end)}
        refunded = 0
        for status in REFUND_ITEM_STATUSES:
            rows = self._client.iter_orders(start, end, self._page_size, status=status)
            refunded += self._walk(report, rows, ours, seen)
        expected = [
            o
            for o in snapshot.orders
            if o.state in REFUNDED_STATES and (o.returned_amount or Decimal(0)) > 0
        ]
        self._check_not_empty(report, "refunds", refunded, expected)

        self._subscriptions(report, snapshot.subscriptions)
        return report

    def _check_not_empty(
        self, report: ReconciliationReport, name: str, listed: int, expected: list[KnownOrder]
    ) -> None:
        if listed == 0 and expected and not report.incomplete:
            report.suspect_empty_lists.append(name)
            logger.error(
                "StepPay listed no orders where we hold some: the window (or its zone) is wrong",
                extra={"list": name, "window": report.windows.get(name), "orders_held": len(expected)},
            )

    def _known_state(
        self, order_id: int, ours: dict[int, KnownOrder]
    ) -> tuple[PaymentState | None, Decimal | None]:
        """Our state of the order, with its returned amount when the snapshot holds it."""
        known = ours.get(order_id)
        if known is not None:
            return known.state, known.returned_amount
        return self._store.settled_state_by_order_id(order_id), None  # renewals: no creation time of ours

    def _walk(
        self,
        report: ReconciliationReport,
        rows: Iterable[OrderSummary],
        ours: dict[int, KnownOrder],
        seen: set[int],
        *,
        only: set[int] | None = None,
        late_after: datetime | None = None,
    ) -> int:
        """Compare each listed order with ours, look up the differences; returns the rows listed.

        `only`: act on these ids alone (the PAID list holds everything sold; only our open
        registrations in it can be news). An order already handled by an earlier list is skipped.
        """
        listed = 0
        for summary in rows:
            listed += 1
            if summary.id in seen:
                continue
            if only is not None and summary.id not in only:
                continue
            seen.add(summary.id)
            report.orders_seen += 1
            if report.incomplete or self._out_of_time(report):
                continue
            try:
                decision = compare(summary, *self._known_state(summary.id, ours))
                if decision is Decision.NOT_PAID:
                    continue
                report.paid_seen += 1
                if decision is Decision.RECORDED:
                    report.already_recorded += 1
                    continue
                self._confirm(report, summary, ours.get(summary.id), late_after)
            except (StepPayError, StorageUnavailable) as exc:
                report.failed += 1
                logger.warning(
                    "Reconciliation could not confirm an order",
                    extra={"order_id": summary.id, "error": type(exc).__name__},
                )
        return listed

    def _confirm(
        self,
        report: ReconciliationReport,
        summary: OrderSummary,
        known: KnownOrder | None,
        late_after: datetime | None,
    ) -> None:
        confirmation = self._flows.confirm_order(str(summary.id), via=VerifiedVia.RECONCILIATION)
        record, newly = confirmation.record, confirmation.newly_recorded
        if not confirmation.registered:
            report.unregistered += 1
        if record is not None and record.subscription_id is not None and newly:
            self._flows.sync_subscription(record.subscription_id)
        if not newly or record is None:
            return
        report.fixed += 1
        if record.state in REFUNDED_STATES:
            report.refunds_recorded += 1
        elif known is not None and late_after is not None and known.created_at < late_after:
            report.late_payments_recorded += 1
        logger.info(
            "Reconciliation recorded a missed order change",
            extra={
                "order_code": record.order_code,
                "state": record.state.value,
                "verdict": confirmation.result.verdict.value,
            },
        )

    def _subscriptions(self, report: ReconciliationReport, known: list[KnownSubscription]) -> None:
        live = sorted(
            (s for s in known if s.status not in FINAL_SUBSCRIPTION_STATUSES), key=lambda s: s.observed_at
        )
        report.subscriptions_known = len(known)
        for index, stored in enumerate(live):
            if index >= self._max_subscription_lookups or self._out_of_time(report):
                report.subscriptions_deferred = len(live) - index
                return
            try:
                shown = str(self._client.get_subscription(stored.subscription_id).status)
                report.subscriptions_checked += 1
                if shown == stored.status:
                    continue
                # The webhook path: it asks StepPay again and writes only a newer observation.
                _, written = self._flows.sync_subscription(stored.subscription_id)
            except (StepPayError, StorageUnavailable) as exc:
                report.subscriptions_failed += 1
                logger.warning(
                    "Reconciliation could not check a subscription",
                    extra={"subscription_id": stored.subscription_id, "error": type(exc).__name__},
                )
                continue
            if written:
                report.subscriptions_synced += 1
                logger.info(
                    "Reconciliation synced a subscription status",
                    extra={"subscription_id": stored.subscription_id, "was": stored.status, "now": shown},
                )


def reconcile(
    now: datetime,
    window: timedelta,
    lookback: timedelta,
    *,
    time_left: Callable[[], float] | None = None,
    page_size: int = 100,
) -> ReconciliationReport:
    """One run against the deployed StepPay client, store and flows (see the module docstring)."""
    from steppay.client import get_client
    from steppay.persistence import get_payment_store
    from steppay.service import get_payment_flows

    started = time.monotonic()
    report = Reconciler(
        get_client(), get_payment_store(), get_payment_flows(), page_size=page_size, time_left=time_left
    ).run(now, window, lookback)
    logger.debug("Reconciliation took", extra={"seconds": round(time.monotonic() - started, 3)})
    return report
