"""StepPay failing (the sandbox's fault injection) during verification, webhook processing and
reconciliation.

For every fault and every phase: while the fault lasts nothing is decided (no verdict, no
record, no event; callers get 503 `steppay_unavailable` with `Retry-After`, webhooks are still
acknowledged and wait in the queue, reconciliation reports the order as not confirmed); once it
clears, the payment is recorded exactly once and announced exactly once.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from hostile.harness import Harness

from faults.checkouts import pay_link
from faults.conftest import FaultLab
from steppay_local.workers import InvocationError

pytestmark = pytest.mark.e2e

SUITE = "faults"
FAULTS: dict[str, dict[str, Any]] = {
    "StepPay 5xx (503)": {"status": 503},
    "StepPay timeout (504)": {"status": 504},
    "answer slower than the client timeout": {"latencyMs": 3000},
    "dropped connection": {"drop": True},
}
WINDOW = {"windowMinutes": 2}  # reconciliation looks back over this test's orders only
PROCESSOR_POLLER = "sqs:WebhookProcessorFunction.Webhooks"


def break_order(h: Harness, link: dict[str, Any], spec: dict[str, Any]) -> None:
    """StepPay fails every lookup of this order, by code and by id, until cleared."""
    for ref in (link["orderCode"], link["orderId"]):
        h.fault(path=f"/api/v1/orders/{ref}", method="GET", count=100_000, **spec)


def faults_used(h: Harness) -> int:
    return sum(100_000 - int(f["count"]) for f in h.sandbox_faults() if f.get("kind") == "inbound")


def assert_announced_once(
    h: Harness, order_code: str, detail_type: str = "Payment Verified"
) -> dict[str, Any]:
    events = h.wait_for_events(order_code, 1, detail_type)
    h.settle()
    h.read_events(max_wait=0.5)
    events = h.events_for(order_code)
    assert len(events) == 1, f"{len(events)} events for {order_code}: {events}"
    assert events[0]["detail-type"] == detail_type
    return events[0]


def assert_nothing_decided(h: Harness, order_code: str) -> None:
    record = h.record(order_code)
    assert record is not None and record["state"] == "PENDING", record
    assert h.events_for(order_code) == []


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_during_verification(lab: FaultLab, reliability: Any, fault: str) -> None:
    h = lab.h
    with reliability.fault(SUITE, f"{fault} during verify"):
        link = pay_link(h)
        code = link["orderCode"]
        with h.webhooks_off():
            h.complete(code)
        break_order(h, link, FAULTS[fault])

        started = time.monotonic()
        h.assert_error(h.post("/payments/verify", {"orderCode": code}), 503, "steppay_unavailable")
        refused = h.request("GET", "/payments/callback", params={"order_code": code, "status": "success"})
        h.assert_error(refused, 503, "steppay_unavailable")
        assert int(refused.headers["Retry-After"]) > 0
        assert time.monotonic() - started < 20, "the caller waited too long for a refusal"
        h.settle()
        assert_nothing_decided(h, code)

        h.clear_faults()
        answer = h.post("/payments/verify", {"orderCode": code})
        assert answer.status_code == 200, answer.text
        assert answer.json()["verdict"] == "PAID"
        record = h.record(code)
        assert record is not None and record["state"] == "PAID"
        again = h.post("/payments/verify", {"orderCode": code})
        assert again.json() == answer.json()
        assert h.record(code) == record
        event = assert_announced_once(h, code)
        assert event["detail"]["amount"] == "15000"
        reliability.count(SUITE, records=1, events=1)


PAYMENT_WEBHOOKS = ("order.payment_completed", "payment.completed")


def payment_webhooks_processed(h: Harness, link: dict[str, Any], since: int) -> list[dict[str, Any]]:
    """What the processor logged, since a mark, for the payment webhooks naming this order."""
    refs = {link["orderCode"], str(link["orderId"])}
    return [
        record
        for record in h.processed_webhooks(since)
        if record.get("order_ref") in refs and record.get("event_type") in PAYMENT_WEBHOOKS
    ]


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_during_webhook_processing(lab: FaultLab, reliability: Any, fault: str) -> None:
    h = lab.h
    with reliability.fault(SUITE, f"{fault} during webhook processing"):
        link = pay_link(h)
        code = link["orderCode"]
        break_order(h, link, FAULTS[fault])
        failures_before = len([line for line in h.stack.logs.lines(PROCESSOR_POLLER) if "failed" in line])
        mark = h.mark_processor_log()
        h.complete(code)

        # The intake answers at once: StepPay's webhooks are delivered on the first attempt.
        h.sandbox.wait_for_webhooks(10)
        deliveries = h.sandbox.webhook_log(orderCode=code)
        assert deliveries and all(d["outcome"] == "delivered" and d["attempt"] == 1 for d in deliveries), (
            deliveries
        )
        # Processing asks StepPay, fails, and leaves the webhooks on the queue for a retry.
        h.wait_for(
            lambda: (
                len([line for line in h.stack.logs.lines(PROCESSOR_POLLER) if "failed" in line])
                > failures_before
            ),
            timeout=60,
            what="a failed processing attempt",
        )
        assert faults_used(h) > 0
        assert_nothing_decided(h, code)
        # Both webhooks wait on the queue (none was processed): nothing is lost while StepPay fails.
        assert payment_webhooks_processed(h, link, mark) == []
        assert h.webhook_queue_depth() >= 2

        h.clear_faults()
        h.wait_for(
            lambda: (h.record(code) or {}).get("state") == "PAID", timeout=60, what="the retried webhook"
        )
        assert_announced_once(h, code)
        record = h.record(code)
        assert record is not None and record["verified_via"] == "webhook"
        h.settle()
        handled = payment_webhooks_processed(h, link, mark)
        assert {r["event_type"] for r in handled} == set(PAYMENT_WEBHOOKS), handled  # at least once
        assert {r["state"] for r in handled} == {"PROCESSED"}, handled
        reliability.count(SUITE, records=1, events=1)


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_during_reconciliation(lab: FaultLab, reliability: Any, fault: str) -> None:
    h = lab.h
    with reliability.fault(SUITE, f"{fault} during reconciliation"):
        link = pay_link(h)
        code = link["orderCode"]
        with h.webhooks_off():  # the webhooks were lost: only reconciliation can find this payment
            h.complete(code)
        h.fault(path=f"/api/v1/orders/{link['orderId']}", method="GET", count=100_000, **FAULTS[fault])

        report = h.stack.invoke("ReconciliationFunction", WINDOW)
        assert report["failed"] >= 1, report
        h.settle()
        assert_nothing_decided(h, code)

        h.clear_faults()
        report = h.stack.invoke("ReconciliationFunction", WINDOW)
        assert report["fixed"] >= 1 and report["failed"] == 0, report
        record = h.record(code)
        assert record is not None and record["state"] == "PAID" and record["verified_via"] == "reconciliation"
        assert_announced_once(h, code)
        reliability.count(SUITE, records=1, events=1)


def test_reconciliation_when_the_order_list_fails(lab: FaultLab, reliability: Any) -> None:
    h = lab.h
    with reliability.fault(SUITE, "StepPay order list unavailable during reconciliation"):
        link = pay_link(h)
        code = link["orderCode"]
        with h.webhooks_off():
            h.complete(code)
        h.fault(path="/api/v1/orders", method="GET", status=503, count=100_000)
        # The run fails as a whole (the scheduler retries it); nothing is decided meanwhile.
        with pytest.raises(InvocationError):
            h.stack.invoke("ReconciliationFunction", WINDOW)
        h.settle()
        assert_nothing_decided(h, code)
        h.clear_faults()
        report = h.stack.invoke("ReconciliationFunction", WINDOW)
        assert report["failed"] == 0 and report["fixed"] >= 1, report
        record = h.record(code)
        assert (record or {}).get("state") == "PAID"
        assert_announced_once(h, code)
        # Running again changes nothing.
        again = h.stack.invoke("ReconciliationFunction", WINDOW)
        assert again["failed"] == 0, again
        assert h.record(code) == record
        assert_announced_once(h, code)
        reliability.count(SUITE, records=1, events=1)
