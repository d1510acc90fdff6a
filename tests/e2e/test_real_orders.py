"""End to end on orders as StepPay really makes them: the rules hold on them.

Through the local API and the sandbox's seed catalogue: the shopper raises a quantity within the
registered `maxQuantity`; StepPay adds its own TAX, SHIPPING, FEE and DISCOUNT lines
(`price_box_lines_demo`: 20,000 a box, VAT 10 %, shipping 3,000, fee 5,000, 2,000 off); a
first-sale price (`price_first_sale_monthly_demo`: 12,000, 3,000 off each unit of the first
payment); a 14-day free trial (`price_trial_monthly_demo`: 0 won first, 9,900 a month after).
Each is registered, paid, recorded once and announced with what StepPay charged, line by line.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from e2e.conftest import Shop

pytestmark = pytest.mark.e2e

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "events/schemas/payment-verified.json").read_text()
)
BOX = ("product_box_lines_demo", "price_box_lines_demo")
FIRST_SALE = ("product_first_sale_demo", "price_first_sale_monthly_demo")
TRIAL = ("product_trial_demo", "price_trial_monthly_demo")


def _items(codes: tuple[str, str], quantity: int = 1, **extra: Any) -> list[dict[str, Any]]:
    product, price = codes
    return [{"productCode": product, "priceCode": price, "currency": "KRW", "quantity": quantity, **extra}]


def _pay(shop: Shop, order_code: str, **choice: Any) -> dict[str, Any]:
    """The shopper pays at the sandbox's pay page, then the shopper's page asks for the verdict."""
    paid = shop.control(f"/orders/{order_code}/complete", {"outcome": "success", **choice})
    assert paid.status_code == 200, paid.text
    answer = shop.post("/payments/verify", {"orderCode": order_code})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _verified_event(shop: Shop, order_code: str) -> dict[str, Any]:
    events = shop.wait_for_events(order_code, 1)
    assert [e["detail-type"] for e in events] == ["Payment Verified"], events
    detail = dict(events[0]["detail"])
    jsonschema.validate(detail, SCHEMA, format_checker=jsonschema.FormatChecker())
    return detail


def _lines(detail: dict[str, Any]) -> list[tuple[str, str | None, str | None]]:
    return [(i["type"], i["priceCode"], i["amount"]) for i in detail["chargedItems"]]


def _steppay_paid(shop: Shop, order_code: str) -> Decimal:
    order = shop.steppay("GET", f"/api/v1/orders/{order_code}").json()
    return Decimal(str(order["paidAmount"]))


def test_a_quantity_raised_within_max_quantity_is_paid_at_steppays_charge_despite_expected_amount(
    shop: Shop,
) -> None:
    # The merchant expects 15,000 for the registered quantity 1; the shopper may raise it to 3.
    link = shop.new_checkout(items=shop.checkout_items(quantity=1, maxQuantity=3), expectedAmount=15000)
    assert link["amount"] == "15000"
    code = link["orderCode"]
    answer = _pay(shop, code, quantity=2)
    assert (answer["verdict"], answer["amount"]) == ("PAID", "30000")
    assert _steppay_paid(shop, code) == Decimal(30000)
    record = shop.record(code)
    assert record is not None and record["state"] == "PAID" and record["mismatches"] == []
    detail = _verified_event(shop, code)
    assert detail["amount"] == "30000"  # what StepPay charged, not the expectedAmount
    product, price = shop.catalogue()["one_time"]
    (line,) = detail["chargedItems"]
    charged = (line["type"], line["priceCode"], line["quantity"], line["unitPrice"], line["amount"])
    assert charged == ("SKU", price["code"], 2, "15000", "30000")
    assert detail["chargedItems"][0]["name"] == product["name"]
    assert [(i["quantity"], i["maxQuantity"]) for i in detail["items"]] == [(1, 3)]


def test_the_expected_amount_still_holds_when_the_shopper_keeps_the_registered_quantity(shop: Shop) -> None:
    link = shop.new_checkout(items=shop.checkout_items(quantity=1, maxQuantity=3), expectedAmount=15000)
    answer = _pay(shop, link["orderCode"])
    assert (answer["verdict"], answer["amount"]) == ("PAID", "15000")


def test_an_order_with_tax_shipping_fee_and_discount_lines_is_registered_and_paid(shop: Shop) -> None:
    # StepPay prices one box at 20,000 + 2,000 VAT + 3,000 shipping + 5,000 fee - 2,000 discount.
    link = shop.new_checkout(items=_items(BOX), expectedAmount=28000)
    assert link["amount"] == "28000"
    code = link["orderCode"]
    record = shop.record(code)
    assert record is not None and record["state"] == "PENDING" and record["amount"] == 28000
    answer = _pay(shop, code)
    assert (answer["verdict"], answer["amount"]) == ("PAID", "28000")
    assert shop.record(code)["state"] == "PAID"  # type: ignore[index]
    detail = _verified_event(shop, code)
    assert detail["amount"] == "28000"
    assert _lines(detail) == [
        ("SKU", BOX[1], "20000"),
        ("TAX", None, "2000"),
        ("SHIPPING", None, "3000"),
        ("FEE", None, "5000"),
        ("DISCOUNT", None, "-2000"),
    ]
    assert all(i["name"] for i in detail["chargedItems"])  # StepPay names every line
    assert sum(Decimal(i["amount"]) for i in detail["chargedItems"]) == Decimal(detail["amount"])
    # Only the merchant's line is registered; StepPay's own lines never are.
    assert [i["priceCode"] for i in detail["items"]] == [BOX[1]]


def test_steppays_lines_follow_a_raised_quantity(shop: Shop) -> None:
    link = shop.new_checkout(items=_items(BOX, maxQuantity=3), expectedAmount=28000)
    answer = _pay(shop, link["orderCode"], quantity=2)
    # 2 x 20,000 + 4,000 VAT + 3,000 + 5,000 - 2,000.
    assert (answer["verdict"], answer["amount"]) == ("PAID", "50000")
    detail = _verified_event(shop, link["orderCode"])
    assert ("TAX", None, "4000") in _lines(detail)


def test_a_wrong_expected_amount_for_an_order_with_steppays_lines_is_refused_at_registration(
    shop: Shop,
) -> None:
    # 20,000 is the box's catalogue price, not what StepPay will charge for the order.
    response = shop.backend_post("/checkouts", shop.checkout_body(items=_items(BOX), expectedAmount=20000))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "expected_amount_mismatch"


def test_a_first_sale_price_is_paid_at_the_discounted_first_payment(shop: Shop) -> None:
    link = shop.new_checkout(items=_items(FIRST_SALE), expectedAmount=9000)
    assert link["amount"] == "9000"
    answer = _pay(shop, link["orderCode"])
    assert (answer["verdict"], answer["amount"]) == ("PAID", "9000")
    detail = _verified_event(shop, link["orderCode"])
    assert detail["orderType"] == "RECURRING_INITIAL"
    assert _lines(detail) == [("SKU", FIRST_SALE[1], "12000"), ("DISCOUNT", None, "-3000")]


def test_a_free_trial_is_paid_at_zero(shop: Shop) -> None:
    link = shop.new_checkout(items=_items(TRIAL), expectedAmount=0)
    assert link["amount"] == "0"
    code = link["orderCode"]
    answer = _pay(shop, code)
    assert answer["verified"] is True
    assert (answer["verdict"], answer["amount"]) == ("PAID", "0")
    assert _steppay_paid(shop, code) == Decimal(0)
    record = shop.record(code)
    assert record is not None and record["state"] == "PAID" and record["paid_amount"] == 0
    detail = _verified_event(shop, code)
    assert detail["amount"] == "0"
    assert len(detail["subscriptionIds"]) == 1  # the trial started its subscription
    # The plan's price is 9,900; the trial's first payment charged the line 0.
    charged = [(i["type"], i["unitPrice"], i["amount"]) for i in detail["chargedItems"]]
    assert charged == [("SKU", "9900", "0")]
