"""StepPayClient against the local StepPay sandbox over real HTTP (fixture `sandbox`).

Only StepPay's API and the sandbox's documented control API (`/_sandbox/...`) are used. Whether a
request reached the sandbox is observed through its fault registry: a fault is used up by each
matching request, so the count left tells how many requests arrived.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests
from pydantic import SecretStr

from steppay.client import CallRecord, StepPayClient
from steppay.errors import (
    InvalidIdentifier,
    StepPayAuthFailed,
    StepPayNotFound,
    StepPayRejected,
    StepPayUnavailable,
)
from steppay.models import OrderCreateItem, OrderCreateRequest, OrderDetail, OrderType, SubscriptionStatus
from steppay.verification import PaymentClaim, Verdict, verify_payment

SECRET_TOKEN = "sandbox-secret-token"  # the sandbox's documented local default
READ_TIMEOUT = 1.0
SLOW_MS = 2500  # longer than READ_TIMEOUT


class Control:
    """The sandbox's control API."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = requests.Session()

    def complete(self, order_code: str, outcome: str = "success") -> dict[str, Any]:
        response = self.http.post(
            f"{self.url}/_sandbox/orders/{order_code}/complete", json={"outcome": outcome}, timeout=10
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    def fault(
        self,
        path: str,
        *,
        status: int | None = None,
        latency_ms: int = 0,
        drop: bool = False,
        count: int = 1,
        method: str | None = None,
    ) -> None:
        body: dict[str, Any] = {"path": path, "latencyMs": latency_ms, "drop": drop, "count": count}
        if status is not None:
            body["status"] = status
        if method is not None:
            body["method"] = method
        response = self.http.post(f"{self.url}/_sandbox/faults", json=body, timeout=10)
        assert response.status_code == 201, response.text

    def faults(self) -> list[dict[str, Any]]:
        return list(self.http.get(f"{self.url}/_sandbox/faults", timeout=10).json()["faults"])

    def remaining(self) -> int:
        """Applications left of the inbound faults (each request that reached the sandbox used one)."""
        return sum(f["count"] for f in self.faults() if f["kind"] == "inbound")

    def clear_faults(self) -> None:
        self.http.delete(f"{self.url}/_sandbox/faults", timeout=10)


@pytest.fixture
def control(sandbox: Any) -> Iterator[Control]:
    ctl = Control(sandbox.url)
    ctl.clear_faults()
    yield ctl
    ctl.clear_faults()
    ctl.http.close()


@pytest.fixture
def records() -> list[CallRecord]:
    return []


@pytest.fixture
def client(sandbox: Any, records: list[CallRecord]) -> Iterator[StepPayClient]:
    c = StepPayClient(
        sandbox.url,
        SecretStr(SECRET_TOKEN),
        connect_timeout=2.0,
        read_timeout=READ_TIMEOUT,
        max_retries=2,
        on_call=records.append,
    )
    yield c
    c.close()


@pytest.fixture
def catalogue(client: StepPayClient) -> dict[str, Any]:
    """Discovery through the client: a customer, a one-time price and a recurring price."""
    customers = client.list_customers().content
    products = client.list_products().content
    one_time = next((p.code, x.code, x.price) for p in products for x in p.prices if x.type == "ONE_TIME")
    recurring = next(
        (p.code, x.code, x.price)
        for p in products
        for x in p.prices
        if (x.model_extra or {}).get("recurring")
    )
    assert customers and customers[0].id is not None
    return {"customer_id": customers[0].id, "one_time": one_time, "recurring": recurring}


def create(client: StepPayClient, catalogue: dict[str, Any], kind: str = "one_time") -> OrderDetail:
    product_code, price_code, _ = catalogue[kind]
    return client.create_order(
        OrderCreateRequest(
            customer_id=catalogue["customer_id"],
            items=[OrderCreateItem(product_code=product_code, price_code=price_code, currency="KRW")],
        )
    )


# -- the happy path ------------------------------------------------------------------------------


def test_create_get_pay_list_receipt_cancel(
    client: StepPayClient, control: Control, catalogue: dict[str, Any]
) -> None:
    window_start = datetime.now(UTC) - timedelta(seconds=5)
    created = create(client, catalogue)
    price = catalogue["one_time"][2]
    assert isinstance(price, Decimal)
    assert created.type is OrderType.ONE_TIME and created.payment_date is None and created.paid_amount == 0

    by_code = client.get_order(created.order_code)
    by_id = client.get_order(created.order_id)
    assert by_code.order_id == by_id.order_id == created.order_id
    assert by_id.order_code == created.order_code
    claim = PaymentClaim(
        order_code=created.order_code,
        order_id=created.order_id,
        expected_amount=price,
        expected_currency="KRW",
    )
    assert verify_payment(claim, by_code).verdict is Verdict.NOT_PAID

    control.complete(created.order_code)
    paid = client.get_order(created.order_code)
    assert paid.payment_date is not None and paid.payment_date.tzinfo is not None
    assert paid.payment_date.utcoffset() == timedelta(0)  # zone-less, read in the default zone (UTC)
    assert paid.payment_date_raw is not None and "+" not in paid.payment_date_raw
    assert paid.paid_amount == price
    assert verify_payment(claim, paid).verdict is Verdict.PAID

    # Two more orders, then the whole window a page of one at a time.
    others = [create(client, catalogue), create(client, catalogue)]
    window_end = datetime.now(UTC) + timedelta(seconds=5)
    first_page = client.list_orders(window_start, window_end, page=0, size=1)
    assert len(first_page.content) == 1 and first_page.last is False
    listed = list(client.iter_orders(window_start, window_end, page_size=1))
    listed_ids = [o.id for o in listed]
    assert {created.order_id, *(o.order_id for o in others)} <= set(listed_ids)
    assert len(listed_ids) == len(set(listed_ids))
    summary = next(o for o in listed if o.id == created.order_id)
    assert summary.payment_date == paid.payment_date
    outside = client.list_orders(window_end + timedelta(hours=1), window_end + timedelta(hours=2))
    assert outside.content == []

    assert paid.id_key
    receipt = client.get_payment_receipt(paid.id_key)
    assert receipt.order_id == created.order_id and receipt.amount == price
    assert receipt.payment_date == paid.payment_date

    result = client.cancel_order(created.order_code, request_price=price, reason="고객 요청")
    assert result.message
    refunded = client.get_order(created.order_id)
    assert refunded.returned_amount == price
    assert verify_payment(claim, refunded).verdict is Verdict.CANCELED


def test_subscription_after_paying_a_recurring_price(
    client: StepPayClient, control: Control, catalogue: dict[str, Any]
) -> None:
    order = create(client, catalogue, "recurring")
    assert order.type is OrderType.RECURRING_INITIAL
    control.complete(order.order_code)
    paid = client.get_order(order.order_code)
    assert verify_payment(PaymentClaim(order_code=order.order_code), paid).verdict is Verdict.PAID
    assert paid.subscriptions
    subscription = client.get_subscription(paid.subscriptions[0].id)
    assert subscription.status is SubscriptionStatus.ACTIVE
    assert subscription.next_payment_date is not None and subscription.next_payment_date.tzinfo is not None
    assert subscription.parent_order is not None
    assert subscription.parent_order.order_code == order.order_code


def test_a_failed_payment_is_failed(
    client: StepPayClient, control: Control, catalogue: dict[str, Any]
) -> None:
    order = create(client, catalogue)
    control.complete(order.order_code, "failure")
    failed = client.get_order(order.order_code)
    assert verify_payment(PaymentClaim(order_code=order.order_code), failed).verdict is Verdict.FAILED


def test_cancelling_an_unpaid_order(client: StepPayClient, catalogue: dict[str, Any]) -> None:
    order = create(client, catalogue)
    client.cancel_order(order.order_id, request_price=0)
    cancelled = client.get_order(order.order_code)
    assert verify_payment(PaymentClaim(order_code=order.order_code), cancelled).verdict is Verdict.CANCELED


# -- errors ---------------------------------------------------------------------------------------


def test_unknown_order_is_not_found(client: StepPayClient) -> None:
    with pytest.raises(StepPayNotFound) as caught:
        client.get_order("order_doesNotExist")
    assert caught.value.status_code == 404 and caught.value.error_code
    with pytest.raises(StepPayNotFound):
        client.get_order(2**62)
    with pytest.raises(StepPayNotFound):
        client.get_subscription(2**62)


def test_bad_token_is_auth_failed(sandbox: Any) -> None:
    with StepPayClient(sandbox.url, SecretStr("not-the-token"), read_timeout=READ_TIMEOUT) as bad:
        with pytest.raises(StepPayAuthFailed) as caught:
            bad.get_order("order_anything")
    assert "not-the-token" not in str(caught.value) and "not-the-token" not in repr(caught.value)


def test_rejected_orders(client: StepPayClient, control: Control, catalogue: dict[str, Any]) -> None:
    with pytest.raises(StepPayRejected) as caught:
        client.create_order(
            OrderCreateRequest(
                customer_id=catalogue["customer_id"],
                items=[OrderCreateItem(product_code="product_unknown", price_code="price_unknown")],
            )
        )
    assert caught.value.status_code is not None and 400 <= caught.value.status_code < 500
    control.fault("/api/v1/orders", status=400, method="POST")
    with pytest.raises(StepPayRejected) as injected:
        create(client, catalogue)
    assert injected.value.status_code == 400


def test_path_injection_never_reaches_the_sandbox(client: StepPayClient, control: Control) -> None:
    # Any request to the API would use this fault up.
    control.fault("/*", status=418, count=1000)
    for value in ["../customers", "a/b?x=1", "%2e%2e", "", " ", "order_1\n", ".."]:
        for call in (client.get_order, client.get_subscription, client.get_payment_receipt):
            with pytest.raises(InvalidIdentifier):
                call(value)
        with pytest.raises(InvalidIdentifier):
            client.cancel_order(value, request_price=0)
    assert control.remaining() == 1000


# -- faults: retries for GET only ---------------------------------------------------------------


def test_get_503_once_is_retried_and_succeeds(
    client: StepPayClient, control: Control, catalogue: dict[str, Any], records: list[CallRecord]
) -> None:
    order = create(client, catalogue)
    control.fault("/api/v1/orders/*", status=503, count=1, method="GET")
    assert client.get_order(order.order_code).order_id == order.order_id
    assert control.remaining() == 0
    assert records[-1].attempts == 2 and records[-1].outcome == "ok"


def test_get_503_beyond_the_retries_is_unavailable(
    client: StepPayClient, control: Control, catalogue: dict[str, Any]
) -> None:
    order = create(client, catalogue)
    control.fault("/api/v1/orders/*", status=503, count=5, method="GET")
    with pytest.raises(StepPayUnavailable) as caught:
        client.get_order(order.order_code)
    assert caught.value.status_code == 503
    assert control.remaining() == 2  # the call and two retries used three


def test_get_timeout_is_retried_then_unavailable(
    client: StepPayClient, control: Control, catalogue: dict[str, Any]
) -> None:
    order = create(client, catalogue)
    control.fault("/api/v1/orders/*", latency_ms=SLOW_MS, count=4, method="GET")
    started = time.monotonic()
    with pytest.raises(StepPayUnavailable):
        client.get_order(order.order_code)
    assert time.monotonic() - started >= 3 * READ_TIMEOUT
    assert control.remaining() == 1  # three attempts reached the sandbox


def test_get_timeout_once_then_success(
    client: StepPayClient, control: Control, catalogue: dict[str, Any], records: list[CallRecord]
) -> None:
    order = create(client, catalogue)
    control.fault("/api/v1/orders/*", latency_ms=SLOW_MS, count=1, method="GET")
    assert client.get_order(order.order_code).order_code == order.order_code
    assert records[-1].attempts == 2


def test_post_503_is_not_retried(client: StepPayClient, control: Control, catalogue: dict[str, Any]) -> None:
    control.fault("/api/v1/orders", status=503, count=2, method="POST")
    with pytest.raises(StepPayUnavailable) as caught:
        create(client, catalogue)
    assert caught.value.status_code == 503
    assert control.remaining() == 1  # exactly one POST arrived
    control.clear_faults()

    control.fault("/api/v1/orders", status=503, count=1, method="POST")
    with pytest.raises(StepPayUnavailable):
        create(client, catalogue)
    # With count=1 the next create succeeds: the fault was used once, not twice.
    assert create(client, catalogue).order_code


def test_post_timeout_is_not_retried(
    client: StepPayClient, control: Control, catalogue: dict[str, Any]
) -> None:
    control.fault("/api/v1/orders", latency_ms=SLOW_MS, count=2, method="POST")
    with pytest.raises(StepPayUnavailable):
        create(client, catalogue)
    assert control.remaining() == 1


def test_dropped_connections(client: StepPayClient, control: Control, catalogue: dict[str, Any]) -> None:
    order = create(client, catalogue)
    control.fault("/api/v1/orders/*", drop=True, count=1, method="GET")
    assert client.get_order(order.order_code).order_id == order.order_id  # retried
    assert control.remaining() == 0

    control.fault("/api/v1/orders/*", drop=True, count=5, method="GET")
    with pytest.raises(StepPayUnavailable):
        client.get_order(order.order_code)
    assert control.remaining() == 2
    control.clear_faults()

    control.fault("/api/v1/orders", drop=True, count=2, method="POST")
    with pytest.raises(StepPayUnavailable):
        create(client, catalogue)
    assert control.remaining() == 1  # not sent again


def test_patch_cancel_503_is_not_retried(
    client: StepPayClient, control: Control, catalogue: dict[str, Any]
) -> None:
    order = create(client, catalogue)
    control.fault("/api/v1/orders/*/cancel", status=503, count=2, method="PATCH")
    with pytest.raises(StepPayUnavailable):
        client.cancel_order(order.order_code, request_price=0)
    assert control.remaining() == 1
