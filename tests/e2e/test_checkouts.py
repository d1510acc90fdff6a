"""Registering checkouts as the merchant's backend does, and what a registration binds.

Retries are safe (the same merchantRef or Idempotency-Key answers the same checkout, with one
StepPay order), a changed registration is refused, the shopper may raise a quantity only within
the registered bounds, and the merchant's expectedAmount is held against StepPay's price.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from e2e.conftest import Shop, error_code

pytestmark = pytest.mark.e2e


def _orders_for_customer(shop: Shop) -> int:
    state = shop.http.get(f"{shop.stack.sandbox_url}/_sandbox/state", timeout=10).json()
    return len(state["orders"])


def _register(shop: Shop, body: dict[str, Any], key: str | None = None) -> Any:
    headers = {"Idempotency-Key": key} if key else {}
    return shop.backend_post("/checkouts", body, headers=headers)


def test_a_retried_registration_answers_the_same_checkout_with_one_steppay_order(shop: Shop) -> None:
    body = shop.checkout_body()
    before = _orders_for_customer(shop)
    first = _register(shop, body)
    assert first.status_code == 201, first.text
    # Same content, keys in another order: the same checkout, no second order.
    again = _register(shop, dict(reversed(list(body.items()))))
    assert again.status_code == 200
    assert again.json() == first.json()
    assert _orders_for_customer(shop) == before + 1


def test_the_same_merchant_ref_with_other_content_is_a_conflict(shop: Shop) -> None:
    body = shop.checkout_body()
    assert _register(shop, body).status_code == 201
    before = _orders_for_customer(shop)
    changed = _register(shop, dict(body, items=shop.checkout_items(quantity=2)))
    assert changed.status_code == 409
    assert error_code(changed) == "merchant_ref_conflict"
    assert _orders_for_customer(shop) == before


def test_an_idempotency_key_answers_the_same_checkout_and_refuses_another_body(shop: Shop) -> None:
    key = str(uuid.uuid4())
    body = shop.checkout_body()
    before = _orders_for_customer(shop)
    first = _register(shop, body, key)
    assert first.status_code == 201
    assert _register(shop, body, key).json() == first.json()
    other = _register(shop, shop.checkout_body(), key)
    assert other.status_code == 409
    assert error_code(other) == "idempotency_key_reused"
    assert _orders_for_customer(shop) == before + 1
    bad = _register(shop, shop.checkout_body(), "has space")
    assert bad.status_code == 400


def test_concurrent_identical_registrations_create_one_steppay_order(shop: Shop) -> None:
    body = shop.checkout_body()
    before = _orders_for_customer(shop)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: _register(shop, body), range(8)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(201) == 1, statuses
    assert set(statuses) <= {200, 201, 409}
    assert all(error_code(a) == "checkout_in_progress" for a in answers if a.status_code == 409)
    assert _orders_for_customer(shop) == before + 1
    # Once registered, every retry gets it.
    assert _register(shop, body).status_code == 200


def test_a_quantity_raised_within_max_quantity_is_paid_at_what_was_charged(shop: Shop) -> None:
    link = shop.new_checkout(items=shop.checkout_items(quantity=1, maxQuantity=3))
    assert link["amount"] == "15000"
    code = link["orderCode"]
    assert shop.control(f"/orders/{code}/complete", {"outcome": "success", "quantity": 2}).status_code == 200
    answer = shop.post("/payments/verify", {"orderCode": code}).json()
    assert answer["verdict"] == "PAID"
    assert answer["amount"] == "30000"
    (event,) = shop.wait_for_events(code, 1)
    assert event["detail-type"] == "Payment Verified"
    assert event["detail"]["amount"] == "30000"
    assert event["detail"]["chargedItems"][0]["quantity"] == 2
    assert event["detail"]["items"][0]["maxQuantity"] == 3


def test_a_quantity_beyond_max_quantity_is_a_mismatch(shop: Shop) -> None:
    link = shop.new_checkout(items=shop.checkout_items(quantity=1, maxQuantity=3))
    code = link["orderCode"]
    # StepPay would cap it at the order's maximum; widen StepPay's order past the registration.
    assert shop.control(f"/orders/{code}/tamper", {"items": [{"maximumQuantity": 10}]}).status_code == 200
    shop.control(f"/orders/{code}/complete", {"outcome": "success", "quantity": 4})
    assert shop.post("/payments/verify", {"orderCode": code}).json()["verdict"] == "MISMATCH"
    record = shop.record(code)
    assert record is not None and record["state"] == "MISMATCH"
    assert record["mismatches"] == [
        "quantity: product_onetime_demo/price_onetime_demo charged 4, registered 1..3"
    ]
    (event,) = shop.wait_for_events(code, 1)
    assert event["detail-type"] == "Payment Mismatch"
    assert event["detail"]["mismatches"] == record["mismatches"]
    view = shop.backend_get(f"/checkouts/{link['checkoutId']}").json()
    assert view["state"] == "MISMATCH"
    assert view["mismatches"] == record["mismatches"]


def test_the_expected_amount_is_held_against_steppays_price(shop: Shop) -> None:
    body = shop.checkout_body(items=shop.checkout_items(quantity=3), expectedAmount=45000)
    ok = _register(shop, body)
    assert ok.status_code == 201 and ok.json()["amount"] == "45000"
    wrong = shop.checkout_body(items=shop.checkout_items(quantity=3), expectedAmount=15000)
    refused = _register(shop, wrong)
    assert refused.status_code == 422
    assert error_code(refused) == "expected_amount_mismatch"
    # Nothing was handed out: the merchant may register the same ref again, corrected.
    corrected = _register(shop, dict(wrong, expectedAmount="45000"))
    assert corrected.status_code == 201, corrected.text
    floats = _register(shop, dict(shop.checkout_body(), expectedAmount=15000.0))
    assert floats.status_code == 400


def test_an_unpaid_registration_expires(shop: Shop) -> None:
    expires = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    link = shop.new_checkout(expiresAt=expires.isoformat())
    assert datetime.fromisoformat(link["expiresAt"]) == expires
    record = shop.record(link["orderCode"])
    assert record is not None
    # DynamoDB's TTL removes it a week after it expires; StepPay stops taking payment at expiry.
    assert int(record["ttl"]) == int((expires + timedelta(days=7)).timestamp())
    order = shop.steppay("GET", f"/api/v1/orders/{link['orderCode']}").json()
    assert order["purchaseDeadline"] is not None
    too_far = _register(
        shop, shop.checkout_body(expiresAt=(datetime.now(UTC) + timedelta(days=40)).isoformat())
    )
    assert too_far.status_code == 400
    # Once paid, the order and its checkout are kept.
    shop.control(f"/orders/{link['orderCode']}/complete", {"outcome": "success"})
    assert shop.post("/payments/verify", {"orderCode": link["orderCode"]}).json()["verdict"] == "PAID"
    assert "ttl" not in (shop.record(link["orderCode"]) or {"ttl": 1})
    checkout = shop.table().get_item(Key={"pk": f"CHECKOUT#{link['checkoutId']}", "sk": "CHECKOUT"})["Item"]
    assert "ttl" not in checkout


def test_one_customer_field_exactly(shop: Shop) -> None:
    customer = shop.catalogue()["customer"]
    both = _register(shop, shop.checkout_body(customerCode=customer["code"]))
    assert both.status_code == 400
    by_code = shop.checkout_body()
    del by_code["customerId"]
    by_code["customerCode"] = customer["code"]
    answer = _register(shop, by_code)
    assert answer.status_code == 201, answer.text
