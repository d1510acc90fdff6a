"""End to end through the local API: the backend registers a checkout → the shopper pays at the
sandbox → verify → record → event on the tap."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest
from e2e.conftest import Shop, error_code, no_leak
from fixtures.sandbox import seed_order_body

pytestmark = pytest.mark.e2e

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "events/schemas/payment-verified.json").read_text()
)


def _verify(shop: Shop, order_code: str, **extra: Any) -> dict[str, Any]:
    response = shop.post("/payments/verify", {"orderCode": order_code, **extra})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_checkout_answers_the_sandbox_pay_page_with_encoded_redirects(shop: Shop) -> None:
    link = shop.new_checkout()
    assert set(link) == {
        "checkoutId",
        "merchantRef",
        "orderCode",
        "orderId",
        "payUrl",
        "amount",
        "currency",
        "expiresAt",
    }
    assert link["currency"] == "KRW"
    assert link["amount"] == "15000"
    url = urlsplit(link["payUrl"])
    assert f"{url.scheme}://{url.netloc}" == shop.stack.sandbox_url
    assert url.path == f"/api/public/orders/{link['orderCode']}/pay"
    query = parse_qs(url.query)
    assert query["successUrl"] == ["http://localhost:8080/checkout/success"]
    assert query["errorUrl"] == ["http://localhost:8080/checkout/error"]
    assert query["cancelUrl"] == ["http://localhost:8080/checkout/cancel"]
    assert query["lang"] == ["ko"]
    # The pay link really opens StepPay's (the sandbox's) pay page.
    page = shop.http.get(link["payUrl"], allow_redirects=False, timeout=10)
    assert page.status_code == 302
    # The pending order is remembered with its registration, and expires unless paid.
    record = shop.record(link["orderCode"])
    assert record is not None
    assert record["state"] == "PENDING"
    assert record["amount"] == 15000
    assert record["merchant_ref"] == link["merchantRef"]
    assert record["registration"]["checkout_id"] == link["checkoutId"]
    assert record["order_id"] == link["orderId"]
    assert record["ttl"] > 0


def test_paid_order_is_verified_recorded_once_and_announced_once(shop: Shop) -> None:
    link = shop.new_checkout()
    code = link["orderCode"]
    assert shop.control(f"/orders/{code}/complete", {"outcome": "success"}).status_code == 200

    first = _verify(shop, code, orderId=link["orderId"], status="success")
    # The shopper's page learns the verdict on its own order, nothing more.
    assert set(first) == {"verified", "verdict", "orderCode", "amount", "currency", "paidAt"}
    assert first["verified"] is True
    assert first["verdict"] == "PAID"
    assert first["orderCode"] == code
    assert first["amount"] == "15000"
    assert first["currency"] == "KRW"
    # StepPay's zone-less paymentDate, read in STEPPAY_TIMEZONE (UTC by default), keeps an explicit offset.
    assert first["paidAt"] and datetime.fromisoformat(first["paidAt"]).utcoffset() == timedelta(0)

    record = shop.record(code)
    assert record is not None and record["state"] == "PAID"
    assert record["verified_via"] == "verify_api"
    assert record["payment_date_raw"]
    assert record["payment_method"] == "CARD"
    card = record.get("card_number")
    assert card is None or "*" in card  # only StepPay's masked form is ever stored

    events = shop.wait_for_events(code, 1)
    assert len(events) == 1
    envelope = events[0]
    assert envelope["source"] == "steppay.payments"
    assert envelope["detail-type"] == "Payment Verified"
    jsonschema.validate(envelope["detail"], SCHEMA, format_checker=jsonschema.FormatChecker())
    detail = envelope["detail"]
    assert detail["merchantRef"] == link["merchantRef"]
    assert detail["checkoutId"] == link["checkoutId"]
    assert detail["amount"] == "15000"
    assert detail["customer"]["id"] == shop.catalogue()["customer"]["id"]
    product, price = shop.catalogue()["one_time"]
    assert [(i["productCode"], i["priceCode"], i["quantity"]) for i in detail["items"]] == [
        (product["code"], price["code"], 1)
    ]
    assert [(i["priceCode"], i["quantity"], i["unitPrice"]) for i in detail["chargedItems"]] == [
        (price["code"], 1, "15000")
    ]
    # The merchant's backend reads the whole record back.
    view = shop.backend_get(f"/checkouts/{link['checkoutId']}")
    assert view.status_code == 200, view.text
    assert view.json()["state"] == "PAID"
    assert view.json()["merchantRef"] == link["merchantRef"]
    assert shop.backend_get("/checkouts", params={"merchantRef": link["merchantRef"]}).json() == view.json()

    # Re-verifying is harmless: same answer, no second record, no second event.
    again = _verify(shop, code)
    assert again == first
    assert shop.record(code) == record
    shop.settle_publisher()
    assert len(shop.wait_for_events(code, 2, timeout=3)) == 1


def test_callback_redirects_to_result_page_and_ignores_claimed_status(shop: Shop) -> None:
    paid = shop.new_checkout()
    shop.control(f"/orders/{paid['orderCode']}/complete", {"outcome": "success"})
    # StepPay confirms the payment even though the redirect said "error": it is paid.
    response = shop.get(
        "/payments/callback",
        params={"order_code": paid["orderCode"], "order_id": paid["orderId"], "status": "error"},
    )
    assert response.status_code == 303
    location = urlsplit(response.headers["Location"])
    query = parse_qs(location.query)
    assert query == {"orderCode": [paid["orderCode"]], "result": ["paid"]}
    assert shop.record(paid["orderCode"])["verified_via"] == "callback"  # type: ignore[index]

    unpaid = shop.new_checkout()
    before = shop.record(unpaid["orderCode"])
    forged = shop.get("/payments/callback", params={"order_code": unpaid["orderCode"], "status": "success"})
    assert forged.status_code == 303
    assert parse_qs(urlsplit(forged.headers["Location"]).query)["result"] == ["pending"]
    assert shop.record(unpaid["orderCode"]) == before
    shop.settle_publisher()
    assert shop.events_for(unpaid["orderCode"], max_wait=1) == []


def test_failed_payment_is_not_paid(shop: Shop) -> None:
    link = shop.new_checkout()
    shop.control(f"/orders/{link['orderCode']}/complete", {"outcome": "failure"})
    body = _verify(shop, link["orderCode"], status="success")
    assert body["verified"] is False
    assert body["verdict"] == "FAILED"
    assert shop.record(link["orderCode"])["state"] == "PENDING"  # type: ignore[index]
    response = shop.get("/payments/callback", params={"order_code": link["orderCode"], "status": "success"})
    assert parse_qs(urlsplit(response.headers["Location"]).query)["result"] == ["failed"]
    shop.settle_publisher()
    assert shop.events_for(link["orderCode"], max_wait=1) == []


def test_refunded_order_is_canceled_not_paid(shop: Shop) -> None:
    link = shop.new_checkout()
    shop.control(f"/orders/{link['orderCode']}/complete", {"outcome": "success"})
    shop.control(f"/orders/{link['orderCode']}/refund")
    body = _verify(shop, link["orderCode"])
    assert body["verdict"] == "CANCELED"
    assert body["verified"] is False


def test_subscription_payment_lists_its_subscription(shop: Shop) -> None:
    link = shop.new_checkout("recurring")
    assert link["amount"] == "9900"
    shop.control(f"/orders/{link['orderCode']}/complete", {"outcome": "success"})
    body = _verify(shop, link["orderCode"])
    assert body["verdict"] == "PAID"
    assert "subscriptionIds" not in body  # not the shopper page's to know
    events = shop.wait_for_events(link["orderCode"], 1)
    assert events[0]["detail"]["orderType"] == "RECURRING_INITIAL"
    assert len(events[0]["detail"]["subscriptionIds"]) == 1
    view = shop.backend_get(f"/checkouts/{link['checkoutId']}").json()
    assert view["subscriptionIds"] == events[0]["detail"]["subscriptionIds"]


def test_an_order_the_bundle_did_not_register_is_not_looked_up_or_recorded(shop: Shop) -> None:
    # Made at StepPay directly (its portal, another integration): not a checkout of this bundle.
    created = shop.steppay("POST", "/api/v1/orders", json=seed_order_body(shop.catalogue())).json()
    shop.control(f"/orders/{created['orderCode']}/complete", {"outcome": "success"})
    response = shop.post("/payments/verify", {"orderCode": created["orderCode"]})
    assert response.status_code == 404
    assert error_code(response) == "order_not_found"
    assert shop.record(created["orderCode"]) is None
    shop.settle_publisher()
    assert shop.events_for(created["orderCode"], max_wait=1) == []


def test_concurrent_verifications_write_once_and_announce_once(shop: Shop) -> None:
    link = shop.new_checkout()
    shop.control(f"/orders/{link['orderCode']}/complete", {"outcome": "success"})
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: _verify(shop, link["orderCode"]), range(16)))
    assert {a["verdict"] for a in answers} == {"PAID"}
    assert len({json.dumps(a, sort_keys=True) for a in answers}) == 1
    shop.settle_publisher()
    assert len(shop.wait_for_events(link["orderCode"], 2, timeout=3)) == 1


def test_mismatched_order_id_is_not_paid_and_not_recorded(shop: Shop) -> None:
    # StepPay's own webhook would (rightly) record the payment; keep it out of this test.
    shop.control("/faults", {"webhooks": "drop", "count": 100})
    link = shop.new_checkout()
    shop.control(f"/orders/{link['orderCode']}/complete", {"outcome": "success"})
    before = shop.record(link["orderCode"])
    body = _verify(shop, link["orderCode"], orderId=link["orderId"] + 1, status="success")
    assert body["verdict"] == "MISMATCH"
    assert body["verified"] is False
    assert shop.record(link["orderCode"]) == before
    shop.settle_publisher()
    assert shop.events_for(link["orderCode"], max_wait=1) == []


def test_steppay_down_gives_503_with_retry_after_never_a_verdict(shop: Shop) -> None:
    link = shop.new_checkout()
    shop.control(f"/orders/{link['orderCode']}/complete", {"outcome": "success"})
    fault = {"path": "/api/v1/orders/*", "status": 503, "latencyMs": 0, "drop": False, "count": 50}
    assert shop.control("/faults", fault).status_code in (200, 201)
    response = shop.post("/payments/verify", {"orderCode": link["orderCode"]})
    assert response.status_code == 503
    assert error_code(response) == "steppay_unavailable"
    assert int(response.headers["Retry-After"]) > 0
    no_leak(response)
    assert shop.record(link["orderCode"])["state"] == "PENDING"  # type: ignore[index]
    shop.clear_faults()
    assert _verify(shop, link["orderCode"])["verdict"] == "PAID"
