"""The attacks of the checkout issue, tried as an attacker would through the local API, each failing.

Before server-registered checkouts, the shopper's browser chose what was bought, for how much, for
which StepPay customer and for which cart. Each test here replays one of those attacks on the new
flow and asserts it fails: no paid record, no `Payment Verified`, nothing disclosed. The legitimate
paths they sit beside are in test_checkouts.py.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import boto3
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from e2e.conftest import Shop, error_code, new_merchant_ref, no_leak

pytestmark = pytest.mark.e2e

REGION = "ap-northeast-2"


def _steppay_order_count(shop: Shop) -> int:
    state = shop.http.get(f"{shop.stack.sandbox_url}/_sandbox/state", timeout=10).json()
    return len(state["orders"])


@contextlib.contextmanager
def steppay_requests() -> Iterator[list[str]]:
    """The request lines StepPay (the sandbox, in this process) receives while the block runs."""
    seen: list[str] = []

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if "/api/" in message:
                seen.append(message)

    logger = logging.getLogger("steppay_sandbox")
    handler, level = Recorder(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield seen
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _signed(
    method: str, url: str, body: bytes, *, secret: str = "local", when: datetime | None = None
) -> dict[str, str]:
    request = AWSRequest(method=method, url=url, data=body, headers={"Content-Type": "application/json"})
    signer = SigV4Auth(Credentials("local", secret), "execute-api", REGION)
    # botocore stamps X-Amz-Date from its clock: sign as of `when` when asked to.
    clock = (
        mock.patch("botocore.auth.get_current_datetime", return_value=when)
        if when
        else contextlib.nullcontext()
    )
    with clock:
        signer.add_auth(request)
    return dict(request.headers.items())


def _raw_post(shop: Shop, path: str, body: bytes, headers: dict[str, str]) -> requests.Response:
    return shop.http.post(f"{shop.stack.api_url}{path}", data=body, headers=headers, timeout=30)


def _nothing_changed(shop: Shop, before_items: list[dict[str, Any]], before_orders: int) -> None:
    assert shop.table_snapshot() == before_items, "a refused request wrote to the payments table"
    assert _steppay_order_count(shop) == before_orders, "a refused request created a StepPay order"


def _wait(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


# -- the browser can no longer create orders --------------------------------------------------


def test_the_old_public_pay_url_route_is_gone(shop: Shop) -> None:
    before_items, before_orders = shop.table_snapshot(), _steppay_order_count(shop)
    product, price = shop.catalogue()["one_time"]
    old_body = {
        "order": {
            "customerId": shop.catalogue()["customer"]["id"],
            "items": [{"productCode": product["code"], "priceCode": price["code"], "currency": "KRW"}],
        },
        "successUrl": "http://localhost:8080/ok",
        "errorUrl": "http://localhost:8080/err",
        "merchantRef": "victim-cart",
    }
    response = shop.post("/payments/pay-url", old_body)
    assert response.status_code == 404
    assert response.json() == {"message": "Not Found"}
    _nothing_changed(shop, before_items, before_orders)


@pytest.mark.parametrize("how", ["unsigned", "wrong secret", "expired signature", "signed for another body"])
def test_an_unauthenticated_checkout_is_refused_with_nothing_created(shop: Shop, how: str) -> None:
    body = shop.checkout_body(merchantRef="victim-cart-1")
    raw = requests.models.complexjson.dumps(body).encode()
    url = f"{shop.stack.api_url}/checkouts"
    headers = {"Content-Type": "application/json"}
    if how == "wrong secret":
        headers = _signed("POST", url, raw, secret="not-the-secret")
    elif how == "expired signature":
        headers = _signed(
            "POST", url, raw, when=datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=20)
        )
    elif how == "signed for another body":
        headers = _signed("POST", url, raw)
        raw = raw.replace(b'"quantity": 1', b'"quantity": 3')
        assert b'"quantity": 3' in raw
    before_items, before_orders = shop.table_snapshot(), _steppay_order_count(shop)
    with steppay_requests() as calls:
        response = _raw_post(shop, "/checkouts", raw, headers)
    assert response.status_code == 403, response.text
    assert set(response.json()) == {"message"}
    no_leak(response)
    assert calls == [], "StepPay was called for a refused registration"
    _nothing_changed(shop, before_items, before_orders)


def test_fifteen_anonymous_calls_create_no_order(shop: Shop) -> None:
    before_items, before_orders = shop.table_snapshot(), _steppay_order_count(shop)
    answers = [shop.post("/checkouts", shop.checkout_body()).status_code for _ in range(15)]
    assert answers == [403] * 15
    _nothing_changed(shop, before_items, before_orders)


def test_an_anonymous_caller_cannot_tell_which_customers_exist(shop: Shop) -> None:
    known = shop.post("/checkouts", shop.checkout_body(customerId=shop.catalogue()["customer"]["id"]))
    unknown = shop.post("/checkouts", shop.checkout_body(customerId=987654321))
    assert known.status_code == unknown.status_code == 403
    assert known.json() == unknown.json()


# -- the shopper's page learns only about the order it names ---------------------------------


def test_a_bare_sequential_number_is_not_an_order_code(shop: Shop) -> None:
    link = shop.new_checkout()
    with steppay_requests() as calls:
        for guess in (str(link["orderId"]), "100005", "1"):
            response = shop.post("/payments/verify", {"orderCode": guess})
            assert response.status_code == 400, response.text
            assert error_code(response) == "invalid_request"
            callback = shop.get("/payments/callback", params={"order_code": guess})
            assert callback.status_code == 400
    assert calls == [], "a numeric guess reached StepPay"


def test_an_order_code_the_bundle_never_registered_discloses_nothing(shop: Shop) -> None:
    # A real, paid order at StepPay that this bundle did not register (someone else's).
    from fixtures.sandbox import seed_order_body

    foreign = shop.steppay("POST", "/api/v1/orders", json=seed_order_body(shop.catalogue())).json()
    shop.control(f"/orders/{foreign['orderCode']}/complete", {"outcome": "success"})
    with steppay_requests() as calls:
        response = shop.post("/payments/verify", {"orderCode": foreign["orderCode"], "status": "success"})
        missing = shop.post("/payments/verify", {"orderCode": "order_doesnotexist"})
    assert response.status_code == missing.status_code == 404
    assert response.json() == missing.json(), "a foreign order must look like a missing one"
    assert error_code(response) == "order_not_found"
    assert calls == [], "the bundle asked StepPay about an order it never registered"
    assert shop.record(foreign["orderCode"]) is None


def test_verifying_a_registered_order_discloses_only_what_the_page_needs(shop: Shop) -> None:
    link = shop.new_checkout("recurring")
    shop.control(f"/orders/{link['orderCode']}/complete", {"outcome": "success"})
    answer = shop.post("/payments/verify", {"orderCode": link["orderCode"]})
    assert answer.status_code == 200
    assert set(answer.json()) == {"verified", "verdict", "orderCode", "amount", "currency", "paidAt"}
    text = answer.text
    assert link["merchantRef"] not in text
    assert str(shop.catalogue()["customer"]["id"]) not in text
    assert link["checkoutId"] not in text


# -- paying for something else than was registered -------------------------------------------


def _mismatch_events(shop: Shop, code: str, count: int = 1) -> list[dict[str, Any]]:
    return [e for e in shop.wait_for_events(code, count) if e["detail-type"] == "Payment Mismatch"]


def test_a_cart_registered_at_three_paid_with_one_is_a_mismatch_never_verified(shop: Shop) -> None:
    link = shop.new_checkout(items=shop.checkout_items(quantity=3))
    assert link["amount"] == "45000"
    code = link["orderCode"]
    # The pay page would not offer one; make StepPay's order take it (the sandbox's tamper control).
    assert shop.control(f"/orders/{code}/tamper", {"items": [{"minimumQuantity": 1}]}).status_code == 200
    assert shop.control(f"/orders/{code}/complete", {"outcome": "success", "quantity": 1}).status_code == 200
    answer = shop.post("/payments/verify", {"orderCode": code, "status": "success"}).json()
    assert answer["verdict"] == "MISMATCH"
    assert answer["verified"] is False
    record = shop.record(code)
    assert record is not None and record["state"] == "MISMATCH"
    assert any("quantity" in m for m in record["mismatches"])
    events = shop.wait_for_events(code, 1)
    assert [e["detail-type"] for e in events] == ["Payment Mismatch"]
    detail = events[0]["detail"]
    assert detail["merchantRef"] == link["merchantRef"]
    assert detail["amount"] == "15000"
    assert detail["chargedItems"][0]["quantity"] == 1
    assert detail["items"][0]["quantity"] == 3
    # Counted by the publisher's metric, which the template's PaymentMismatchAlarm watches.
    assert shop.stack.logs.wait_for('"PaymentMismatchEvents"', timeout=20, source="PublisherFunction")
    # Asking again changes nothing and announces nothing more.
    assert shop.post("/payments/verify", {"orderCode": code}).json()["verdict"] == "MISMATCH"
    shop.settle_publisher()
    assert len(shop.wait_for_events(code, 2, timeout=3)) == 1


def test_the_cart_paid_with_the_subscription_price_is_a_mismatch(shop: Shop) -> None:
    link = shop.new_checkout()
    code = link["orderCode"]
    _, monthly = shop.catalogue()["recurring"]
    product, _ = shop.catalogue()["recurring"]
    tampered = {"items": [{"priceCode": monthly["code"], "productCode": product["code"]}]}
    assert shop.control(f"/orders/{code}/tamper", tampered).status_code == 200
    shop.control(f"/orders/{code}/complete", {"outcome": "success"})
    assert shop.post("/payments/verify", {"orderCode": code}).json()["verdict"] == "MISMATCH"
    record = shop.record(code)
    assert record is not None and record["state"] == "MISMATCH"
    assert any(m.startswith("items:") for m in record["mismatches"])
    assert [e["detail-type"] for e in shop.wait_for_events(code, 1)] == ["Payment Mismatch"]


def test_an_order_moved_to_another_customer_is_a_mismatch(shop: Shop) -> None:
    customers = shop.steppay("GET", "/api/v1/customers").json()["content"]
    registered, other = customers[0]["id"], customers[1]["id"]
    link = shop.new_checkout(customerId=registered)
    code = link["orderCode"]
    assert shop.control(f"/orders/{code}/tamper", {"customerId": other}).status_code == 200
    shop.control(f"/orders/{code}/complete", {"outcome": "success"})
    assert shop.post("/payments/verify", {"orderCode": code}).json()["verdict"] == "MISMATCH"
    record = shop.record(code)
    assert record is not None and any(m.startswith("customer:") for m in record["mismatches"])


# -- the example subscriber cannot be cross-wired ---------------------------------------------


def _entitlement(shop: Shop, merchant_ref: str, subscription_id: int) -> dict[str, Any] | None:
    table = boto3.resource(
        "dynamodb",
        endpoint_url=shop.stack.dynamodb_endpoint,
        region_name=REGION,
        aws_access_key_id="local",
        aws_secret_access_key="local",
    ).Table(shop.stack.table_names["EntitlementsTable"])
    key = {"pk": f"ENTITLEMENT#{merchant_ref}#{subscription_id}"}
    item: dict[str, Any] | None = table.get_item(Key=key, ConsistentRead=True).get("Item")
    return item


def _subscribed(shop: Shop) -> tuple[dict[str, Any], int]:
    link = shop.new_checkout("recurring")
    shop.control(f"/orders/{link['orderCode']}/complete", {"outcome": "success"})
    assert shop.post("/payments/verify", {"orderCode": link["orderCode"]}).json()["verdict"] == "PAID"
    view = shop.backend_get(f"/checkouts/{link['checkoutId']}").json()
    (subscription_id,) = view["subscriptionIds"]
    return link, int(subscription_id)


def test_one_accounts_subscription_change_never_touches_anothers_entitlement(shop: Shop) -> None:
    victim, victim_sub = _subscribed(shop)
    attacker, attacker_sub = _subscribed(shop)
    for link, sub in ((victim, victim_sub), (attacker, attacker_sub)):
        shop.control(f"/subscriptions/{sub}/renew", {"outcome": "success"})
        _wait(
            lambda link=link, sub=sub: (_entitlement(shop, link["merchantRef"], sub) or {}).get(
                "active_until"
            ),
            what="entitlement from the renewal",
        )
    victim_before = _entitlement(shop, victim["merchantRef"], victim_sub)

    # The attacker cancels their own subscription.
    shop.control(f"/subscriptions/{attacker_sub}/status", {"status": "CANCELED"})
    _wait(
        lambda: (_entitlement(shop, attacker["merchantRef"], attacker_sub) or {}).get("status") == "CANCELED",
        what="the attacker's own entitlement to follow the cancellation",
    )
    shop.settle_publisher()
    assert _entitlement(shop, victim["merchantRef"], victim_sub) == victim_before
    assert (victim_before or {}).get("status") != "CANCELED"
    # And no entitlement is kept under the attacker's subscription for the victim's reference.
    assert _entitlement(shop, victim["merchantRef"], attacker_sub) is None


def test_an_unknown_merchant_ref_is_not_found_for_the_backend(shop: Shop) -> None:
    response = shop.backend_get("/checkouts", params={"merchantRef": new_merchant_ref("nobody")})
    assert response.status_code == 404
    assert error_code(response) == "checkout_not_found"
    unsigned = shop.get("/checkouts", params={"merchantRef": "anything"})
    assert unsigned.status_code == 403
