"""Webhook deliveries that were lost (issue #15), each through the local API on the running stack.

Each test ends with what is recorded equal to what StepPay (the sandbox) says, and each change
announced once on the bus. Before the fix each of the first three failed: a repeated v2 body was
taken for a duplicate, a forged v1 body made StepPay's real one a "duplicate", and a portal resend
older than the signature tolerance was refused `401 signature_stale`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from e2e.conftest import Shop
from e2e.test_webhooks import (
    WEBHOOK_KEY,
    _events,
    _post_webhook,
    _sign,
    _subscribed,
    _subscription_record,
    _wait,
)

pytestmark = pytest.mark.e2e


def _steppay_status(shop: Shop, subscription_id: int) -> str:
    response = shop.steppay("GET", f"/api/v1/subscriptions/{subscription_id}")
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


def _status_changes(shop: Shop, subscription_id: int, status: str, previous: str) -> list[dict[str, Any]]:
    return _events(
        shop,
        "Subscription Status Changed",
        lambda d: (
            d["subscriptionId"] == subscription_id
            and d["status"] == status
            and d["previousStatus"] == previous
        ),
        wait=0.5,
    )


@pytest.fixture
def sandbox_versions(shop: Shop) -> Iterator[Any]:
    def choose(versions: list[str]) -> None:
        assert shop.control("/config", {"webhookVersions": versions}).status_code == 200

    yield choose
    choose(["v2"])


def test_a_v2_subscription_update_repeating_an_earlier_body_is_not_dropped(shop: Shop) -> None:
    """ACTIVE, PAUSE, ACTIVE, PAUSE: the third and fourth bodies repeat the first and second."""
    _, subscription_id = _subscribed(shop, f"member-{time.time_ns()}")
    # Only the deliveries this test makes reach the intake (StepPay's own are dropped).
    shop.control("/faults", {"webhooks": "drop", "count": 1000})
    previous = "ACTIVE"
    for status in ("PAUSE", "ACTIVE", "PAUSE"):
        changed = shop.control(f"/subscriptions/{subscription_id}/status", {"status": status})
        assert changed.status_code == 200, changed.text
        # StepPay's subscription.updated: the same `data` each time the status is the same.
        body = json.dumps(
            {
                "timestamp": int(time.time()),
                "version": "v1",
                "event": "subscription.updated",
                "data": {"subscriptionId": subscription_id, "status": status},
            },
            separators=(",", ":"),
        )
        # Delivered twice (the second a later delivery of the same content): changes nothing more.
        for repeat in (body, body.replace('"timestamp":', '"timestamp": ')):
            raw = repeat.encode()
            signed = _sign(raw, WEBHOOK_KEY, int(time.time()))
            assert _post_webhook(shop, raw, {"Steppay-Signature": signed}).status_code == 200
        _wait(
            lambda s=status: (_subscription_record(shop, subscription_id) or {}).get("status") == s,
            timeout=60,
            what=f"the record to say {status}",
        )
        assert _subscription_record(shop, subscription_id)["status"] == _steppay_status(shop, subscription_id)  # type: ignore[index]
        _wait(
            lambda s=status, p=previous: _status_changes(shop, subscription_id, s, p), what="the change event"
        )
        previous = status
    shop.settle_publisher()
    time.sleep(6)  # any straggler delivery (the queue delays each by a few seconds) is processed
    shop.settle_publisher()
    assert _steppay_status(shop, subscription_id) == "PAUSE"
    assert _subscription_record(shop, subscription_id)["status"] == "PAUSE"  # type: ignore[index]
    assert len(_status_changes(shop, subscription_id, "PAUSE", "ACTIVE")) == 2
    assert len(_status_changes(shop, subscription_id, "ACTIVE", "PAUSE")) == 1


def test_a_forged_v1_body_sent_first_does_not_suppress_steppays_real_one(
    shop: Shop, sandbox_versions: Any
) -> None:
    _, earlier = _subscribed(shop, f"member-{time.time_ns()}")
    upcoming = earlier + 1  # the sandbox numbers subscriptions in sequence
    assert shop.steppay("GET", f"/api/v1/subscriptions/{upcoming}").status_code == 404
    # A forger sends, byte for byte, what StepPay will send when that subscription is created.
    forged = json.dumps({"id": upcoming, "status": "ACTIVE"}, separators=(",", ":")).encode()
    assert _post_webhook(shop, forged).status_code == 200
    time.sleep(7)  # processed meanwhile: StepPay does not know it yet, nothing is recorded
    assert _subscription_record(shop, upcoming) is None

    sandbox_versions(["v1"])  # StepPay sends only v1: its v1 body is the one to process
    link = shop.new_checkout("recurring", merchantRef=f"member-{time.time_ns()}")
    paid = shop.control(f"/orders/{link['orderCode']}/complete", {"outcome": "success"}).json()
    assert int(paid["subscriptions"][0]["id"]) == upcoming
    assert shop.stack.sandbox.wait_for_webhooks(30)
    log = shop.http.get(
        f"{shop.stack.sandbox_url}/_sandbox/webhooks", params={"subscriptionId": upcoming}, timeout=10
    ).json()["deliveries"]
    bodies = [e["body"] if isinstance(e["body"], str) else json.dumps(e["body"]) for e in log if e["body"]]
    assert any(json.loads(body) == json.loads(forged) for body in bodies), log
    record = _wait(
        lambda: _subscription_record(shop, upcoming), timeout=60, what="StepPay's real v1 delivery"
    )
    assert record["status"] == _steppay_status(shop, upcoming) == "ACTIVE"
    created = _wait(
        lambda: _events(
            shop, "Subscription Status Changed", lambda d: d["subscriptionId"] == upcoming, wait=0.5
        ),
        what="the new subscription announced",
    )
    shop.settle_publisher()
    assert len(created) == 1


def _logged(shop: Shop, order_code: str, event: str) -> dict[str, Any]:
    log = shop.http.get(
        f"{shop.stack.sandbox_url}/_sandbox/webhooks",
        params={"orderCode": order_code, "event": event},
        timeout=10,
    ).json()["deliveries"]
    assert log, f"the sandbox logged {event} for {order_code}"
    return dict(log[0])


def test_a_portal_resend_older_than_the_tolerance_is_recorded(shop: Shop) -> None:
    link = shop.new_pay_link()
    code = link["orderCode"]
    shop.control("/faults", {"webhooks": "drop", "count": 1000})  # StepPay's delivery never arrived
    shop.control(f"/orders/{code}/complete", {"outcome": "success"})
    assert shop.stack.sandbox.wait_for_webhooks(30)
    assert shop.record(code)["state"] == "PENDING"  # type: ignore[index]
    shop.clear_faults()
    # An hour later a person resends it from StepPay's portal: the original signed request.
    original = _logged(shop, code, "order.payment_completed")
    raw = original["body"].encode()
    resend = _post_webhook(shop, raw, {"Steppay-Signature": _sign(raw, WEBHOOK_KEY, int(time.time()) - 3600)})
    assert resend.status_code == 200, resend.text
    record = _wait(
        lambda: (shop.record(code) or {}).get("state") == "PAID" and shop.record(code),
        timeout=60,
        what="the resent webhook to record the payment",
    )
    assert record["verified_via"] == "webhook"
    order = shop.steppay("GET", f"/api/v1/orders/{code}").json()
    assert record["order_id"] == order["id"] and order["paymentDate"]
    shop.settle_publisher()
    verified = _events(shop, "Payment Verified", lambda d: d["orderCode"] == code, wait=2)
    assert len(verified) == 1


def test_an_intake_failure_then_the_portal_resend_ends_recorded(shop: Shop) -> None:
    """The queue is down when StepPay delivers (503); the merchant resends it from the portal once
    the original signature is older than the tolerance (300 s on the local stack)."""
    sqs = shop.stack.client("sqs")
    url = shop.stack.queue_urls["WebhookQueue"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    kept = (
        "VisibilityTimeout",
        "MessageRetentionPeriod",
        "DelaySeconds",
        "RedrivePolicy",
        "SqsManagedSseEnabled",
    )
    settable = {k: v for k, v in attributes.items() if k in kept}
    link = shop.new_pay_link()
    code = link["orderCode"]
    shop.control("/faults", {"webhooks": "drop", "count": 1000})  # this test makes the deliveries
    shop.control(f"/orders/{code}/complete", {"outcome": "success"})
    assert shop.stack.sandbox.wait_for_webhooks(30)
    raw = _logged(shop, code, "order.payment_completed")["body"].encode()
    # StepPay signed it a little under the tolerance ago (its delivery was slow to arrive).
    signed_at = int(time.time()) - 290
    original = {"Steppay-Signature": _sign(raw, WEBHOOK_KEY, signed_at)}
    sqs.delete_queue(QueueUrl=url)  # the queue is unavailable
    try:
        failed = _post_webhook(shop, raw, original)
        assert failed.status_code == 503, failed.text
        assert failed.json()["error"]["code"] == "queue_unavailable"
    finally:
        assert sqs.create_queue(QueueName=url.rsplit("/", 1)[1], Attributes=settable)["QueueUrl"] == url
    assert shop.record(code)["state"] == "PENDING"  # type: ignore[index]
    # The merchant sees the failed delivery in StepPay's portal and resends the original request,
    # by now older than the tolerance.
    while time.time() - signed_at <= 305:
        time.sleep(1)
    resent = _post_webhook(shop, raw, original)
    assert resent.status_code == 200, resent.text
    record = _wait(
        lambda: (shop.record(code) or {}).get("state") == "PAID" and shop.record(code),
        timeout=60,
        what="the resent webhook to record the payment",
    )
    assert record["verified_via"] == "webhook"
    shop.settle_publisher()
    assert len(_events(shop, "Payment Verified", lambda d: d["orderCode"] == code, wait=2)) == 1
