"""Partial and repeated refunds (issue 16), through the payment flows and the outbox (in memory).

A 15,000 payment refunded 1,000 and then 14,000: the first is `Payment Refunded` (the order
PARTIALLY_REFUNDED), the second, which empties the payment, `Payment Canceled` (CANCELED). The
record follows StepPay's running `returnedAmount`; a stale or repeated answer records and
announces nothing. A refund of a subscription's initial order syncs its subscriptions.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import jsonschema
import pytest
from fixtures.fakes import InMemoryPaymentStore, InMemoryStepPay

from steppay.errors import StepPayUnavailable
from steppay.events import OutgoingEvent, events_for_order_change
from steppay.models import OrderDetail
from steppay.payments import PaymentFlows
from steppay.persistence import (
    PaymentRecord,
    PaymentStore,
    RegisteredItem,
    Registration,
    VerifiedVia,
)
from steppay.settings import Settings
from steppay.subscription_models import Subscription
from steppay.transitions import PAYMENT_CANCELED, PAYMENT_REFUNDED, PaymentState
from steppay.verdicts import Verdict

ROOT = Path(__file__).resolve().parents[2]
CONTEXT = {"steppay_timezone": "Asia/Seoul"}
CODE = "order_Refund5"
CUSTOMER = 1001
SUBSCRIPTION = 88
REGISTRATION = Registration(
    checkout_id="chk_" + "2" * 32,
    merchant_ref="cart-refunds",
    customer_id=CUSTOMER,
    items=[RegisteredItem(product_code="product_a", price_code="price_a", currency="KRW", quantity=1)],
)
SCHEMAS = {
    PAYMENT_REFUNDED: json.loads((ROOT / "events/schemas/payment-refunded.json").read_text("utf-8")),
    PAYMENT_CANCELED: json.loads((ROOT / "events/schemas/payment-canceled.json").read_text("utf-8")),
}


def answer(returned: int, order_type: str = "ONE_TIME") -> OrderDetail:
    """StepPay's order after `returned` of 15,000 went back (the sandbox's states)."""
    status = "PAID" if returned == 0 else "CANCELLATION_REFUNDED" if returned >= 15000 else (
        "CANCELLATION_REFUNDED_PARTIALLY"
    )
    data: dict[str, Any] = {
        "orderId": 601,
        "orderCode": CODE,
        "type": order_type,
        "paidAmount": 15000,
        "returnedAmount": returned,
        "paymentDate": "2026-12-01T10:00:00",
        "items": [
            {
                "status": status,
                "currency": "KRW",
                "quantity": 1,
                "paidAmount": 15000,
                "price": {"code": "price_a", "price": 15000},
                "product": {"code": "product_a"},
            }
        ],
        "customer": {"id": CUSTOMER},
        "payment": {"amount": 15000, "paymentMethod": "CARD"},
    }
    if order_type == "RECURRING_INITIAL":
        data["subscriptions"] = [{"id": SUBSCRIPTION, "status": "ACTIVE"}]
    return OrderDetail.model_validate(data, context=CONTEXT)


def pending() -> PaymentRecord:
    return PaymentRecord(
        order_code=CODE,
        order_id=601,
        order_type="ONE_TIME",
        amount=Decimal(15000),
        currency="KRW",
        merchant_ref=REGISTRATION.merchant_ref,
        registration=REGISTRATION,
    )


class Shop:
    """The flows over an in-memory store, with StepPay's answer set step by step."""

    def __init__(self, order_type: str = "ONE_TIME") -> None:
        self.order_type = order_type
        record = pending().model_copy(update={"order_type": order_type})
        self.store = InMemoryPaymentStore(payments={CODE: record})
        self.steppay = InMemoryStepPay(orders={CODE: answer(0, order_type)})
        self.flows = PaymentFlows(self.steppay, cast(PaymentStore, self.store), Settings())

    def steppay_returned(self, returned: int) -> None:
        self.steppay.orders[CODE] = answer(returned, self.order_type)

    def confirm(self) -> bool:
        return self.flows.confirm_order(CODE, via=VerifiedVia.WEBHOOK).newly_recorded

    def events(self) -> list[OutgoingEvent]:
        return [event for old, new in self.store.changes for event in events_for_order_change(old, new)]

    @property
    def record(self) -> PaymentRecord:
        return self.store.payments[CODE]


def validated(event: OutgoingEvent) -> dict[str, Any]:
    detail = json.loads(json.dumps(event.detail))
    jsonschema.validate(detail, SCHEMAS[event.detail_type], format_checker=jsonschema.FormatChecker())
    return detail


def test_refunding_1000_then_14000_is_one_refunded_then_one_canceled() -> None:
    shop = Shop()
    assert shop.confirm() and shop.record.state is PaymentState.PAID

    shop.steppay_returned(1000)
    assert shop.confirm()
    assert shop.record.state is PaymentState.PARTIALLY_REFUNDED
    assert shop.record.returned_amount == Decimal(1000) and shop.record.canceled_at is None
    assert not shop.confirm()  # the same answer again (a second webhook): nothing

    shop.steppay_returned(15000)
    assert shop.confirm()
    assert shop.record.state is PaymentState.CANCELED and shop.record.returned_amount == Decimal(15000)
    assert shop.record.canceled_at is not None
    assert not shop.confirm()

    verified, refunded, canceled = shop.events()
    assert (verified.detail_type, refunded.detail_type, canceled.detail_type) == (
        "Payment Verified",
        PAYMENT_REFUNDED,
        PAYMENT_CANCELED,
    )
    detail = validated(refunded)
    assert (detail["refundAmount"], detail["returnedAmount"], detail["remainingAmount"]) == (
        "1000",
        "1000",
        "14000",
    )
    assert detail["orderCode"] == CODE and detail["merchantRef"] == REGISTRATION.merchant_ref
    assert detail["checkoutId"] == REGISTRATION.checkout_id and detail["amount"] == "15000"
    detail = validated(canceled)
    assert (detail["refundAmount"], detail["returnedAmount"]) == ("14000", "15000")
    assert len({verified.event_id, refunded.event_id, canceled.event_id}) == 3


def test_each_later_partial_refund_is_another_event_with_its_own_stable_id() -> None:
    shop = Shop()
    shop.confirm()
    for returned in (1000, 4000, 4000, 9000):
        shop.steppay_returned(returned)
        shop.confirm()
    refunds = [e for e in shop.events() if e.detail_type == PAYMENT_REFUNDED]
    keys = ("refundAmount", "returnedAmount", "remainingAmount")
    amounts = [tuple(e.detail[key] for key in keys) for e in refunds]
    assert amounts == [
        ("1000", "1000", "14000"),
        ("3000", "4000", "11000"),
        ("5000", "9000", "6000"),
    ]
    assert len({e.event_id for e in refunds}) == 3
    # The id follows from the change itself: the outbox derives the same one again.
    old, new = shop.store.changes[2]
    assert events_for_order_change(old, new)[0].event_id == refunds[1].event_id
    for event in refunds:
        validated(event)


def test_a_stale_answer_after_a_later_refund_records_nothing() -> None:
    shop = Shop()
    shop.confirm()
    shop.steppay_returned(4000)
    shop.confirm()
    shop.steppay_returned(1000)  # a slow lookup from before the second refund
    assert not shop.confirm()
    assert shop.record.returned_amount == Decimal(4000) and len(shop.events()) == 2


def test_a_payment_refunded_at_once_is_canceled_with_the_whole_refund() -> None:
    shop = Shop()
    shop.confirm()
    shop.steppay_returned(15000)
    assert shop.confirm()
    (_, canceled) = shop.events()
    detail = validated(canceled)
    assert canceled.detail_type == PAYMENT_CANCELED
    assert (detail["refundAmount"], detail["returnedAmount"]) == ("15000", "15000")


def test_a_partly_refunded_order_is_never_paid_again() -> None:
    shop = Shop()
    shop.confirm()
    shop.steppay_returned(1000)
    shop.confirm()
    shop.steppay_returned(0)  # an answer from before the refund
    confirmation = shop.flows.confirm_order(CODE, via=VerifiedVia.RECONCILIATION)
    assert confirmation.result.verdict is Verdict.PAID and not confirmation.newly_recorded
    assert shop.record.state is PaymentState.PARTIALLY_REFUNDED


def subscription(status: str) -> Subscription:
    return Subscription.model_validate(
        {"id": SUBSCRIPTION, "status": status, "parentOrder": {"orderId": 601, "orderCode": CODE}},
        context=CONTEXT,
    )


def test_a_refund_of_an_initial_order_syncs_its_subscriptions() -> None:
    shop = Shop("RECURRING_INITIAL")
    shop.steppay.subscription_answers[SUBSCRIPTION] = subscription("ACTIVE")
    shop.confirm()
    assert shop.record.subscription_ids == [SUBSCRIPTION]
    assert SUBSCRIPTION not in shop.store.subscriptions  # a payment syncs nothing here
    shop.steppay_returned(1000)
    shop.confirm()
    assert shop.store.subscriptions[SUBSCRIPTION].status == "ACTIVE"
    # The refund that empties the payment cancelled the subscription at StepPay.
    shop.steppay.subscription_answers[SUBSCRIPTION] = subscription("CANCELED")
    shop.steppay_returned(15000)
    shop.confirm()
    stored = shop.store.subscriptions[SUBSCRIPTION]
    assert stored.status == "CANCELED" and stored.order_code == CODE
    assert stored.merchant_ref == REGISTRATION.merchant_ref


def test_a_failed_subscription_sync_does_not_undo_the_refund(monkeypatch: pytest.MonkeyPatch) -> None:
    shop = Shop("RECURRING_INITIAL")
    shop.confirm()

    def unavailable(subscription_id: int) -> Subscription:
        raise StepPayUnavailable("down", status_code=503)

    monkeypatch.setattr(shop.steppay, "get_subscription", unavailable)
    shop.steppay_returned(15000)
    assert shop.confirm()
    assert shop.record.state is PaymentState.CANCELED


def test_a_refund_of_a_one_time_order_looks_no_subscription_up() -> None:
    shop = Shop()
    shop.confirm()
    shop.steppay_returned(15000)
    shop.confirm()  # InMemoryStepPay would raise KeyError on a subscription lookup
    assert shop.store.subscriptions == {}


def test_the_refund_time_is_recorded() -> None:
    shop = Shop()
    shop.confirm()
    before = datetime.now(UTC)
    shop.steppay_returned(1000)
    shop.confirm()
    assert shop.record.refunded_at is not None and shop.record.refunded_at >= before


def test_a_partly_refunded_order_under_review_keeps_what_was_returned() -> None:
    shop = Shop()
    shop.confirm()
    shop.steppay_returned(1000)
    shop.confirm()
    unknown = answer(1000).model_dump(by_alias=True)
    unknown["items"][0]["status"] = "A_STATUS_STEPPAY_ADDS_LATER"
    shop.steppay.orders[CODE] = OrderDetail.model_validate(unknown, context=CONTEXT)
    assert shop.confirm() and shop.record.state is PaymentState.NEEDS_REVIEW
    assert shop.record.returned_amount == Decimal(1000)
    # Known again, and refunded more meanwhile: the refund counts from what was returned before.
    shop.steppay_returned(4000)
    assert shop.confirm() and shop.record.state is PaymentState.PARTIALLY_REFUNDED
    last = shop.events()[-1]
    assert last.detail_type == PAYMENT_REFUNDED
    assert (last.detail["refundAmount"], last.detail["returnedAmount"]) == ("3000", "4000")
