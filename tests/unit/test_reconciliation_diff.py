"""Reconciliation's diffing, with in-memory fakes: only what differs from our records is looked up."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from steppay.errors import StepPayUnavailable
from steppay.listing_models import OrderSummary
from steppay.payments import Confirmation
from steppay.persistence import (
    KnownOrder,
    KnownSubscription,
    PaymentRecord,
    PaymentState,
    ReconciliationSnapshot,
    VerifiedVia,
)
from steppay.reconciliation import ZONE_SLACK, Decision, Reconciler, compare

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=180)
LOOKBACK = timedelta(days=30)


@dataclass
class Listed:
    summary: OrderSummary
    created_at: datetime
    item_status: str


def listed(order_id: int, created: datetime, status: str, *, paid: bool = True, returned: int = 0) -> Listed:
    summary = OrderSummary.model_validate(
        {
            "id": order_id,
            "type": "ONE_TIME",
            "paidAmount": 15000 if paid else 0,
            "returnedAmount": returned,
            "paymentDate": created.replace(tzinfo=None).isoformat() if paid else None,
            "createdAt": created.replace(tzinfo=None).isoformat(),
        }
    )
    return Listed(summary, created, status)


@dataclass
class FakeStepPay:
    orders: list[Listed]
    subscription_statuses: dict[int, str] = field(default_factory=dict)
    list_calls: list[tuple[datetime, datetime, str | None]] = field(default_factory=list)
    subscription_lookups: list[int] = field(default_factory=list)

    def iter_orders(
        self, start: datetime, end: datetime, page_size: int = 100, *, status: str | None = None
    ) -> Any:
        self.list_calls.append((start, end, status))
        for order in self.orders:
            if start <= order.created_at <= end and (status is None or order.item_status == status):
                yield order.summary

    def get_subscription(self, subscription_id: int | str) -> Any:
        self.subscription_lookups.append(int(subscription_id))
        if int(subscription_id) not in self.subscription_statuses:
            raise StepPayUnavailable("down")
        return SimpleNamespace(
            id=int(subscription_id), status=self.subscription_statuses[int(subscription_id)]
        )


@dataclass
class FakeStore:
    snapshot: ReconciliationSnapshot
    settled: dict[int, PaymentState] = field(default_factory=dict)

    def reconciliation_snapshot(self, since: datetime) -> ReconciliationSnapshot:
        return self.snapshot

    def settled_state_by_order_id(self, order_id: int) -> PaymentState | None:
        return self.settled.get(order_id)


@dataclass
class FakeFlows:
    outcome: dict[int, PaymentState]  # what confirming each order records
    confirmed: list[str] = field(default_factory=list)
    synced: list[int] = field(default_factory=list)

    def confirm_order(self, order_ref: str, *, via: VerifiedVia) -> Confirmation:
        assert via is VerifiedVia.RECONCILIATION
        self.confirmed.append(order_ref)
        state = self.outcome[int(order_ref)]
        record = PaymentRecord(order_code=f"order_{order_ref}", order_id=int(order_ref), state=state)
        result: Any = SimpleNamespace(verdict=SimpleNamespace(value=state.value))
        return Confirmation(result, record, True, registered=True)

    def sync_subscription(self, subscription_id: int) -> tuple[Any, bool]:
        self.synced.append(subscription_id)
        return SimpleNamespace(subscription_id=subscription_id), True


def ours(order_id: int, state: PaymentState, created: datetime, returned: int | None = None) -> KnownOrder:
    return KnownOrder(
        order_code=f"order_{order_id}",
        order_id=order_id,
        state=state,
        created_at=created,
        returned_amount=Decimal(returned) if returned is not None else None,
    )


def test_compare_looks_up_only_rows_that_differ_from_our_record() -> None:
    day_ago = NOW - timedelta(days=1)
    paid = listed(1, day_ago, "PAID").summary
    refunded = listed(2, day_ago, "CANCELLATION_REFUNDED_PARTIALLY", returned=5000).summary
    unpaid = listed(3, day_ago, "CREATED", paid=False).summary
    assert compare(paid, PaymentState.PAID) is Decision.RECORDED
    assert compare(paid, PaymentState.PENDING) is Decision.LOOKUP
    assert compare(paid, PaymentState.FAILED) is Decision.LOOKUP
    assert compare(paid, None) is Decision.LOOKUP
    assert compare(refunded, PaymentState.PAID) is Decision.LOOKUP
    assert compare(refunded, PaymentState.CANCELED) is Decision.RECORDED
    assert compare(paid, PaymentState.MISMATCH) is Decision.RECORDED
    assert compare(unpaid, PaymentState.PENDING) is Decision.NOT_PAID


def test_a_run_looks_up_late_payments_and_refunds_only_and_reports_utc_windows() -> None:
    two_days = NOW - timedelta(days=2)
    five_days = NOW - timedelta(days=5)
    steppay = FakeStepPay(
        [
            listed(10, two_days, "PAID"),  # recorded PAID, unchanged: not asked about
            listed(11, two_days, "CANCELLATION_REFUNDED", returned=15000),  # refunded after we recorded it
            listed(12, two_days, "PAID"),  # our open registration, paid a day later (a deposit)
            listed(13, five_days, "PAID"),  # sold long ago, not ours to watch: not asked about
            listed(14, five_days, "CANCELLATION_REFUNDED"),  # refund we already hold
            listed(15, NOW - timedelta(minutes=30), "CREATED", paid=False),  # fresh checkout, unpaid
        ]
    )
    snapshot = ReconciliationSnapshot(
        orders=[
            ours(10, PaymentState.PAID, two_days),
            ours(11, PaymentState.PAID, two_days),
            ours(12, PaymentState.PENDING, two_days),
            ours(14, PaymentState.CANCELED, five_days, returned=15000),
            ours(15, PaymentState.PENDING, NOW - timedelta(minutes=30)),
        ]
    )
    flows = FakeFlows({11: PaymentState.CANCELED, 12: PaymentState.PAID})
    report = Reconciler(steppay, FakeStore(snapshot, settled={13: PaymentState.PAID}), flows).run(
        NOW, WINDOW, LOOKBACK
    )
    assert sorted(flows.confirmed) == ["11", "12"]
    assert (report.fixed, report.refunds_recorded, report.late_payments_recorded) == (2, 1, 1)
    assert report.already_recorded == 1  # 14 (10 and 13 were never compared: not open registrations)
    assert report.failed == 0 and report.healthy and report.suspect_empty_lists == []
    assert report.open_registrations == 2
    # The windows, as sent and in UTC: the late-payment list starts at the oldest open registration.
    assert report.window_start == (NOW - WINDOW).isoformat() and report.window_end == NOW.isoformat()
    assert report.windows["recent"] == {
        "start": (NOW - WINDOW - ZONE_SLACK).isoformat(),
        "end": (NOW + ZONE_SLACK).isoformat(),
    }
    assert report.windows["late_payments"] == {
        "start": (two_days - ZONE_SLACK).isoformat(),
        "end": (NOW + ZONE_SLACK).isoformat(),
    }
    assert report.windows["refunds"]["start"] == (NOW - LOOKBACK - ZONE_SLACK).isoformat()  # type: ignore[index]
    statuses = [status for _, _, status in steppay.list_calls]
    assert statuses[0] is None and statuses[1] == "PAID" and "CANCELLATION_REFUNDED" in statuses
    assert report.as_dict()["healthy"] is True


def test_compare_sees_a_later_refund_of_a_partly_refunded_order() -> None:
    day_ago = NOW - timedelta(days=1)
    more = listed(2, day_ago, "CANCELLATION_REFUNDED_PARTIALLY", returned=5000).summary
    emptied = listed(3, day_ago, "CANCELLATION_REFUNDED", returned=15000).summary
    partly = PaymentState.PARTIALLY_REFUNDED
    assert compare(more, partly, Decimal(1000)) is Decision.LOOKUP  # another partial refund
    assert compare(emptied, partly, Decimal(1000)) is Decision.LOOKUP  # the one that empties it
    assert compare(more, partly, Decimal(5000)) is Decision.RECORDED  # what we hold already
    assert compare(more, partly, None) is Decision.LOOKUP  # from the index: no amount to compare
    assert compare(more, PaymentState.PAID) is Decision.LOOKUP


def test_a_run_records_each_later_refund_of_a_partly_refunded_order() -> None:
    two_days = NOW - timedelta(days=2)
    steppay = FakeStepPay(
        [
            listed(30, two_days, "CANCELLATION_REFUNDED_PARTIALLY", returned=1000),  # held already
            listed(31, two_days, "CANCELLATION_REFUNDED_PARTIALLY", returned=6000),  # refunded again
            listed(32, two_days, "CANCELLATION_REFUNDED", returned=15000),  # emptied since
            listed(33, two_days, "CANCELLATION_REFUNDED_PARTIALLY", returned=1000),  # first refund
        ]
    )
    snapshot = ReconciliationSnapshot(
        orders=[
            ours(30, PaymentState.PARTIALLY_REFUNDED, two_days, returned=1000),
            ours(31, PaymentState.PARTIALLY_REFUNDED, two_days, returned=1000),
            ours(32, PaymentState.PARTIALLY_REFUNDED, two_days, returned=1000),
            ours(33, PaymentState.PAID, two_days),
        ]
    )
    flows = FakeFlows(
        {31: PaymentState.PARTIALLY_REFUNDED, 32: PaymentState.CANCELED, 33: PaymentState.PARTIALLY_REFUNDED}
    )
    report = Reconciler(steppay, FakeStore(snapshot), flows).run(NOW, WINDOW, LOOKBACK)
    assert sorted(flows.confirmed) == ["31", "32", "33"]
    assert (report.fixed, report.refunds_recorded, report.already_recorded) == (3, 3, 1)
    assert "CANCELLATION_REFUNDED_PARTIALLY" in [status for _, _, status in steppay.list_calls]
    assert report.healthy


def test_a_partly_refunded_order_held_makes_an_empty_refund_list_suspect() -> None:
    steppay = FakeStepPay([])
    snapshot = ReconciliationSnapshot(
        orders=[ours(40, PaymentState.PARTIALLY_REFUNDED, NOW - timedelta(days=3), returned=1000)]
    )
    report = Reconciler(steppay, FakeStore(snapshot), FakeFlows({})).run(NOW, WINDOW, LOOKBACK)
    assert "refunds" in report.suspect_empty_lists


def test_no_open_registration_means_no_paid_list() -> None:
    steppay = FakeStepPay([])
    report = Reconciler(steppay, FakeStore(ReconciliationSnapshot()), FakeFlows({})).run(
        NOW, WINDOW, LOOKBACK
    )
    assert report.windows["late_payments"] is None
    assert "PAID" not in [status for _, _, status in steppay.list_calls]
    assert report.healthy  # nothing held, nothing listed: nothing wrong


def test_an_empty_list_where_we_hold_orders_is_not_healthy() -> None:
    recent = NOW - timedelta(minutes=20)
    steppay = FakeStepPay([])  # StepPay (or a wrong zone/window) lists nothing
    snapshot = ReconciliationSnapshot(orders=[ours(20, PaymentState.PAID, recent)])
    report = Reconciler(steppay, FakeStore(snapshot), FakeFlows({})).run(NOW, WINDOW, LOOKBACK)
    assert report.suspect_empty_lists == ["recent"]
    assert not report.healthy and report.as_dict()["healthy"] is False


def test_an_order_registered_moments_ago_may_be_missing_from_the_list() -> None:
    snapshot = ReconciliationSnapshot(orders=[ours(21, PaymentState.PENDING, NOW - timedelta(seconds=10))])
    report = Reconciler(FakeStepPay([]), FakeStore(snapshot), FakeFlows({})).run(NOW, WINDOW, LOOKBACK)
    assert report.suspect_empty_lists == [] and report.healthy


def test_a_held_refund_stepPay_no_longer_lists_is_suspect() -> None:
    old = NOW - timedelta(days=3)
    snapshot = ReconciliationSnapshot(orders=[ours(22, PaymentState.CANCELED, old, returned=1000)])
    report = Reconciler(FakeStepPay([]), FakeStore(snapshot), FakeFlows({})).run(NOW, WINDOW, LOOKBACK)
    assert report.suspect_empty_lists == ["refunds"]


def _subscription(sid: int, status: str, minutes_ago: int) -> KnownSubscription:
    return KnownSubscription(
        subscription_id=sid, status=status, observed_at=NOW - timedelta(minutes=minutes_ago)
    )


def test_subscriptions_whose_status_changed_are_synced_once_and_final_ones_not_asked() -> None:
    snapshot = ReconciliationSnapshot(
        subscriptions=[
            _subscription(1, "ACTIVE", 5),  # StepPay: UNPAID (its webhook was lost)
            _subscription(2, "ACTIVE", 50),  # unchanged
            _subscription(3, "CANCELED", 500),  # final: never asked
            _subscription(4, "ACTIVE", 60),  # StepPay down for it
        ]
    )
    steppay = FakeStepPay([], subscription_statuses={1: "UNPAID", 2: "ACTIVE"})
    flows = FakeFlows({})
    report = Reconciler(steppay, FakeStore(snapshot), flows).run(NOW, WINDOW, LOOKBACK)
    assert flows.synced == [1]
    assert steppay.subscription_lookups == [4, 2, 1]  # oldest observation first; 3 not asked
    assert (report.subscriptions_known, report.subscriptions_checked, report.subscriptions_synced) == (
        4,
        2,
        1,
    )
    assert report.subscriptions_failed == 1 and not report.healthy


def test_subscription_lookups_are_bounded_per_run() -> None:
    snapshot = ReconciliationSnapshot(subscriptions=[_subscription(i, "ACTIVE", i) for i in range(1, 6)])
    steppay = FakeStepPay([], subscription_statuses={i: "ACTIVE" for i in range(1, 6)})
    reconciler = Reconciler(steppay, FakeStore(snapshot), FakeFlows({}), max_subscription_lookups=2)
    report = reconciler.run(NOW, WINDOW, LOOKBACK)
    assert steppay.subscription_lookups == [5, 4]
    assert report.subscriptions_deferred == 3


def test_a_failed_lookup_is_counted_and_the_run_goes_on() -> None:
    steppay = FakeStepPay(
        [listed(30, NOW - timedelta(minutes=5), "PAID"), listed(31, NOW - timedelta(minutes=4), "PAID")]
    )

    class Flaky(FakeFlows):
        def confirm_order(self, order_ref: str, *, via: VerifiedVia) -> Confirmation:
            if order_ref == "30":
                raise StepPayUnavailable("down")
            return super().confirm_order(order_ref, via=via)

    flows = Flaky({31: PaymentState.PAID})
    report = Reconciler(steppay, FakeStore(ReconciliationSnapshot()), flows).run(NOW, WINDOW, LOOKBACK)
    assert (report.failed, report.fixed) == (1, 1) and not report.healthy


def test_out_of_time_stops_lookups_and_says_so() -> None:
    steppay = FakeStepPay([listed(40, NOW - timedelta(minutes=5), "PAID")])
    flows = FakeFlows({40: PaymentState.PAID})
    report = Reconciler(steppay, FakeStore(ReconciliationSnapshot()), flows, time_left=lambda: 5.0).run(
        NOW, WINDOW, LOOKBACK
    )
    assert flows.confirmed == [] and report.incomplete and not report.healthy


def _handler() -> Any:
    """functions/reconciliation/reconciliation.py (not on the tests' path: its name is the layer's too)."""
    path = Path(__file__).resolve().parents[2] / "functions/reconciliation/reconciliation.py"
    spec = importlib.util.spec_from_file_location("reconciliation_handler", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("event", [{"windowMinutes": "abc"}, {"asOf": "2026-12-02T00:00:00"}, {"asOf": 5}])
def test_the_handler_refuses_bad_run_parameters(event: dict[str, Any]) -> None:
    run_parameters = _handler().run_parameters

    with pytest.raises(ValueError):
        run_parameters(event, NOW)


def test_the_handler_reads_as_of_and_lookback() -> None:
    run_parameters = _handler().run_parameters

    now, window, lookback = run_parameters(
        {"asOf": "2026-12-03T21:00:00+09:00", "windowMinutes": 60, "lookbackDays": 7}, NOW
    )
    assert now == datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    assert (window, lookback) == (timedelta(minutes=60), timedelta(days=7))
    with pytest.raises(ValueError):
        run_parameters({"asOf": (NOW + timedelta(days=40)).isoformat()}, NOW)
