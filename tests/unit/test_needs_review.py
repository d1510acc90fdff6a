"""Values StepPay adds later (a new item status or order type) never crash and never count as paid.

They parse (kept as text, named by `OrderDetail.unknown_values`), the rules judge the order
NEEDS_REVIEW (below a mismatch, above everything else), and the event a subscriber receives
validates against its published schema.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from steppay.events import events_for_order_change
from steppay.models import OrderDetail, OrderType
from steppay.persistence import PaymentRecord, PaymentState, RegisteredItem, Registration
from steppay.verification import PaymentClaim, Verdict, verify_payment

ROOT = Path(__file__).resolve().parents[2]
CONTEXT = {"steppay_timezone": "Asia/Seoul"}
CODE = "order_NewValue5"
REGISTRATION = Registration(
    checkout_id="chk_" + "2" * 32,
    merchant_ref="cart-review",
    customer_id=7,
    items=[RegisteredItem(product_code="product_a", price_code="price_a", currency="KRW", quantity=1)],
)


def order(
    *, status: str = "PAID", order_type: str = "ONE_TIME", returned: int = 0, customer: int = 7
) -> OrderDetail:
    data: dict[str, Any] = {
        "orderId": 9,
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
                "price": {"code": "price_a", "price": 15000},
                "product": {"code": "product_a"},
            }
        ],
        "customer": {"id": customer},
        "payment": {"amount": 15000, "paymentMethod": "CARD"},
    }
    return OrderDetail.model_validate(data, context=CONTEXT)


def verdict_of(answer: OrderDetail) -> tuple[Verdict, tuple[str, ...]]:
    result = verify_payment(PaymentClaim(order_code=CODE, registration=REGISTRATION), answer)
    return result.verdict, result.evidence.unknown_values


def test_a_new_item_status_parses_and_is_named() -> None:
    answer = order(status="PARTIALLY_SHIPPED_SOMEDAY")
    assert answer.items[0].status == "PARTIALLY_SHIPPED_SOMEDAY"
    assert answer.unknown_values == ("item status 'PARTIALLY_SHIPPED_SOMEDAY'",)


def test_a_new_order_type_parses_and_is_named() -> None:
    answer = order(order_type="GIFT_CARD")
    assert answer.type == "GIFT_CARD" and not isinstance(answer.type, OrderType)
    assert answer.unknown_values == ("order type 'GIFT_CARD'",)


def test_known_values_stay_enums() -> None:
    answer = order()
    assert answer.type is OrderType.ONE_TIME
    assert answer.unknown_values == ()


@pytest.mark.parametrize(
    "answer",
    [order(status="NEW_STATE"), order(order_type="NEW_TYPE"), order(status="NEW_STATE", returned=15000)],
    ids=["status", "type", "with-a-refund"],
)
def test_an_unknown_value_is_needs_review_never_paid(answer: OrderDetail) -> None:
    verdict, unknown = verdict_of(answer)
    assert verdict is Verdict.NEEDS_REVIEW and unknown


def test_a_mismatch_still_wins() -> None:
    verdict, _ = verdict_of(order(status="NEW_STATE", customer=8))
    assert verdict is Verdict.MISMATCH


def test_the_event_validates_against_its_schema() -> None:
    schema = json.loads((ROOT / "events" / "schemas" / "payment-needs-review.json").read_text("utf-8"))
    record = PaymentRecord(
        order_code=CODE,
        order_id=9,
        order_type="ONE_TIME",
        state=PaymentState.NEEDS_REVIEW,
        amount=Decimal(15000),
        currency="KRW",
        customer_id=7,
        merchant_ref=REGISTRATION.merchant_ref,
        registration=REGISTRATION,
        unknown_values=["item status 'NEW_STATE'"],
    )
    before = record.model_copy(update={"state": PaymentState.PENDING, "unknown_values": []})
    (event,) = events_for_order_change(before, record)
    assert event.detail_type == "Payment Needs Review"
    jsonschema.validate(event.detail, schema, format_checker=jsonschema.FormatChecker())
    assert event.detail["unknownValues"] == ["item status 'NEW_STATE'"]
