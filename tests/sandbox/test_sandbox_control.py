"""The control API: settle orders, renew and change subscriptions, refund, faults, config, state."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pytest
from fixtures.sandbox import SandboxClient

from steppay_sandbox.server import SandboxServer
from steppay_sandbox.timeutil import add_interval

CARD = re.compile(r"^\d{4}-\*{4}-\*{4}-\d{4}$")


def detail(client: SandboxClient, ref: Any) -> dict[str, Any]:
    response = client.api("GET", f"/api/v1/orders/{ref}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def subscription(client: SandboxClient, sub_id: int) -> dict[str, Any]:
    response = client.api("GET", f"/api/v1/subscriptions/{sub_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def local(value: str) -> datetime:
    return datetime.fromisoformat(value)


# -- complete --------------------------------------------------------------------------------


def test_complete_success_settles_the_order(sandbox_client: SandboxClient) -> None:
    order = sandbox_client.create_order(quantity=3)
    response = sandbox_client.complete(order["orderCode"])
    assert response.status_code == 200
    assert response.json()["id"] == order["id"]
    paid = detail(sandbox_client, order["orderCode"])
    assert paid["paymentDate"] is not None
    assert paid["paidAmount"] == 45000 and paid["leftAmount"] == 0 and paid["returnedAmount"] == 0
    payment = paid["payment"]
    assert payment["amount"] == 45000 and payment["paymentDate"] == paid["paymentDate"]
    assert payment["paymentMethod"] == "CARD" and payment["paymentGateway"] == "NICE"
    assert CARD.match(payment["cardNumber"]) and payment["errorCode"] is None
    assert [(i["status"], i["paidAmount"]) for i in paid["items"]] == [("PAID", 45000)]
    assert paid["subscriptions"] == []


def test_complete_failure_keeps_the_order_unpaid(sandbox_client: SandboxClient) -> None:
    order = sandbox_client.create_order()
    response = sandbox_client.control(
        "POST",
        f"/orders/{order['orderCode']}/complete",
        {"outcome": "failure", "errorCode": "CARD_LIMIT", "errorMessage": "한도 초과"},
    )
    assert response.status_code == 200
    failed = detail(sandbox_client, order["orderCode"])
    assert failed["paymentDate"] is None and failed["paidAmount"] == 0 and failed["leftAmount"] == 15000
    assert failed["items"][0]["status"] == "PAYMENT_FAILURE"
    assert failed["payment"]["errorCode"] == "CARD_LIMIT" and failed["payment"]["errorMessage"] == "한도 초과"
    assert failed["payment"]["paymentDate"] is None


def test_complete_accepts_the_order_id_too(sandbox_client: SandboxClient) -> None:
    order = sandbox_client.create_order()
    assert sandbox_client.complete(str(order["id"])).status_code == 200
    assert detail(sandbox_client, order["id"])["paymentDate"] is not None


def test_complete_refuses_bad_requests(sandbox_client: SandboxClient) -> None:
    order = sandbox_client.create_order()
    assert sandbox_client.complete("order_doesnotexist").status_code == 404
    assert sandbox_client.complete(order["orderCode"], "maybe").status_code == 400
    assert sandbox_client.complete(order["orderCode"]).status_code == 200
    again = sandbox_client.complete(order["orderCode"])
    assert again.status_code == 409 and again.json()["errorCode"] == "ORDER_ALREADY_PAID"


def test_control_needs_no_token(sandbox_client: SandboxClient) -> None:
    response = sandbox_client.http.get(f"{sandbox_client.base_url}/_sandbox/health", timeout=10)
    assert response.status_code == 200 and response.json() == {"status": "ok"}


# -- subscriptions ---------------------------------------------------------------------------


def test_paid_recurring_initial_order_starts_an_active_subscription(sandbox_client: SandboxClient) -> None:
    order, sub_id = sandbox_client.paid_subscription()
    assert order["type"] == "RECURRING_INITIAL"
    [listed] = order["subscriptions"]
    assert listed["id"] == sub_id and listed["status"] == "ACTIVE"
    assert listed["interval"] == "MONTH" and listed["intervalCount"] == 1
    assert listed["price"]["code"] == "price_monthly_demo"
    assert listed["items"][0]["priceCode"] == "price_monthly_demo"
    paid_at = local(order["paymentDate"])
    assert local(listed["lastPaymentDate"]) == paid_at
    assert local(listed["nextPaymentDate"]) == add_interval(paid_at, "MONTH")

    sub = subscription(sandbox_client, sub_id)
    assert sub["status"] == "ACTIVE" and sub["id"] == sub_id
    assert sub["parentOrder"]["orderCode"] == order["orderCode"]
    assert sub["parentOrder"]["id"] == order["id"]
    assert sub["price"]["price"] == 9900 and sub["recurringCount"] == 1
    assert sub["startDate"] == listed["startDate"] and sub["nextPaymentDate"] == listed["nextPaymentDate"]
    assert sub["customer"]["id"] == order["customer"]["id"]
    assert sub["relatedOrders"] == []


def test_failed_initial_payment_starts_no_subscription(sandbox_client: SandboxClient) -> None:
    order = sandbox_client.create_order("recurring")
    sandbox_client.complete(order["orderCode"], "failure")
    assert detail(sandbox_client, order["orderCode"])["subscriptions"] == []


def test_successful_renewal_creates_a_paid_recurring_order(sandbox_client: SandboxClient) -> None:
    initial, sub_id = sandbox_client.paid_subscription()
    before = subscription(sandbox_client, sub_id)
    response = sandbox_client.control("POST", f"/subscriptions/{sub_id}/renew", {"outcome": "success"})
    assert response.status_code == 200, response.text
    renewal = response.json()
    assert renewal["type"] == "RECURRING" and renewal["id"] > initial["id"]
    assert renewal["parentSubscription"]["id"] == sub_id
    assert renewal["paymentDate"] is not None and renewal["paidAmount"] == 9900
    assert renewal["items"][0]["status"] == "PAID"
    assert detail(sandbox_client, renewal["orderCode"])["id"] == renewal["id"]
    after = subscription(sandbox_client, sub_id)
    assert after["status"] == "ACTIVE" and after["recurringCount"] == 2
    assert after["lastPaymentDate"] == renewal["paymentDate"]
    assert local(after["nextPaymentDate"]) == add_interval(local(before["nextPaymentDate"]), "MONTH")
    assert [o["id"] for o in after["relatedOrders"]] == [renewal["id"]]
    # The initial order now lists the renewal among its related orders.
    assert [o["id"] for o in detail(sandbox_client, initial["id"])["relatedOrders"]] == [renewal["id"]]


def test_failed_renewal_makes_the_subscription_unpaid_and_recovery_activates_it(
    sandbox_client: SandboxClient,
) -> None:
    _, sub_id = sandbox_client.paid_subscription()
    before = subscription(sandbox_client, sub_id)
    failed = sandbox_client.control("POST", f"/subscriptions/{sub_id}/renew", {"outcome": "failure"}).json()
    assert failed["type"] == "RECURRING" and failed["paymentDate"] is None
    assert failed["items"][0]["status"] == "PAYMENT_FAILURE" and failed["payment"]["errorCode"]
    unpaid = subscription(sandbox_client, sub_id)
    assert unpaid["status"] == "UNPAID"
    assert unpaid["lastPaymentDate"] == before["lastPaymentDate"]
    assert unpaid["nextPaymentDate"] == before["nextPaymentDate"]
    recovered = sandbox_client.control(
        "POST", f"/subscriptions/{sub_id}/renew", {"outcome": "success"}
    ).json()
    assert recovered["paymentDate"] is not None
    active = subscription(sandbox_client, sub_id)
    assert active["status"] == "ACTIVE" and active["lastPaymentDate"] == recovered["paymentDate"]
    assert [o["id"] for o in active["relatedOrders"]] == [failed["id"], recovered["id"]]


def test_status_change(sandbox_client: SandboxClient) -> None:
    _, sub_id = sandbox_client.paid_subscription()
    response = sandbox_client.control("POST", f"/subscriptions/{sub_id}/status", {"status": "CANCELED"})
    assert response.status_code == 200
    assert response.json()["status"] == "CANCELED" and response.json()["endDate"] is not None
    assert subscription(sandbox_client, sub_id)["status"] == "CANCELED"
    # A cancelled subscription is not renewed.
    renew = sandbox_client.control("POST", f"/subscriptions/{sub_id}/renew", {"outcome": "success"})
    assert renew.status_code == 409
    bad = sandbox_client.control("POST", f"/subscriptions/{sub_id}/status", {"status": "SLEEPING"})
    assert bad.status_code == 400
    assert (
        sandbox_client.control("POST", "/subscriptions/999999/status", {"status": "ACTIVE"}).status_code
        == 404
    )
    assert sandbox_client.control("POST", "/subscriptions/999999/renew", {}).status_code == 404


# -- refund ----------------------------------------------------------------------------------


def test_refund_in_full_and_in_part(sandbox_client: SandboxClient) -> None:
    full = sandbox_client.create_order()
    sandbox_client.complete(full["orderCode"])
    response = sandbox_client.control("POST", f"/orders/{full['orderCode']}/refund")
    assert response.status_code == 200
    assert response.json()["returnedAmount"] == 15000
    assert response.json()["items"][0]["status"] == "CANCELLATION_REFUNDED"
    assert sandbox_client.control("POST", f"/orders/{full['orderCode']}/refund").status_code == 409

    part = sandbox_client.create_order(quantity=2)
    sandbox_client.complete(part["orderCode"])
    response = sandbox_client.control("POST", f"/orders/{part['orderCode']}/refund", {"amount": 5000})
    assert response.json()["returnedAmount"] == 5000
    assert response.json()["items"][0]["status"] == "CANCELLATION_REFUNDED_PARTIALLY"
    too_much = sandbox_client.control("POST", f"/orders/{part['orderCode']}/refund", {"amount": 25001})
    assert too_much.status_code == 400


def test_refund_of_an_unpaid_order_is_409(sandbox_client: SandboxClient) -> None:
    order = sandbox_client.create_order()
    assert sandbox_client.control("POST", f"/orders/{order['orderCode']}/refund").status_code == 409
    assert sandbox_client.control("POST", "/orders/order_doesnotexist/refund").status_code == 404


# -- config, state, reset --------------------------------------------------------------------


def test_config_round_trip_never_echoes_the_key(sandbox_client: SandboxClient) -> None:
    response = sandbox_client.control(
        "POST",
        "/config",
        {
            "webhookUrl": "http://127.0.0.1:9/hook",
            "webhookVersions": ["v2", "v1"],
            "webhookKey": "rotated-key",
        },
    )
    assert response.status_code == 200
    config = response.json()
    assert config["webhookUrl"] == "http://127.0.0.1:9/hook"
    assert config["webhookVersions"] == ["v2", "v1"]
    assert "rotated-key" not in response.text
    assert sandbox_client.control("GET", "/config").json() == config


@pytest.mark.parametrize(
    "body",
    [
        {"webhookUrl": "file:///etc/passwd"},
        {"webhookVersions": ["v3"]},
        {"webhookVersions": "v2"},
        {"webhookKey": ""},
        {"secretToken": "x"},
        [],
    ],
)
def test_config_rejects_bad_settings(sandbox_client: SandboxClient, body: Any) -> None:
    assert sandbox_client.control("POST", "/config", body).status_code == 400


def test_state_dump_lists_orders_and_subscriptions(sandbox_client: SandboxClient) -> None:
    order, sub_id = sandbox_client.paid_subscription()
    state = sandbox_client.control("GET", "/state").json()
    assert order["id"] in {o["id"] for o in state["orders"]}
    assert sub_id in {s["id"] for s in state["subscriptions"]}
    assert "config" in state and "faults" in state


def test_reset_forgets_everything_but_never_reuses_ids() -> None:
    with SandboxServer(port=0) as server:
        client = SandboxClient(server.url)
        first = client.create_order()
        assert client.control("POST", "/reset", {}).status_code == 200
        assert client.api("GET", f"/api/v1/orders/{first['orderCode']}").status_code == 404
        assert client.api("GET", "/api/v1/orders").json()["totalElements"] == 0
        assert client.create_order()["id"] > first["id"]


def test_unknown_control_path_is_404(sandbox_client: SandboxClient) -> None:
    assert sandbox_client.control("GET", "/nothing").status_code == 404
    assert sandbox_client.control("PUT", "/faults", {}).status_code == 405


def test_an_order_past_its_purchase_deadline_cannot_be_paid(sandbox_client: SandboxClient) -> None:
    body = sandbox_client.order_body()
    body["purchaseDeadline"] = "2020-01-01T00:00:00"
    order = sandbox_client.api("POST", "/api/v1/orders", json=body).json()
    assert order["purchaseDeadline"] == "2020-01-01T00:00:00.000000"
    response = sandbox_client.complete(order["orderCode"])
    assert response.status_code == 409 and response.json()["errorCode"] == "ORDER_EXPIRED"
    page = sandbox_client.http.get(f"{sandbox_client.base_url}/pay/{order['orderCode']}", timeout=10)
    assert "deadline has passed" in page.text and 'id="pay-button"' not in page.text


def test_list_orders_keyword_search(sandbox_client: SandboxClient) -> None:
    order = sandbox_client.create_order()
    found = sandbox_client.api(
        "GET", "/api/v1/orders", params={"keyword": order["orderCode"], "type": "orderCode"}
    ).json()
    assert [o["orderCode"] for o in found["content"]] == [order["orderCode"]]
    none = sandbox_client.api("GET", "/api/v1/orders", params={"keyword": "no-such-thing-anywhere"}).json()
    assert none["totalElements"] == 0


def test_public_url_is_used_in_pay_links() -> None:
    with SandboxServer(port=0, public_url="http://sandbox.localhost:9999/") as server:
        client = SandboxClient(server.url)
        order = client.create_order()
        location = client.api("GET", f"/api/v1/orders/{order['orderCode']}/pay").headers["Location"]
        assert location == f"http://sandbox.localhost:9999/pay/{order['orderCode']}"
