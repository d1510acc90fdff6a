"""Changes that come long after the order was made, with every webhook about them lost (issue #15).

Reconciliation used to list orders by creation time over its recent window (180 minutes): a
virtual-account deposit the next day, or a refund a day after the payment, was never recovered
once its webhooks were lost, and the run reported nothing seen and looked healthy. Each test here
runs reconciliation as the hourly run a day later would (`asOf` one day ahead: the order's
creation is far outside the recent window, inside `lookbackDays`) and ends with the record equal
to what StepPay says and the change announced once.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from e2e.conftest import Shop
from e2e.test_webhooks import _events, _wait

pytestmark = pytest.mark.e2e

A_DAY_LATER = {"windowMinutes": 180}


def _a_day_later() -> dict[str, Any]:
    return {**A_DAY_LATER, "asOf": (datetime.now(UTC) + timedelta(days=1)).isoformat()}


@pytest.fixture
def webhooks_lost(shop: Shop) -> Iterator[None]:
    """StepPay's webhooks are dropped (not delivered, never retried) until the test ends."""
    shop.settle_publisher()
    assert shop.control("/faults", {"webhooks": "drop", "count": 1000}).status_code == 201
    try:
        yield
    finally:
        shop.clear_faults()


def _state(shop: Shop, code: str) -> str | None:
    record = shop.record(code)
    return str(record["state"]) if record is not None else None


def test_a_deposit_the_next_day_whose_webhooks_were_lost_is_recorded(shop: Shop, webhooks_lost: None) -> None:
    link = shop.new_pay_link()
    code = link["orderCode"]
    standby = shop.control(f"/orders/{code}/complete", {"outcome": "standby"})
    assert standby.status_code == 200, standby.text
    assert {i["status"] for i in standby.json()["items"]} == {"DEPOSIT_WAITING"}
    # A run meanwhile sees a virtual account issued, not paid: nothing is recorded paid.
    waiting = shop.stack.invoke("ReconciliationFunction", _a_day_later())
    assert waiting["failed"] == 0, waiting
    assert _state(shop, code) == "PENDING"

    deposited = shop.control(f"/orders/{code}/deposit")
    assert deposited.status_code == 200, deposited.text
    assert deposited.json()["paymentDate"] is not None
    assert _state(shop, code) == "PENDING"  # no webhook told us

    report = shop.stack.invoke("ReconciliationFunction", _a_day_later())
    assert report["failed"] == 0 and report["fixed"] >= 1, report
    record = shop.record(code)
    assert record is not None and record["state"] == "PAID", record
    assert record["verified_via"] == "reconciliation"
    assert str(record["paid_amount"]) == str(deposited.json()["paidAmount"])
    verified = _wait(
        lambda: _events(shop, "Payment Verified", lambda d: d["orderCode"] == code),
        what="Payment Verified from reconciliation",
    )
    assert len(verified) == 1
    # The next run changes nothing and announces nothing more.
    again = shop.stack.invoke("ReconciliationFunction", _a_day_later())
    assert again["failed"] == 0, again
    shop.settle_publisher()
    assert shop.record(code) == record
    assert len(_events(shop, "Payment Verified", lambda d: d["orderCode"] == code, wait=1)) == 1


def test_a_refund_a_day_after_the_payment_whose_webhooks_were_lost_is_recorded(
    shop: Shop, webhooks_lost: None
) -> None:
    link = shop.new_pay_link()
    code = link["orderCode"]
    shop.control(f"/orders/{code}/complete", {"outcome": "success"})
    assert shop.post("/payments/verify", {"orderCode": code}).json()["verdict"] == "PAID"
    shop.settle_publisher()

    refunded = shop.control(f"/orders/{code}/refund")
    assert refunded.status_code == 200, refunded.text
    assert _state(shop, code) == "PAID"  # no webhook told us

    report = shop.stack.invoke("ReconciliationFunction", _a_day_later())
    assert report["failed"] == 0 and report["refunds_recorded"] >= 1, report
    record = shop.record(code)
    assert record is not None and record["state"] == "CANCELED", record
    order = shop.steppay("GET", f"/api/v1/orders/{code}").json()
    assert str(record["returned_amount"]) == str(order["returnedAmount"])
    canceled = _wait(
        lambda: _events(shop, "Payment Canceled", lambda d: d["orderCode"] == code),
        what="Payment Canceled from reconciliation",
    )
    assert len(canceled) == 1
    again = shop.stack.invoke("ReconciliationFunction", _a_day_later())
    assert again["failed"] == 0, again
    shop.settle_publisher()
    assert shop.record(code) == record
    assert len(_events(shop, "Payment Canceled", lambda d: d["orderCode"] == code, wait=1)) == 1
