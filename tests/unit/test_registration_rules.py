"""A paid order counts as PAID only when it is what the merchant's backend registered.

The rules of `steppay.verification.registration_mismatches`, on StepPay-shaped order details:
customer, product and price codes, quantity bounds, currency, StepPay's own line total, and the
merchant's expectedAmount. Each rule is shown to fail alone, so a rule that stopped checking
would fail its test.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from steppay.models import OrderDetail
from steppay.persistence import RegisteredItem, Registration
from steppay.verification import PaymentClaim, Verdict, lines_total, verify_payment

CONTEXT = {"steppay_timezone": "Asia/Seoul"}
CODE = "order_Reg1stered"
CUSTOMER = 1001


def line(
    product: str = "product_a", price: str = "price_a", unit: int = 15000, quantity: int = 1
) -> dict[str, Any]:
    return {
        "status": "PAID",
        "currency": "KRW",
        "quantity": quantity,
        "paidAmount": unit * quantity,
        "price": {"code": price, "price": unit},
        "product": {"code": product},
    }


def paid_order(
    *lines: dict[str, Any], customer: int = CUSTOMER, paid: int | None = None, discount: int = 0
) -> OrderDetail:
    items = list(lines) or [line()]
    total = sum(i["price"]["price"] * i["quantity"] for i in items) - discount
    return OrderDetail.model_validate(
        {
            "orderId": 501,
            "orderCode": CODE,
            "type": "ONE_TIME",
            "paidAmount": total if paid is None else paid,
            "discountedAmount": discount,
            "paymentDate": "2026-12-01T10:00:00",
            "items": items,
            "customer": {"id": customer},
            "payment": {"amount": total, "paymentMethod": "CARD"},
        },
        context=CONTEXT,
    )


def registration(*items: RegisteredItem, expected: int | None = None) -> Registration:
    return Registration(
        checkout_id="chk_" + "0" * 32,
        merchant_ref="cart-1",
        customer_id=CUSTOMER,
        items=list(items)
        or [RegisteredItem(product_code="product_a", price_code="price_a", currency="KRW", quantity=1)],
        expected_amount=Decimal(expected) if expected is not None else None,
    )


def verdict(
    order: OrderDetail, reg: Registration, *, renewal: bool = False
) -> tuple[Verdict, tuple[str, ...]]:
    result = verify_payment(PaymentClaim(order_code=CODE, registration=reg, renewal=renewal), order)
    return result.verdict, result.evidence.registration_mismatches


def test_what_was_registered_is_paid() -> None:
    assert verdict(paid_order(), registration()) == (Verdict.PAID, ())


def test_another_customer_is_a_mismatch() -> None:
    found, reasons = verdict(paid_order(customer=2002), registration())
    assert found is Verdict.MISMATCH
    assert reasons and reasons[0].startswith("customer:")


@pytest.mark.parametrize(
    ("charged", "expected_reason"),
    [
        (line(price="price_b", unit=9900), "items: StepPay charged lines that were not registered"),
        (line(product="product_b"), "items: StepPay charged lines that were not registered"),
    ],
)
def test_other_codes_are_a_mismatch(charged: dict[str, Any], expected_reason: str) -> None:
    found, reasons = verdict(paid_order(charged), registration())
    assert found is Verdict.MISMATCH
    assert any(r.startswith(expected_reason) for r in reasons)


def test_a_missing_registered_line_is_a_mismatch_for_a_first_payment_only() -> None:
    two = registration(
        RegisteredItem(product_code="product_a", price_code="price_a", currency="KRW", quantity=1),
        RegisteredItem(product_code="product_s", price_code="price_s", currency="KRW", quantity=1),
    )
    found, reasons = verdict(paid_order(line()), two)
    assert found is Verdict.MISMATCH
    assert any(r.startswith("items: registered lines missing") for r in reasons)
    # A renewal charges its subscription's line, not the whole first checkout.
    assert verdict(paid_order(line()), two, renewal=True) == (Verdict.PAID, ())


@pytest.mark.parametrize(("quantity", "paid"), [(1, True), (2, True), (3, True), (4, False)])
def test_a_quantity_is_paid_only_within_the_registered_bounds(quantity: int, paid: bool) -> None:
    reg = registration(
        RegisteredItem(
            product_code="product_a", price_code="price_a", currency="KRW", quantity=1, max_quantity=3
        )
    )
    found, reasons = verdict(paid_order(line(quantity=quantity)), reg)
    assert (found is Verdict.PAID) is paid
    if not paid:
        assert reasons == ("quantity: product_a/price_a charged 4, registered 1..3",)


def test_without_max_quantity_the_registered_quantity_is_exact() -> None:
    reg = registration(
        RegisteredItem(product_code="product_a", price_code="price_a", currency="KRW", quantity=2)
    )
    assert verdict(paid_order(line(quantity=2)), reg)[0] is Verdict.PAID
    assert verdict(paid_order(line(quantity=3)), reg)[0] is Verdict.MISMATCH
    assert verdict(paid_order(line(quantity=1)), reg)[0] is Verdict.MISMATCH


def test_a_charge_other_than_steppays_line_total_is_a_mismatch() -> None:
    found, reasons = verdict(paid_order(line(quantity=1), paid=1000), registration())
    assert found is Verdict.MISMATCH
    assert reasons == ("amount: charged 1000, StepPay's lines total 15000",)


def test_the_line_total_takes_steppays_discount_off() -> None:
    order = paid_order(line(quantity=2), discount=3000)
    assert lines_total(order) == Decimal(27000)
    reg = registration(
        RegisteredItem(
            product_code="product_a", price_code="price_a", currency="KRW", quantity=1, max_quantity=2
        )
    )
    assert verdict(order, reg) == (Verdict.PAID, ())


def test_the_merchants_expected_amount_must_be_what_was_charged() -> None:
    assert verdict(paid_order(), registration(expected=15000)) == (Verdict.PAID, ())
    found, reasons = verdict(paid_order(), registration(expected=45000))
    assert found is Verdict.MISMATCH
    assert reasons == ("amount: charged 15000, the merchant expected 45000",)


def test_another_currency_is_a_mismatch() -> None:
    reg = registration(
        RegisteredItem(product_code="product_a", price_code="price_a", currency="USD", quantity=1)
    )
    found, reasons = verdict(paid_order(), reg)
    assert found is Verdict.MISMATCH
    assert any(r.startswith("currency:") for r in reasons)


def test_an_unpaid_order_is_not_judged_against_its_registration() -> None:
    # Before payment StepPay may report quantity 0 and another amount: nothing to compare yet.
    unpaid = OrderDetail.model_validate(
        {
            "orderId": 501,
            "orderCode": CODE,
            "type": "ONE_TIME",
            "paidAmount": 0,
            "items": [{**line(quantity=0), "status": "CREATED", "paidAmount": 0}],
            "customer": {"id": CUSTOMER},
        },
        context=CONTEXT,
    )
    assert verdict(unpaid, registration()) == (Verdict.NOT_PAID, ())


def test_a_mismatch_wins_over_a_refund() -> None:
    refunded = paid_order(customer=2002).model_copy(update={"returned_amount": Decimal(15000)})
    assert verdict(refunded, registration())[0] is Verdict.MISMATCH
