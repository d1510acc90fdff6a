"""Webhooks, renewals, subscription sync and reconciliation on the running local stack.

The sandbox sends its webhooks to the local API exactly as StepPay would; the intake stores and
queues them, the processor asks the sandbox's API what is true, the publisher announces changes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
from e2e.conftest import Shop, error_code, new_merchant_ref, no_leak
from fixtures.sandbox import seed_order_body

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_KEY = "sandbox-webhook-key"
SCHEMAS = {
    name: json.loads((ROOT / f"events/schemas/{file}").read_text())
    for name, file in [
        ("Payment Verified", "payment-verified.json"),
        ("Renewal Payment Verified", "renewal-payment-verified.json"),
        ("Renewal Payment Failed", "renewal-payment-failed.json"),
        ("Payment Canceled", "payment-canceled.json"),
        ("Subscription Status Changed", "subscription-status-changed.json"),
    ]
}


def _sign(raw: bytes, key: str, timestamp: int) -> str:
    mac = hmac.new(key.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256).digest()
    return f"timestamp={timestamp},key={base64.b64encode(mac).decode()}"


def _post_webhook(shop: Shop, raw: bytes, headers: dict[str, str] | None = None) -> requests.Response:
    return shop.http.post(
        f"{shop.stack.api_url}/webhooks/steppay",
        data=raw,
        headers={"Content-Type": "application/json", **(headers or {})},
        timeout=30,
    )


def _wait(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _events(
    shop: Shop, detail_type: str, predicate: Callable[[dict[str, Any]], bool], wait: float = 1.0
) -> list[dict[str, Any]]:
    return [
        e for e in shop.events(max_wait=wait) if e["detail-type"] == detail_type and predicate(e["detail"])
    ]


def _validated(event: dict[str, Any]) -> dict[str, Any]:
    jsonschema.validate(
        event["detail"], SCHEMAS[event["detail-type"]], format_checker=jsonschema.FormatChecker()
    )
    return event


def _subscription_record(shop: Shop, subscription_id: int) -> dict[str, Any] | None:
    item = shop.table().get_item(
        Key={"pk": f"SUBSCRIPTION#{subscription_id}", "sk": "SUBSCRIPTION"}, ConsistentRead=True
    )
    return item.get("Item")


def _entitlement(shop: Shop, merchant_ref: str, subscription_id: int) -> dict[str, Any] | None:
    import boto3

    table = boto3.resource(
        "dynamodb",
        endpoint_url=shop.stack.dynamodb_endpoint,
        region_name="ap-northeast-2",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    ).Table(shop.stack.table_names["EntitlementsTable"])
    key = f"ENTITLEMENT#{merchant_ref}#{subscription_id}"
    return table.get_item(Key={"pk": key}, ConsistentRead=True).get("Item")


@pytest.fixture
def sandbox_webhooks(shop: Shop) -> Iterator[Callable[[list[str]], None]]:
    """Choose which webhook versions the sandbox sends; restored to v2 afterwards."""

    def choose(versions: list[str]) -> None:
        assert shop.control("/config", {"webhookVersions": versions}).status_code == 200

    yield choose
    choose(["v2"])


def _subscribed(shop: Shop, merchant_ref: str) -> tuple[dict[str, Any], int]:
    """A paid subscription (its checkout registered, initial order verified by redirect), ACTIVE
    in our store."""
    link = shop.new_checkout("recurring", merchantRef=merchant_ref)
    shop.control(f"/orders/{link['orderCode']}/complete", {"outcome": "success"})
    verified = shop.post("/payments/verify", {"orderCode": link["orderCode"]}).json()
    assert verified["verdict"] == "PAID"
    assert "subscriptionIds" not in verified  # the shopper's page does not learn them
    # The merchant's backend reads them from its checkout.
    view = shop.backend_get(f"/checkouts/{link['checkoutId']}")
    assert view.status_code == 200, view.text
    subscription_id = int(view.json()["subscriptionIds"][0])
    _wait(
        lambda: (_subscription_record(shop, subscription_id) or {}).get("status") == "ACTIVE",
        what="subscription.created to be synced",
    )
    return link, subscription_id


def test_renewal_by_signed_webhook_is_recorded_announced_and_extends_entitlement(shop: Shop) -> None:
    ref = new_merchant_ref("member")
    link, subscription_id = _subscribed(shop, ref)
    renewal = shop.control(f"/subscriptions/{subscription_id}/renew", {"outcome": "success"}).json()
    code = renewal["orderCode"]

    events = _wait(
        lambda: _events(shop, "Renewal Payment Verified", lambda d: d["orderCode"] == code),
        what="Renewal Payment Verified",
    )
    assert len(events) == 1
    detail = _validated(events[0])["detail"]
    assert detail["subscriptionId"] == subscription_id
    assert detail["orderType"] == "RECURRING"
    assert detail["amount"] == "9900"
    # Bound through the subscription to the checkout that created it.
    assert detail["merchantRef"] == ref
    assert detail["checkoutId"] == link["checkoutId"]
    assert detail["customer"]["id"] == shop.catalogue()["customer"]["id"]
    product, price = shop.catalogue()["recurring"]
    assert [(i["productCode"], i["priceCode"], i["quantity"]) for i in detail["items"]] == [
        (product["code"], price["code"], 1)
    ]
    assert [(i["priceCode"], i["unitPrice"]) for i in detail["chargedItems"]] == [(price["code"], "9900")]
    assert detail["nextPaymentDate"]

    record = shop.record(code)
    assert record is not None and record["state"] == "PAID"
    assert record["verified_via"] == "webhook"
    assert int(record["subscription_id"]) == subscription_id

    stored = _subscription_record(shop, subscription_id)
    assert stored is not None and stored["status"] == "ACTIVE"
    assert stored.get("merchant_ref") == ref

    # The example subscriber extended the merchant's entitlement.
    entitlement = _wait(
        lambda: (_entitlement(shop, ref, subscription_id) or {}).get("active_until"), what="entitlement"
    )
    assert datetime.fromisoformat(entitlement) == datetime.fromisoformat(detail["nextPaymentDate"])
    stored_entitlement = _entitlement(shop, ref, subscription_id)
    assert stored_entitlement is not None
    assert stored_entitlement["checkout_id"] == link["checkoutId"]

    # Nothing more arrives for this renewal, whatever StepPay's retries do.
    shop.settle_publisher()
    assert len(_events(shop, "Renewal Payment Verified", lambda d: d["orderCode"] == code, wait=2)) == 1


def test_failed_renewal_then_recovery(shop: Shop) -> None:
    ref = new_merchant_ref("member")
    _, subscription_id = _subscribed(shop, ref)

    failed = shop.control(f"/subscriptions/{subscription_id}/renew", {"outcome": "failure"}).json()
    failures = _wait(
        lambda: _events(shop, "Renewal Payment Failed", lambda d: d["orderCode"] == failed["orderCode"]),
        what="Renewal Payment Failed",
    )
    assert len(failures) == 1
    _validated(failures[0])
    changes = _wait(
        lambda: _events(
            shop,
            "Subscription Status Changed",
            lambda d: d["subscriptionId"] == subscription_id and d["status"] == "UNPAID",
        ),
        what="UNPAID status change",
    )
    assert _validated(changes[0])["detail"]["previousStatus"] == "ACTIVE"
    assert shop.record(failed["orderCode"])["state"] == "FAILED"  # type: ignore[index]

    recovered = shop.control(f"/subscriptions/{subscription_id}/renew", {"outcome": "success"}).json()
    _wait(
        lambda: _events(shop, "Renewal Payment Verified", lambda d: d["orderCode"] == recovered["orderCode"]),
        what="recovery renewal",
    )
    back = _wait(
        lambda: _events(
            shop,
            "Subscription Status Changed",
            lambda d: (
                d["subscriptionId"] == subscription_id
                and d["status"] == "ACTIVE"
                and d["previousStatus"] == "UNPAID"
            ),
        ),
        what="ACTIVE again",
    )
    assert len(back) == 1
    assert _subscription_record(shop, subscription_id)["status"] == "ACTIVE"  # type: ignore[index]


def test_v1_webhooks_alone_record_renewals(shop: Shop, sandbox_webhooks: Callable[[list[str]], None]) -> None:
    ref = new_merchant_ref("member")
    _, subscription_id = _subscribed(shop, ref)
    sandbox_webhooks(["v1"])
    renewal = shop.control(f"/subscriptions/{subscription_id}/renew", {"outcome": "success"}).json()
    events = _wait(
        lambda: _events(shop, "Renewal Payment Verified", lambda d: d["orderCode"] == renewal["orderCode"]),
        what="renewal through v1",
    )
    assert len(events) == 1
    log = shop.http.get(
        f"{shop.stack.sandbox_url}/_sandbox/webhooks", params={"orderCode": renewal["orderCode"]}, timeout=10
    ).json()["deliveries"]
    assert log, "the sandbox delivered webhooks for the renewal"
    assert {entry["version"] for entry in log} == {"v1"}
    assert any("webHookType" in str(entry["body"]) and entry["outcome"] == "delivered" for entry in log)


def test_forged_v2_webhook_is_refused_and_records_nothing(shop: Shop) -> None:
    link = shop.new_pay_link()  # an unpaid order, named by the forgery
    body = json.dumps(
        {
            "timestamp": int(time.time()),
            "version": "v1",
            "event": "order.payment_completed",
            "data": {
                "id": link["orderId"],
                "code": link["orderCode"],
                "paidAmount": 15000,
                "paymentDate": "2026-11-26T10:00:00",
            },
        }
    ).encode()
    shop.settle_publisher()  # earlier tests' webhooks and subscription syncs are done
    before = shop.table_snapshot()
    cases = [
        ({}, "signature_missing"),
        ({"Steppay-Signature": "garbage"}, "signature_malformed"),
        ({"Steppay-Signature": _sign(body, "not-the-key", int(time.time()))}, "signature_mismatch"),
        # Forged an hour ago: a mismatch (an authentic old signature is a portal resend, accepted).
        ({"Steppay-Signature": _sign(body, "not-the-key", int(time.time()) - 3600)}, "signature_mismatch"),
        ({"Steppay-Signature": _sign(body, WEBHOOK_KEY, int(time.time()) + 3600)}, "signature_stale"),
        ({"Steppay-Signature": _sign(body + b" ", WEBHOOK_KEY, int(time.time()))}, "signature_mismatch"),
    ]
    for headers, code in cases:
        response = _post_webhook(shop, body, headers)
        assert response.status_code == 401, (code, response.text)
        assert error_code(response) == code
        no_leak(response)
    assert shop.table_snapshot() == before
    shop.settle_publisher()
    assert _events(shop, "Payment Verified", lambda d: d["orderCode"] == link["orderCode"], wait=1) == []


def test_signed_webhook_for_unpaid_order_and_v1_for_unknown_order_record_nothing(shop: Shop) -> None:
    link = shop.new_pay_link()
    body = json.dumps(
        {
            "timestamp": int(time.time()),
            "version": "v1",
            "event": "order.payment_completed",
            "data": {"id": link["orderId"], "code": link["orderCode"]},
        }
    ).encode()
    mark = shop.processor_mark()
    ok = _post_webhook(shop, body, {"Steppay-Signature": _sign(body, WEBHOOK_KEY, int(time.time()))})
    assert ok.status_code == 200
    sent = [body]
    for v1 in (
        {"webHookType": "PAYMENT", "orderId": link["orderId"]},
        {"webHookType": "PAYMENT", "orderId": 987654321},
    ):
        raw = json.dumps(v1).encode()
        response = _post_webhook(shop, raw)
        assert response.status_code == 200
        sent.append(raw)
    states = _wait(
        lambda: _processed(shop, mark, sent), timeout=60, what="the three webhooks to be processed"
    )
    assert sorted(states) == ["PROCESSED", "PROCESSED", "REJECTED"], states  # NOT_PAID twice; unknown
    shop.settle_publisher()
    assert shop.record(link["orderCode"])["state"] == "PENDING"  # type: ignore[index]
    assert _events(shop, "Payment Verified", lambda d: d["orderCode"] == link["orderCode"], wait=1) == []


def _processed(shop: Shop, mark: int, bodies: list[bytes]) -> list[str] | None:
    """What the processor made of the webhooks with these bodies, once it handled each."""
    hashes = {hashlib.sha256(body).hexdigest() for body in bodies}
    handled = [r for r in shop.processed_webhooks(mark) if r.get("body_sha256") in hashes]
    return [str(r["state"]) for r in handled] if len(handled) >= len(bodies) else None


def test_types_that_change_nothing_are_acknowledged_and_neither_stored_nor_queued(shop: Shop) -> None:
    link = shop.new_pay_link()
    shop.settle_publisher()
    before = shop.table_snapshot()
    processor_lines = len(shop.stack.logs.lines("WebhookProcessorFunction"))
    for event, data in (
        ("customer.updated", {"id": 1001}),
        ("order.created", {"id": link["orderId"], "code": link["orderCode"]}),
        ("payment.standby", {"orderId": link["orderId"], "status": "VIRTUAL_BANK_STANDBY"}),
    ):
        body = json.dumps(
            {"timestamp": int(time.time()), "version": "v1", "event": event, "data": data}
        ).encode()
        response = _post_webhook(
            shop, body, {"Steppay-Signature": _sign(body, WEBHOOK_KEY, int(time.time()))}
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"received": True, "queued": False}
    assert shop.webhooks_waiting() == 0  # nothing queued (a delayed message counts too)
    shop.settle_publisher()
    assert shop.table_snapshot() == before  # nothing stored
    processed = "\n".join(shop.stack.logs.lines("WebhookProcessorFunction")[processor_lines:])
    for event in ("customer.updated", "order.created", "payment.standby"):
        assert f'"{event}"' not in processed, "a type that changes nothing was queued"


def test_duplicated_and_reordered_deliveries_change_things_once(shop: Shop) -> None:
    ref = new_merchant_ref("member")
    _, subscription_id = _subscribed(shop, ref)
    renewal = shop.control(f"/subscriptions/{subscription_id}/renew", {"outcome": "success"}).json()
    _wait(
        lambda: _events(shop, "Renewal Payment Verified", lambda d: d["orderCode"] == renewal["orderCode"]),
        what="renewal",
    )
    # Replay every webhook the sandbox delivered for this subscription, duplicated and shuffled:
    # old subscription.created / ACTIVE bodies must not move the status backwards.
    log = shop.http.get(
        f"{shop.stack.sandbox_url}/_sandbox/webhooks", params={"subscriptionId": subscription_id}, timeout=10
    ).json()["deliveries"]
    bodies = list({entry["body"]: None for entry in log if entry.get("body")})
    assert bodies, "the sandbox's delivery log shows bodies"
    replay = bodies * 3
    random.shuffle(replay)
    for body in replay:
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        headers = {}
        if raw.startswith(b'{"timestamp"') or b'"event"' in raw:
            headers["Steppay-Signature"] = _sign(raw, WEBHOOK_KEY, int(time.time()))
        assert _post_webhook(shop, raw, headers).status_code == 200
    _wait(lambda: shop.webhooks_waiting() == 0, timeout=90, what="every replayed webhook to be processed")
    shop.settle_publisher()
    assert (
        len(
            _events(
                shop, "Renewal Payment Verified", lambda d: d["orderCode"] == renewal["orderCode"], wait=2
            )
        )
        == 1
    )
    actives = _events(
        shop,
        "Subscription Status Changed",
        lambda d: d["subscriptionId"] == subscription_id and d["status"] == "ACTIVE",
    )
    assert len(actives) == 1  # created → ACTIVE once; replays change nothing
    assert _subscription_record(shop, subscription_id)["status"] == "ACTIVE"  # type: ignore[index]


def test_reconciliation_finds_a_renewal_whose_webhooks_never_arrived(shop: Shop) -> None:
    ref = new_merchant_ref("member")
    _, subscription_id = _subscribed(shop, ref)
    shop.control("/faults", {"webhooks": "drop", "count": 100})
    renewal = shop.control(f"/subscriptions/{subscription_id}/renew", {"outcome": "success"}).json()
    time.sleep(2)
    assert shop.record(renewal["orderCode"]) is None
    report = shop.stack.invoke("ReconciliationFunction", {"windowMinutes": 60})
    assert report["fixed"] >= 1
    record = shop.record(renewal["orderCode"])
    assert record is not None and record["state"] == "PAID"
    assert record["verified_via"] == "reconciliation"
    events = _wait(
        lambda: _events(shop, "Renewal Payment Verified", lambda d: d["orderCode"] == renewal["orderCode"]),
        what="reconciled renewal",
    )
    assert len(events) == 1
    # A second run finds nothing new to fix for this order, and does not even ask StepPay about
    # it (it is recorded PAID): a lookup of it would now fail and count as `failed`.
    _fail_lookups_of(shop, int(record["order_id"]))
    try:
        again = shop.stack.invoke("ReconciliationFunction", {"windowMinutes": 60})
    finally:
        shop.clear_faults()
    assert again["failed"] == 0, again
    assert again["already_recorded"] >= 1, again
    assert shop.record(renewal["orderCode"]) == record


def _fail_lookups_of(shop: Shop, order_id: int) -> None:
    fault = {"path": f"/api/v1/orders/{order_id}", "method": "GET", "status": 503, "count": 1000}
    assert shop.control("/faults", fault).status_code == 201


def test_reconciliation_records_a_refund_whose_webhooks_never_arrived(shop: Shop) -> None:
    link = shop.new_pay_link()
    code = link["orderCode"]
    shop.control(f"/orders/{code}/complete", {"outcome": "success"})
    assert shop.post("/payments/verify", {"orderCode": code}).json()["verdict"] == "PAID"
    shop.settle_publisher()
    try:
        shop.control("/faults", {"webhooks": "drop", "count": 100})
        assert shop.control(f"/orders/{code}/refund").status_code == 200
        time.sleep(1)
        assert shop.record(code)["state"] == "PAID"  # type: ignore[index]
        # StepPay's order list shows the refund: the order is confirmed though recorded PAID.
        report = shop.stack.invoke("ReconciliationFunction", {"windowMinutes": 60})
        assert report["failed"] == 0, report
        record = shop.record(code)
        assert record is not None and record["state"] == "CANCELED"
        canceled = _wait(
            lambda: _events(shop, "Payment Canceled", lambda d: d["orderCode"] == code),
            what="Payment Canceled from reconciliation",
        )
        assert len(canceled) == 1
        # CANCELED is final: the next run skips it without asking StepPay.
        _fail_lookups_of(shop, link["orderId"])
        again = shop.stack.invoke("ReconciliationFunction", {"windowMinutes": 60})
        assert again["failed"] == 0 and again["already_recorded"] >= 1, again
        assert shop.record(code) == record
    finally:
        shop.clear_faults()
    shop.settle_publisher()
    assert len(_events(shop, "Payment Canceled", lambda d: d["orderCode"] == code, wait=2)) == 1


def test_initial_order_recorded_by_webhook_first_then_redirect_records_nothing_more(shop: Shop) -> None:
    link = shop.new_pay_link()
    shop.control(f"/orders/{link['orderCode']}/complete", {"outcome": "success"})
    # StepPay's order.payment_completed webhook arrives before the shopper's redirect.
    record = _wait(
        lambda: (
            (shop.record(link["orderCode"]) or {}).get("state") == "PAID" and shop.record(link["orderCode"])
        ),
        what="webhook to record the payment",
    )
    assert record["verified_via"] == "webhook"
    # What the merchant's backend registered is kept.
    assert record["merchant_ref"] == link["merchantRef"]
    assert record["registration"]["checkout_id"] == link["checkoutId"]
    answer = shop.post("/payments/verify", {"orderCode": link["orderCode"], "status": "success"}).json()
    assert answer["verdict"] == "PAID"
    assert set(answer) == {"verified", "verdict", "orderCode", "amount", "currency", "paidAt"}
    assert shop.record(link["orderCode"]) == record  # the redirect recorded nothing more
    view = shop.backend_get(f"/checkouts/{link['checkoutId']}").json()
    assert (view["state"], view["merchantRef"]) == ("PAID", link["merchantRef"])
    shop.settle_publisher()
    assert len(_events(shop, "Payment Verified", lambda d: d["orderCode"] == link["orderCode"], wait=2)) == 1


def test_refund_of_a_recorded_payment_is_recorded_and_announced_once(shop: Shop) -> None:
    link = shop.new_pay_link()
    shop.control(f"/orders/{link['orderCode']}/complete", {"outcome": "success"})
    assert shop.post("/payments/verify", {"orderCode": link["orderCode"]}).json()["verdict"] == "PAID"
    assert shop.control(f"/orders/{link['orderCode']}/refund").status_code == 200
    # The sandbox's payment.canceled webhook → lookup shows the refund → CANCELED, once.
    canceled = _wait(
        lambda: _events(shop, "Payment Canceled", lambda d: d["orderCode"] == link["orderCode"]),
        what="Payment Canceled",
    )
    detail = _validated(canceled[0])["detail"]
    assert detail["returnedAmount"] == "15000"
    assert detail["merchantRef"] == link["merchantRef"]
    assert detail["checkoutId"] == link["checkoutId"]
    record = shop.record(link["orderCode"])
    assert record is not None and record["state"] == "CANCELED"
    # Verifying again says CANCELED and never makes it PAID again.
    assert shop.post("/payments/verify", {"orderCode": link["orderCode"]}).json()["verdict"] == "CANCELED"
    assert shop.record(link["orderCode"])["state"] == "CANCELED"  # type: ignore[index]
    shop.settle_publisher()
    assert len(_events(shop, "Payment Canceled", lambda d: d["orderCode"] == link["orderCode"], wait=2)) == 1
    assert len(_events(shop, "Payment Verified", lambda d: d["orderCode"] == link["orderCode"], wait=0)) == 1


# -- orders this bundle did not register (made at StepPay directly: its portal, another integration)


def _webhooks_naming(shop: Shop, mark: int, order_code: str, order_id: int) -> list[dict[str, Any]]:
    """What the processor made, since a mark, of webhooks naming this order (by code or by id)."""
    refs = {order_code, str(order_id)}
    return [r for r in shop.processed_webhooks(mark) if r.get("order_ref") in refs]


def _unregistered_order(shop: Shop, kind: str = "one_time") -> dict[str, Any]:
    response = shop.steppay("POST", "/api/v1/orders", json=seed_order_body(shop.catalogue(), kind))
    assert response.status_code == 201, response.text
    return dict(response.json())


def _assert_ignored_not_recorded(
    shop: Shop, mark: int, code: str, order_id: int, *payment_events: str
) -> None:
    def settled() -> list[dict[str, Any]] | None:
        handled = [
            r
            for r in _webhooks_naming(shop, mark, code, order_id)
            if r.get("event_type") in ("order.payment_completed", "payment.completed")
        ]
        return handled if handled and shop.webhooks_waiting() == 0 else None

    handled = _wait(settled, what="the webhooks about the unregistered order to be processed")
    assert {(r["state"], r["detail"]) for r in handled} == {
        ("IGNORED", "order not registered by this bundle")
    }, handled
    assert shop.record(code) is None
    shop.settle_publisher()
    for detail_type in payment_events:
        assert _events(shop, detail_type, lambda d: d.get("orderCode") == code, wait=1) == []


def test_webhooks_for_an_order_the_bundle_did_not_register_are_ignored_not_recorded(shop: Shop) -> None:
    mark = shop.processor_mark()
    created = _unregistered_order(shop)
    code, order_id = created["orderCode"], int(created["id"])
    shop.control(f"/orders/{code}/complete", {"outcome": "success"})
    # StepPay's signed webhooks arrive and are acknowledged, but nothing is recorded or announced.
    _assert_ignored_not_recorded(shop, mark, code, order_id, "Payment Verified")
    # Nor does the shopper's page learn anything of it.
    response = shop.post("/payments/verify", {"orderCode": code})
    assert response.status_code == 404 and error_code(response) == "order_not_found"
    assert shop.record(code) is None


def test_renewal_of_a_subscription_the_bundle_did_not_register_is_not_recorded(shop: Shop) -> None:
    mark = shop.processor_mark()
    created = _unregistered_order(shop, "recurring")
    paid = shop.control(f"/orders/{created['orderCode']}/complete", {"outcome": "success"}).json()
    subscription_id = int(paid["subscriptions"][0]["id"])
    _assert_ignored_not_recorded(shop, mark, created["orderCode"], int(created["id"]), "Payment Verified")
    renewal = shop.control(f"/subscriptions/{subscription_id}/renew", {"outcome": "success"}).json()
    _assert_ignored_not_recorded(
        shop,
        mark,
        renewal["orderCode"],
        int(renewal["id"]),
        "Renewal Payment Verified",
        "Renewal Payment Failed",
    )


def test_reconciliation_counts_an_unregistered_paid_order_and_does_not_record_it(shop: Shop) -> None:
    created = _unregistered_order(shop)
    code = created["orderCode"]
    ours = shop.new_checkout()
    try:
        shop.control("/faults", {"webhooks": "drop", "count": 100})
        shop.control(f"/orders/{code}/complete", {"outcome": "success"})
        shop.control(f"/orders/{ours['orderCode']}/complete", {"outcome": "success"})
        report = shop.stack.invoke("ReconciliationFunction", {"windowMinutes": 60})
    finally:
        shop.clear_faults()
    assert report["failed"] == 0, report
    assert report["unregistered"] >= 1, report
    assert report["fixed"] >= 1, report  # ours, whose webhooks were dropped too
    assert shop.record(code) is None
    assert (shop.record(ours["orderCode"]) or {}).get("verified_via") == "reconciliation"
    again = shop.stack.invoke("ReconciliationFunction", {"windowMinutes": 60})
    assert again["failed"] == 0 and again["unregistered"] >= 1, again
    assert shop.record(code) is None
    shop.settle_publisher()
    assert _events(shop, "Payment Verified", lambda d: d["orderCode"] == code, wait=1) == []
    assert len(_events(shop, "Payment Verified", lambda d: d["orderCode"] == ours["orderCode"], wait=0)) == 1
