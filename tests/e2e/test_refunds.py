"""Partial and repeated refunds (issue 16) on the running local stack.

A 15,000 order is refunded 1,000 and then 14,000 at the sandbox: StepPay's `returnedAmount`
grows to 1,000 (items `CANCELLATION_REFUNDED_PARTIALLY`) and then 15,000 (`CANCELLATION_REFUNDED`).
The bundle must record each step and announce exactly one `Payment Refunded` for the first and
one `Payment Canceled` for the second, whether the sandbox's webhooks tell it or reconciliation
finds the refunds in StepPay's order lists.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from e2e.conftest import Shop

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = {
    name: json.loads((ROOT / f"events/schemas/{file}").read_text())
    for name, file in [
        ("Payment Refunded", "payment-refunded.json"),
        ("Payment Canceled", "payment-canceled.json"),
    ]
}


def _wait(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _events(shop: Shop, detail_type: str, code: str, wait: float = 1.0) -> list[dict[str, Any]]:
    return [
        e
        for e in shop.events(max_wait=wait)
        if e["detail-type"] == detail_type and e["detail"].get("orderCode") == code
    ]


def _validated(event: dict[str, Any]) -> dict[str, Any]:
    jsonschema.validate(
        event["detail"], SCHEMAS[event["detail-type"]], format_checker=jsonschema.FormatChecker()
    )
    return dict(event["detail"])


def _paid_order(shop: Shop) -> dict[str, Any]:
    link = shop.new_pay_link()
    code = link["orderCode"]
    shop.control(f"/orders/{code}/complete", {"outcome": "success"})
    assert shop.post("/payments/verify", {"orderCode": code}).json()["verdict"] == "PAID"
    record = shop.record(code)
    assert record is not None and record["state"] == "PAID" and record["paid_amount"] == Decimal(15000)
    return link


def _refund(shop: Shop, code: str, amount: int) -> None:
    response = shop.control(f"/orders/{code}/refund", {"amount": amount})
    assert response.status_code == 200, response.text


def _assert_the_two_events(shop: Shop, link: dict[str, Any]) -> None:
    code = link["orderCode"]
    shop.settle_publisher()
    (refunded,) = _events(shop, "Payment Refunded", code, wait=2)
    detail = _validated(refunded)
    assert (detail["refundAmount"], detail["returnedAmount"], detail["remainingAmount"]) == (
        "1000",
        "1000",
        "14000",
    )
    assert detail["merchantRef"] == link["merchantRef"] and detail["checkoutId"] == link["checkoutId"]
    (canceled,) = _events(shop, "Payment Canceled", code, wait=0)
    detail = _validated(canceled)
    assert (detail["refundAmount"], detail["returnedAmount"]) == ("14000", "15000")
    assert refunded["detail"]["eventId"] != canceled["detail"]["eventId"]
    record = shop.record(code)
    assert record is not None and record["state"] == "CANCELED"
    assert record["returned_amount"] == Decimal(15000)


def test_a_partial_then_the_last_refund_by_webhook(shop: Shop) -> None:
    link = _paid_order(shop)
    code = link["orderCode"]
    _refund(shop, code, 1000)
    _wait(
        lambda: (shop.record(code) or {}).get("state") == "PARTIALLY_REFUNDED",
        what="the partial refund recorded",
    )
    assert shop.record(code)["returned_amount"] == Decimal(1000)  # type: ignore[index]
    _wait(lambda: _events(shop, "Payment Refunded", code), what="Payment Refunded")
    # The shopper's page says so, and never makes it PAID again.
    answer = shop.post("/payments/verify", {"orderCode": code}).json()
    assert answer["verdict"] == "PARTIALLY_REFUNDED" and answer["verified"] is False
    assert shop.record(code)["state"] == "PARTIALLY_REFUNDED"  # type: ignore[index]

    _refund(shop, code, 14000)
    _wait(lambda: (shop.record(code) or {}).get("state") == "CANCELED", what="the last refund recorded")
    _wait(lambda: _events(shop, "Payment Canceled", code), what="Payment Canceled")
    assert shop.post("/payments/verify", {"orderCode": code}).json()["verdict"] == "CANCELED"
    _assert_the_two_events(shop, link)


def test_a_partial_then_the_last_refund_by_reconciliation(shop: Shop) -> None:
    link = _paid_order(shop)
    code = link["orderCode"]
    shop.settle_publisher()
    try:
        shop.control("/faults", {"webhooks": "drop", "count": 100})
        _refund(shop, code, 1000)
        time.sleep(1)
        assert shop.record(code)["state"] == "PAID"  # type: ignore[index]  # no webhook told us
        report = shop.stack.invoke("ReconciliationFunction", {"windowMinutes": 60})
        assert report["failed"] == 0 and report["refunds_recorded"] >= 1, report
        record = shop.record(code)
        assert record is not None and record["state"] == "PARTIALLY_REFUNDED"
        assert record["returned_amount"] == Decimal(1000) and record["verified_via"] != "reconciliation"
        _wait(lambda: _events(shop, "Payment Refunded", code), what="Payment Refunded from reconciliation")

        # Nothing new: the next run records nothing more for this order.
        again = shop.stack.invoke("ReconciliationFunction", {"windowMinutes": 60})
        assert again["failed"] == 0, again
        assert shop.record(code) == record

        _refund(shop, code, 14000)
        time.sleep(1)
        assert shop.record(code)["state"] == "PARTIALLY_REFUNDED"  # type: ignore[index]
        report = shop.stack.invoke("ReconciliationFunction", {"windowMinutes": 60})
        assert report["failed"] == 0 and report["refunds_recorded"] >= 1, report
        record = shop.record(code)
        assert record is not None and record["state"] == "CANCELED"
        assert record["returned_amount"] == Decimal(15000)
        _wait(lambda: _events(shop, "Payment Canceled", code), what="Payment Canceled from reconciliation")
    finally:
        shop.clear_faults()
    _assert_the_two_events(shop, link)
