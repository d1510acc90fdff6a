"""The rules hold on real StepPay orders: a chosen quantity, StepPay's own lines, first sales, trials.

`steppay.verification` on StepPay-shaped order details as the sandbox (and StepPay's spec) give
them: a quantity the shopper raised within the registered bounds is paid at StepPay's charge
(`expectedAmount` prices the registered quantities only); TAX, SHIPPING, FEE and DISCOUNT lines
that StepPay adds are recognised by their item type and counted into StepPay's own total; a free
trial's first payment is 0. Each guard that must still hold is shown to fail alone.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from steppay import persistence
from steppay.events import payment_verified_detail
from steppay.models import OrderDetail
from steppay.payments import charged_items
from steppay.persistence import (
    ChargedItem,
    PaymentRecord,
    PaymentState,
    RegisteredItem,
    Registration,
    record_from_item,
)
from steppay.verification import (
    PaymentClaim,
    Verdict,
    kept_registered_quantities,
    lines_total,
    registered_total,
    verify_payment,
)

ROOT = Path(__file__).resolve().parents[2]
CONTEXT = {"steppay_timezone": "Asia/Seoul"}
CODE = "order_RealOrd3r"
CUSTOMER = 1001
SKU_ID = 500001


def sku(
    *,
    unit: int = 20000,
    quantity: int = 1,
    product: str = "product_box",
    price: str = "price_box",
    demo: bool = False,
    paid: bool = True,
) -> dict[str, Any]:
    return {
        "id": SKU_ID,
        "type": "SKU",
        "status": "PAID" if paid else "CREATED",
        "currency": "KRW",
        "quantity": quantity if paid else 0,
        "paidAmount": (0 if demo else unit * quantity) if paid else 0,
        "price": {"code": price, "price": unit},
        "product": {"code": product},
        "orderedProductName": "Demo box",
        "demoCycle": {"num": 14, "type": "DAY"} if demo else None,
        "minimumQuantity": 1,
        "maximumQuantity": 3,
    }


def own_line(kind: str, amount: int, *, paid: bool = True, name: str | None = None) -> dict[str, Any]:
    """A line StepPay adds (as the sandbox renders it: no price or product of its own)."""
    return {
        "type": kind,
        "status": "PAID" if paid else "CREATED",
        "currency": "KRW",
        "quantity": 1 if paid else 0,
        "paidAmount": amount if paid else 0,
        "price": None,
        "product": None,
        "orderedProductName": name or kind.title(),
        "discountName": name if kind == "DISCOUNT" else None,
        "relatedOrderItemId": SKU_ID,
    }


def order(
    *items: dict[str, Any],
    paid: int | None = None,
    discount: int | None = 0,
    order_type: str = "ONE_TIME",
    left: int | None = None,
    unpaid: bool = False,
) -> OrderDetail:
    lines = list(items) or [sku()]
    charged = sum(i["paidAmount"] or 0 for i in lines)
    return OrderDetail.model_validate(
        {
            "orderId": 501,
            "orderCode": CODE,
            "type": order_type,
            "paidAmount": 0 if unpaid else (charged if paid is None else paid),
            "leftAmount": left,
            "discountedAmount": discount,
            "paymentDate": None if unpaid else "2026-12-01T10:00:00",
            "items": lines,
            "customer": {"id": CUSTOMER},
        },
        context=CONTEXT,
    )


def registration(
    quantity: int = 1,
    max_quantity: int | None = 3,
    *,
    expected: int | None = None,
    product: str = "product_box",
    price: str = "price_box",
) -> Registration:
    return Registration(
        checkout_id="chk_" + "0" * 32,
        merchant_ref="cart-real",
        customer_id=CUSTOMER,
        items=[
            RegisteredItem(
                product_code=product,
                price_code=price,
                currency="KRW",
                quantity=quantity,
                max_quantity=max_quantity,
            )
        ],
        expected_amount=Decimal(expected) if expected is not None else None,
    )


def verdict(
    detail: OrderDetail, reg: Registration, *, renewal: bool = False
) -> tuple[Verdict, tuple[str, ...]]:
    result = verify_payment(PaymentClaim(order_code=CODE, registration=reg, renewal=renewal), detail)
    return result.verdict, result.evidence.registration_mismatches


# The sandbox's price_box_lines_demo at quantity q: 20,000 each, VAT 10 %, shipping 3,000, fee
# 5,000, an invoice discount of 2,000.
def box_with_lines(quantity: int = 1, *, paid: bool = True) -> list[dict[str, Any]]:
    return [
        sku(quantity=quantity, paid=paid),
        own_line("TAX", 2000 * quantity, paid=paid, name="VAT"),
        own_line("SHIPPING", 3000, paid=paid),
        own_line("FEE", 5000, paid=paid),
        own_line("DISCOUNT", -2000, paid=paid, name="Invoice discount"),
    ]


# -- 1. a quantity the shopper chose ---------------------------------------------------------


def test_a_raised_quantity_is_paid_at_what_steppay_charged_though_expected_amount_priced_one() -> None:
    # expectedAmount is what StepPay prices the registered quantity (1) at; the shopper chose 2.
    detail = order(sku(unit=15000, quantity=2))
    assert detail.paid_amount == Decimal(30000)
    assert verdict(detail, registration(expected=15000)) == (Verdict.PAID, ())


def test_expected_amount_still_pins_the_charge_when_the_shopper_kept_the_registered_quantity() -> None:
    kept = order(sku(unit=15000, quantity=1))
    assert verdict(kept, registration(expected=15000)) == (Verdict.PAID, ())
    found, reasons = verdict(kept, registration(expected=14000))
    assert found is Verdict.MISMATCH
    assert reasons == ("amount: charged 15000, the merchant expected 14000",)


def test_a_chosen_quantity_must_still_be_charged_at_steppays_own_total() -> None:
    found, reasons = verdict(order(sku(unit=15000, quantity=2), paid=15000), registration(expected=15000))
    assert found is Verdict.MISMATCH
    assert reasons == ("amount: charged 15000, StepPay's lines total 30000",)


def test_a_chosen_quantity_must_still_lie_within_the_registered_bounds() -> None:
    found, reasons = verdict(order(sku(unit=15000, quantity=4)), registration(expected=15000))
    assert found is Verdict.MISMATCH
    assert reasons == ("quantity: product_box/price_box charged 4, registered 1..3",)


def test_kept_registered_quantities_compares_each_registered_line() -> None:
    assert kept_registered_quantities(registration(2), order(sku(quantity=2)))
    assert not kept_registered_quantities(registration(1), order(sku(quantity=2)))


# -- 2. StepPay's own lines --------------------------------------------------------------------


@pytest.mark.parametrize("quantity", [1, 2, 3])
def test_an_order_with_tax_shipping_fee_and_discount_lines_is_paid(quantity: int) -> None:
    detail = order(*box_with_lines(quantity), discount=2000)
    expected_charge = 20000 * quantity + 2000 * quantity + 3000 + 5000 - 2000
    assert detail.paid_amount == lines_total(detail) == Decimal(expected_charge)
    assert verdict(detail, registration(expected=28000)) == (Verdict.PAID, ())


def test_steppays_own_lines_enter_the_total_so_an_overcharge_is_still_a_mismatch() -> None:
    found, reasons = verdict(order(*box_with_lines(), discount=2000, paid=30000), registration())
    assert found is Verdict.MISMATCH
    assert reasons == ("amount: charged 30000, StepPay's lines total 28000",)


def test_a_discount_line_is_taken_off_once_whatever_sign_steppay_gives_it() -> None:
    positive = [*box_with_lines()[:-1], own_line("DISCOUNT", 2000, name="Invoice discount")]
    assert lines_total(order(*positive, discount=2000, paid=28000)) == Decimal(28000)
    # With no discountedAmount, the DISCOUNT lines say what was taken off.
    assert lines_total(order(*box_with_lines(), discount=None)) == Decimal(28000)


@pytest.mark.parametrize("kind", ["SKU", "OFFLINE", "ADDS", "INSTANT", None, "SURCHARGE"])
def test_a_line_the_merchant_did_not_register_that_is_not_steppays_own_kind_is_a_mismatch(
    kind: str | None,
) -> None:
    extra = {**own_line("TAX", 1000), "type": kind, "price": {"code": "price_x", "price": 1000}}
    extra["product"] = {"code": "product_x"}
    found, reasons = verdict(order(sku(), extra), registration())
    assert found is Verdict.MISMATCH
    assert any(r.startswith("items: StepPay charged lines that were not registered") for r in reasons)


def test_a_line_of_steppays_kind_without_price_or_product_codes_needs_no_registration() -> None:
    assert verdict(order(sku(), own_line("SHIPPING", 3000)), registration()) == (Verdict.PAID, ())


def test_a_steppay_line_that_names_an_unregistered_price_is_a_mismatch() -> None:
    tax = {**own_line("TAX", 2000), "price": {"code": "price_other", "price": 2000}}
    found, reasons = verdict(order(sku(), tax), registration())
    assert found is Verdict.MISMATCH
    assert reasons[0] == "items: StepPay charged lines that were not registered: TAX line of None/price_other"


def test_a_steppay_line_in_another_currency_is_a_mismatch() -> None:
    found, reasons = verdict(order(sku(), {**own_line("FEE", 5000), "currency": "USD"}), registration())
    assert found is Verdict.MISMATCH
    assert any(r.startswith("currency: a FEE line charged in USD") for r in reasons)


def test_a_steppay_line_without_an_amount_cannot_be_checked_so_it_is_a_mismatch() -> None:
    found, reasons = verdict(order(sku(), {**own_line("TAX", 0), "paidAmount": None}), registration())
    assert found is Verdict.MISMATCH
    assert any(r.startswith("amount: StepPay's lines carry no price") for r in reasons)


def test_a_first_sale_discount_line_is_paid_at_the_discounted_price() -> None:
    # price_first_sale_monthly_demo: 12,000 a month, 3,000 off each unit of the first payment.
    first = order(
        sku(unit=12000, quantity=2),
        own_line("DISCOUNT", -6000, name="First-sale discount"),
        discount=6000,
        order_type="RECURRING_INITIAL",
    )
    assert first.paid_amount == Decimal(18000)
    assert verdict(first, registration(expected=9000)) == (Verdict.PAID, ())


# -- a free trial --------------------------------------------------------------------------------


def test_a_free_trial_is_paid_at_zero_on_its_initial_order() -> None:
    trial = order(sku(unit=9900, demo=True), order_type="RECURRING_INITIAL")
    assert trial.paid_amount == Decimal(0)
    assert lines_total(trial) == Decimal(0)
    assert verdict(trial, registration(expected=0)) == (Verdict.PAID, ())


def test_a_trial_prices_nothing_away_on_a_renewal() -> None:
    # A renewal pays the full price: a 0-won renewal claiming a trial is not StepPay's total.
    renewal = order(sku(unit=9900, demo=True), order_type="RECURRING")
    found, reasons = verdict(renewal, registration(), renewal=True)
    assert found is Verdict.MISMATCH
    assert reasons == ("amount: charged 0, StepPay's lines total 9900",)


def test_an_item_without_a_trial_charged_zero_is_a_mismatch() -> None:
    found, reasons = verdict(order(sku(unit=9900), paid=0, order_type="RECURRING_INITIAL"), registration())
    assert found is Verdict.MISMATCH
    assert reasons == ("amount: charged 0, StepPay's lines total 9900",)


# -- the registered amount (checkout time, before payment) --------------------------------------


def test_the_registered_amount_of_an_order_with_steppays_lines_is_steppays_left_amount() -> None:
    unpaid = order(*box_with_lines(paid=False), discount=2000, left=28000, unpaid=True)
    assert registered_total(unpaid, registration()) == Decimal(28000)
    # Without StepPay's figure the lines' amounts (0 until paid) are unknown: not registrable.
    blind = order(*box_with_lines(paid=False), discount=2000, unpaid=True)
    assert registered_total(blind, registration()) is None


def test_the_registered_amount_prices_the_registered_quantities() -> None:
    unpaid = order(sku(unit=15000, paid=False), unpaid=True)
    assert registered_total(unpaid, registration(2)) == Decimal(30000)
    first_sale = order(
        sku(unit=12000, paid=False),
        own_line("DISCOUNT", 0, paid=False),
        discount=3000,
        unpaid=True,
        order_type="RECURRING_INITIAL",
    )
    assert registered_total(first_sale, registration()) == Decimal(9000)


def test_the_registered_amount_of_a_trial_is_zero() -> None:
    unpaid = order(sku(unit=9900, demo=True, paid=False), unpaid=True, order_type="RECURRING_INITIAL")
    assert registered_total(unpaid, registration()) == Decimal(0)


def test_an_order_with_an_unregistered_line_or_missing_a_registered_one_is_not_registrable() -> None:
    other = {**sku(paid=False), "price": {"code": "price_x", "price": 1}, "product": {"code": "product_x"}}
    assert registered_total(order(sku(paid=False), other, unpaid=True), registration()) is None
    assert registered_total(order(other, unpaid=True), registration()) is None


# -- 3. what the event says was charged ----------------------------------------------------------


def test_charged_items_say_each_lines_type_name_and_amount_and_add_up_to_the_charge() -> None:
    detail = order(*box_with_lines(2), discount=2000)
    lines = charged_items(detail)
    assert [(c.type, c.name, c.amount) for c in lines] == [
        ("SKU", "Demo box", Decimal(40000)),
        ("TAX", "VAT", Decimal(4000)),
        ("SHIPPING", "Shipping", Decimal(3000)),
        ("FEE", "Fee", Decimal(5000)),
        ("DISCOUNT", "Invoice discount", Decimal(-2000)),
    ]
    assert sum(c.amount or 0 for c in lines) == detail.paid_amount
    assert (lines[0].product_code, lines[0].price_code, lines[0].quantity, lines[0].unit_price) == (
        "product_box",
        "price_box",
        2,
        Decimal(20000),
    )


def test_steppays_own_lines_survive_the_table_and_old_records_still_read() -> None:
    # The table leaves None out, and StepPay's own lines have no product or price codes.
    record = PaymentRecord(
        order_code=CODE,
        order_id=501,
        order_type="ONE_TIME",
        state=PaymentState.PAID,
        amount=Decimal(28000),
        currency="KRW",
        paid_amount=Decimal(28000),
        charged_items=charged_items(order(*box_with_lines(), discount=2000)),
    )
    item = persistence._to_item(record, persistence.order_key(CODE), "ORDER")
    assert record_from_item(item).charged_items == record.charged_items
    before = [{"product_code": "product_box", "price_code": "price_box", "quantity": 1}]
    old = {**item, "charged_items": before}
    (line,) = record_from_item(old).charged_items
    assert (line.type, line.name, line.amount, line.unit_price) == (None, None, None, None)


def test_the_event_names_each_charged_line_as_its_schema_says() -> None:
    schema = json.loads((ROOT / "events/schemas/payment-verified.json").read_text())
    reg = registration(expected=28000)
    record = PaymentRecord(
        order_code=CODE,
        order_id=501,
        order_type="ONE_TIME",
        state=PaymentState.PAID,
        amount=Decimal(28000),
        currency="KRW",
        customer_id=CUSTOMER,
        merchant_ref=reg.merchant_ref,
        paid_at=datetime(2026, 12, 1, 10, tzinfo=UTC),
        paid_amount=Decimal(28000),
        registration=reg,
        charged_items=[*charged_items(order(*box_with_lines(), discount=2000)), ChargedItem(quantity=1)],
    )
    detail = payment_verified_detail(record)
    jsonschema.validate(detail, schema, format_checker=jsonschema.FormatChecker())
    assert [(i["type"], i["name"], i["amount"]) for i in detail["chargedItems"]] == [
        ("SKU", "Demo box", "20000"),
        ("TAX", "VAT", "2000"),
        ("SHIPPING", "Shipping", "3000"),
        ("FEE", "Fee", "5000"),
        ("DISCOUNT", "Invoice discount", "-2000"),
        (None, None, None),  # a record written before lines had a type
    ]
