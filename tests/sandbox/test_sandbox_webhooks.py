"""Webhooks as StepPay sends them: v2 signed envelopes, v1 bodies, retries, faults, the log."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from typing import Any

import pytest
from fixtures.sandbox import (
    WEBHOOK_KEY,
    ReceivedRequest,
    SandboxClient,
    WebhookReceiver,
    v2_event,
)

from steppay_sandbox.server import SandboxServer

# CONTRACT.md's webhook data schemas.
ORDER_KEYS = {
    "id",
    "code",
    "type",
    "paidAmount",
    "returnedAmount",
    "leftAmount",
    "discountedAmount",
    "productName",
    "paymentDate",
    "paymentDueDate",
    "createdAt",
    "modifiedAt",
    "purchaseDeadline",
    "idKey",
    "customerId",
    "shipping",
    "items",
    "subscriptions",
    "invoiceId",
}
SUBSCRIPTION_KEYS = {
    "subscriptionId",
    "status",
    "createdAt",
    "lastPaymentDate",
    "nextPaymentDate",
    "endDate",
    "orderId",
    "orderCode",
    "customerId",
    "intervalUnit",
    "intervalCount",
    "items",
    "paymentMethod",
    "currentPeriod",
    "trialPeriod",
}
PAYMENT_KEYS = {
    "paymentId",
    "idKey",
    "orderId",
    "customerId",
    "paidAmount",
    "paidAt",
    "status",
    "paymentGateway",
    "paymentMethod",
    "errorMessage",
    "cancel",  # {canceledAmount, lastCanceledDate} once refunded, else null
    "vBank",  # the virtual account (VBANK), else null
}


def expected_signature(raw: bytes, key: str, timestamp: str) -> str:
    """Computed here independently of the sandbox's code."""
    message = timestamp.encode() + b"." + raw
    return base64.b64encode(hmac.new(key.encode(), message, hashlib.sha256).digest()).decode()


def assert_signed(request: ReceivedRequest, key: str = WEBHOOK_KEY) -> int:
    header = request.headers["steppay-signature"]
    parts = dict(part.split("=", 1) for part in header.split(","))
    assert set(parts) == {"timestamp", "key"}
    assert hmac.compare_digest(parts["key"], expected_signature(request.body, key, parts["timestamp"]))
    assert request.json()["timestamp"] == int(parts["timestamp"])
    return int(parts["timestamp"])


def v1_body(**fields: Any) -> Any:
    def check(request: ReceivedRequest) -> bool:
        return bool(request.json() == fields)

    return check


def is_v1(request: ReceivedRequest) -> bool:
    return "event" not in request.json()


# -- v2 envelopes ----------------------------------------------------------------------------


def test_order_created_is_a_signed_v2_envelope(
    sandbox_client: SandboxClient, sandbox_webhooks: WebhookReceiver
) -> None:
    before = int(time.time())
    order = sandbox_client.create_order()
    [request] = sandbox_webhooks.wait_for(v2_event("order.created", code=order["orderCode"]))
    assert request.method == "POST" and request.path == "/webhooks/steppay"
    assert request.headers["content-type"] == "application/json"
    timestamp = assert_signed(request)
    assert before <= timestamp <= int(time.time()) + 1
    envelope = request.json()
    assert set(envelope) == {"timestamp", "version", "event", "data"}
    assert envelope["version"] == "v1"
    data = envelope["data"]
    assert set(data) == ORDER_KEYS
    assert data["id"] == order["id"] and data["idKey"] == order["idKey"] and data["type"] == "ONE_TIME"
    assert data["paidAmount"] == 0 and data["paymentDate"] is None and data["subscriptions"] == []
    # Serialised once, UTF-8, non-ASCII kept: the signature is over exactly these bytes.
    assert order["productName"].encode("utf-8") in request.body
    assert b"\\u" not in request.body


def test_a_signature_with_another_key_does_not_verify(
    sandbox_client: SandboxClient, sandbox_webhooks: WebhookReceiver
) -> None:
    order = sandbox_client.create_order()
    [request] = sandbox_webhooks.wait_for(v2_event("order.created", code=order["orderCode"]))
    with pytest.raises(AssertionError):
        assert_signed(request, key="another-key")
    tampered = ReceivedRequest(
        request.method,
        request.path,
        request.headers,
        request.body.replace(b'"paidAmount":0', b'"paidAmount":1'),
        request.received_at,
    )
    with pytest.raises(AssertionError):
        assert_signed(tampered)


def test_payment_events(sandbox_client: SandboxClient, sandbox_webhooks: WebhookReceiver) -> None:
    order = sandbox_client.create_order()
    sandbox_client.complete(order["orderCode"])
    [completed] = sandbox_webhooks.wait_for(v2_event("order.payment_completed", id=order["id"]))
    [payment] = sandbox_webhooks.wait_for(v2_event("payment.completed", orderId=order["id"]))
    for request in (completed, payment):
        assert_signed(request)
    order_data = completed.json()["data"]
    assert set(order_data) == ORDER_KEYS
    assert order_data["paidAmount"] == 15000 and order_data["paymentDate"] is not None
    assert order_data["items"][0]["status"] == "PAID"
    payment_data = payment.json()["data"]
    assert set(payment_data) == PAYMENT_KEYS
    assert payment_data["status"] == "COMPLETE" and payment_data["paidAmount"] == 15000
    assert payment_data["idKey"] == order["idKey"] and payment_data["paymentMethod"] == "CARD"
    assert payment_data["paidAt"] == order_data["paymentDate"]

    sandbox_client.control("POST", f"/orders/{order['orderCode']}/refund")
    [canceled] = sandbox_webhooks.wait_for(v2_event("payment.canceled", orderId=order["id"]))
    assert canceled.json()["data"]["status"] == "CANCELED"

    declined = sandbox_client.create_order()
    sandbox_client.complete(declined["orderCode"], "failure")
    [failed] = sandbox_webhooks.wait_for(v2_event("payment.failed", orderId=declined["id"]))
    assert set(failed.json()["data"]) == PAYMENT_KEYS
    assert failed.json()["data"]["status"] == "FAILED" and failed.json()["data"]["errorMessage"]
    assert_signed(failed)


def test_subscription_events(sandbox_client: SandboxClient, sandbox_webhooks: WebhookReceiver) -> None:
    order, sub_id = sandbox_client.paid_subscription()
    [created] = sandbox_webhooks.wait_for(v2_event("subscription.created", subscriptionId=sub_id))
    data = created.json()["data"]
    assert set(data) == SUBSCRIPTION_KEYS
    assert (
        data["status"] == "ACTIVE"
        and data["orderId"] == order["id"]
        and data["orderCode"] == order["orderCode"]
    )
    assert data["intervalUnit"] == "MONTH" and data["intervalCount"] == 1
    [paid] = sandbox_webhooks.wait_for(v2_event("order.payment_completed", id=order["id"]))
    assert paid.json()["data"]["subscriptions"] == [sub_id]  # ids here, unlike the detail API

    sandbox_client.control("POST", f"/subscriptions/{sub_id}/renew", {"outcome": "success"})
    [updated] = sandbox_webhooks.wait_for(v2_event("subscription.updated", subscriptionId=sub_id))
    assert updated.json()["data"]["status"] == "ACTIVE"
    sandbox_client.control("POST", f"/subscriptions/{sub_id}/status", {"status": "PENDING_CANCEL"})
    found = sandbox_webhooks.wait_for(v2_event("subscription.updated", subscriptionId=sub_id), count=2)
    assert found[-1].json()["data"]["status"] == "PENDING_CANCEL"
    for request in (created, updated, found[-1]):
        assert_signed(request)
    # v1 is off by default.
    assert not [r for r in sandbox_webhooks.requests() if is_v1(r)]


# -- v1 --------------------------------------------------------------------------------------


def test_v1_bodies(
    sandbox: SandboxServer, sandbox_client: SandboxClient, sandbox_webhooks: WebhookReceiver
) -> None:
    sandbox.configure_webhooks(versions=["v2", "v1"])
    one_time = sandbox_client.create_order()
    sandbox_client.complete(one_time["orderCode"])
    initial, sub_id = sandbox_client.paid_subscription()
    created = sandbox_webhooks.wait_for(v1_body(id=sub_id, status="ACTIVE"))
    assert len(created) == 1
    assert "steppay-signature" not in created[0].headers  # v1 is unsigned
    assert created[0].headers["content-type"] == "application/json"

    renewal = sandbox_client.control("POST", f"/subscriptions/{sub_id}/renew", {"outcome": "success"}).json()
    assert sandbox_webhooks.wait_for(v1_body(webHookType="PAYMENT", orderId=renewal["id"]))
    failed = sandbox_client.control("POST", f"/subscriptions/{sub_id}/renew", {"outcome": "failure"}).json()
    assert sandbox_webhooks.wait_for(v1_body(id=sub_id, status="UNPAID"))
    sandbox_client.control("POST", f"/subscriptions/{sub_id}/status", {"status": "EXPIRED"})
    assert sandbox_webhooks.wait_for(v1_body(id=sub_id, status="EXPIRED"))
    assert sandbox.wait_for_webhooks(5)

    v1 = [r.json() for r in sandbox_webhooks.requests() if is_v1(r)]
    payments = [b for b in v1 if b.get("webHookType") == "PAYMENT"]
    # Only the successful renewal: not the one-time order, the initial order, or the failed renewal.
    assert payments == [{"webHookType": "PAYMENT", "orderId": renewal["id"]}]
    assert {one_time["id"], initial["id"], failed["id"]}.isdisjoint({b["orderId"] for b in payments})
    statuses = [b["status"] for b in v1 if b.get("id") == sub_id]
    # Every status change, creation included; the successful renewal changed nothing.
    assert statuses == ["ACTIVE", "UNPAID", "EXPIRED"]


def test_v1_only(
    sandbox: SandboxServer, sandbox_client: SandboxClient, sandbox_webhooks: WebhookReceiver
) -> None:
    sandbox.configure_webhooks(versions=["v1"])
    _, sub_id = sandbox_client.paid_subscription()
    assert sandbox_webhooks.wait_for(v1_body(id=sub_id, status="ACTIVE"))
    assert sandbox.wait_for_webhooks(5)
    assert all(is_v1(r) for r in sandbox_webhooks.requests())


# -- delivery, retries, log ------------------------------------------------------------------


def test_delivery_does_not_block_the_api_call(
    sandbox: SandboxServer, sandbox_client: SandboxClient, sandbox_webhooks: WebhookReceiver
) -> None:
    # The receiver answers only once the test lets it, after the API call has returned. A sandbox
    # that delivered inside the call would have finished (and logged) the delivery by then; one
    # that delivers in the background has not. Causal, not a clock bound a loaded machine breaks.
    gate = sandbox_webhooks.gate = threading.Event()
    try:
        order = sandbox_client.create_order()
        assert sandbox_client.webhook_log(orderCode=order["orderCode"]) == []
        assert sandbox_webhooks.wait_for(v2_event("order.created", code=order["orderCode"]))
    finally:
        gate.set()
        sandbox_webhooks.gate = None
    assert sandbox.wait_for_webhooks(5)
    [entry] = sandbox_client.webhook_log(orderCode=order["orderCode"])
    assert entry["outcome"] == "delivered"


def test_non_2xx_answers_are_retried_and_logged(
    sandbox: SandboxServer, sandbox_client: SandboxClient, sandbox_webhooks: WebhookReceiver
) -> None:
    sandbox_webhooks.statuses.extend([500, 503])
    order = sandbox_client.create_order()
    received = sandbox_webhooks.wait_for(v2_event("order.created", code=order["orderCode"]), count=3)
    assert len(received) == 3
    assert len({r.body for r in received}) == 1  # the same bytes each time
    assert len({r.headers["steppay-signature"] for r in received}) == 1
    assert sandbox.wait_for_webhooks(5)
    log = sandbox_client.webhook_log(orderCode=order["orderCode"], event="order.created")
    assert [(e["attempt"], e["statusCode"], e["outcome"], e["willRetry"]) for e in log] == [
        (1, 500, "failed", True),
        (2, 503, "failed", True),
        (3, 200, "delivered", False),
    ]
    assert len({e["deliveryId"] for e in log}) == 1
    for entry in log:
        assert entry["url"] == sandbox_webhooks.url and entry["timestamp"] and entry["version"] == "v2"
        assert entry["body"].encode("utf-8") == received[0].body
    # Backoff: the test fixture's retry delays are 0.05 s then 0.1 s.
    assert log[1]["epoch"] - log[0]["epoch"] >= 0.045
    assert log[2]["epoch"] - log[1]["epoch"] >= 0.095


def test_retries_give_up_after_the_last_attempt(
    sandbox: SandboxServer, sandbox_client: SandboxClient, sandbox_webhooks: WebhookReceiver
) -> None:
    sandbox_webhooks.status = 500
    order = sandbox_client.create_order()
    assert sandbox.wait_for_webhooks(5)
    time.sleep(0.2)
    assert len(sandbox_webhooks.matching(v2_event("order.created", code=order["orderCode"]))) == 3
    log = sandbox_client.webhook_log(orderCode=order["orderCode"])
    assert [e["attempt"] for e in log] == [1, 2, 3]
    assert log[-1]["outcome"] == "failed" and log[-1]["willRetry"] is False


def test_connection_errors_are_retried_and_logged(
    sandbox: SandboxServer, sandbox_client: SandboxClient
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sandbox.configure_webhooks(url=f"http://127.0.0.1:{port}/hook")
    order = sandbox_client.create_order()
    assert sandbox.wait_for_webhooks(5)
    log = sandbox_client.webhook_log(orderCode=order["orderCode"])
    assert [e["attempt"] for e in log] == [1, 2, 3]
    assert all(e["statusCode"] is None and e["error"] and e["outcome"] == "failed" for e in log)


def test_without_a_url_events_are_logged_as_undelivered(sandbox_client: SandboxClient) -> None:
    order = sandbox_client.create_order()
    [entry] = sandbox_client.webhook_log(orderCode=order["orderCode"])
    assert entry["event"] == "order.created" and entry["outcome"] == "undelivered" and entry["url"] is None
    assert json.loads(entry["body"])["data"]["code"] == order["orderCode"]


def test_key_rotation_and_repointing(
    sandbox: SandboxServer, sandbox_client: SandboxClient, sandbox_webhooks: WebhookReceiver
) -> None:
    response = sandbox_client.control("POST", "/config", {"webhookKey": "rotated-key"})
    assert response.status_code == 200
    order = sandbox_client.create_order()
    [request] = sandbox_webhooks.wait_for(v2_event("order.created", code=order["orderCode"]))
    assert_signed(request, key="rotated-key")
    with pytest.raises(AssertionError):
        assert_signed(request, key=WEBHOOK_KEY)

    other = WebhookReceiver().start()
    try:
        sandbox_client.control("POST", "/config", {"webhookUrl": other.url})
        moved = sandbox_client.create_order()
        assert other.wait_for(v2_event("order.created", code=moved["orderCode"]))
        assert sandbox.wait_for_webhooks(5)
        assert not sandbox_webhooks.matching(v2_event("order.created", code=moved["orderCode"]))
    finally:
        other.stop()


# -- webhook faults --------------------------------------------------------------------------


def test_drop_fault_records_and_never_sends(
    sandbox: SandboxServer, sandbox_client: SandboxClient, sandbox_webhooks: WebhookReceiver
) -> None:
    response = sandbox_client.control("POST", "/faults", {"webhooks": "drop", "count": 2})
    assert response.status_code == 201
    order = sandbox_client.create_order()  # order.created: dropped
    sandbox_client.complete(order["orderCode"])  # order.payment_completed dropped; payment.completed sent
    assert sandbox.wait_for_webhooks(5)
    got = [r.json()["event"] for r in sandbox_webhooks.requests()]
    assert got == ["payment.completed"]
    log = sandbox_client.webhook_log(orderCode=order["orderCode"])
    assert [(e["event"], e["outcome"]) for e in log] == [
        ("order.created", "dropped"),
        ("order.payment_completed", "dropped"),
        ("payment.completed", "delivered"),
    ]
    assert sandbox_client.control("GET", "/faults").json()["faults"] == []


def test_delay_fault_sends_later(
    sandbox: SandboxServer, sandbox_client: SandboxClient, sandbox_webhooks: WebhookReceiver
) -> None:
    sandbox_client.control("POST", "/faults", {"webhooks": "delay", "delayMs": 2000, "count": 1})
    started = time.monotonic()
    order = sandbox_client.create_order()
    answered = time.monotonic()
    [request] = sandbox_webhooks.wait_for(v2_event("order.created", code=order["orderCode"]))
    assert answered < request.received_at  # the API call does not wait for the delay
    assert request.received_at - started >= 2.0
    # The delivery is logged once the receiver's answer is read: wait for it, not just the request.
    assert sandbox.wait_for_webhooks(5)
    [entry] = sandbox_client.webhook_log(orderCode=order["orderCode"])
    assert entry["delayedMs"] == 2000 and entry["outcome"] == "delivered"
    started = time.monotonic()
    second = sandbox_client.create_order()  # count honoured: the next one is on time
    [request] = sandbox_webhooks.wait_for(v2_event("order.created", code=second["orderCode"]))
    assert request.received_at - started < 0.8


@pytest.mark.parametrize(
    "fault",
    [
        {"webhooks": "explode"},
        {"webhooks": "delay"},
        {"webhooks": "drop", "count": 0},
        {"webhooks": "drop", "path": "/x"},
        {"webhooks": "delay", "delayMs": -5},
    ],
)
def test_bad_webhook_faults_are_400(sandbox_client: SandboxClient, fault: dict[str, Any]) -> None:
    assert sandbox_client.control("POST", "/faults", fault).status_code == 400
