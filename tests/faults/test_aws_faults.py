"""Faults in the AWS parts: DynamoDB gone or throttling, EventBridge refusing events, and the
publisher dying between a recorded payment and its event.

The payments table's stream is the outbox: whatever happens to the publisher, a recorded
payment is announced once it can be, and a retry that repeats an event repeats its eventId.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hostile.harness import Harness, distinct_event_ids

from faults.checkouts import pay_link
from faults.conftest import WEBHOOK_VISIBILITY_SECONDS, FaultLab

pytestmark = pytest.mark.e2e

SUITE = "faults"
PUBLISHER_STREAM = "stream:PublisherFunction.PaymentsStream"


def paid_order(h: Harness, *, announce: bool = False) -> dict[str, Any]:
    """A pay link paid at StepPay; StepPay's webhooks are held back unless `announce`."""
    link = pay_link(h)
    if announce:
        h.complete(link["orderCode"])
    else:
        with h.webhooks_off():
            h.complete(link["orderCode"])
    return link


def verify_paid(h: Harness, code: str) -> None:
    response = h.post("/payments/verify", {"orderCode": code})
    assert response.status_code == 200, response.text
    assert response.json()["verdict"] == "PAID"


def payment_events(h: Harness, codes: list[str]) -> dict[str, list[dict[str, Any]]]:
    h.read_events()
    return {code: h.events_for(code, "Payment Verified") for code in codes}


def wait_announced(h: Harness, codes: list[str], timeout: float = 60) -> dict[str, list[dict[str, Any]]]:
    deadline = time.monotonic() + timeout
    while True:
        found = payment_events(h, codes)
        if all(found.values()) or time.monotonic() > deadline:
            break
        h.read_events(max_wait=0.5)
    h.settle()
    h.read_events(max_wait=0.5)
    return payment_events(h, codes)


def assert_once_each(h: Harness, codes: list[str], timeout: float = 60) -> int:
    """Every order: recorded PAID once, one distinct event (copies only with the same eventId)."""
    found = wait_announced(h, codes, timeout)
    copies = 0
    for code in codes:
        record = h.record(code)
        assert record is not None and record["state"] == "PAID", (code, record)
        grouped = distinct_event_ids(found[code])
        assert len(grouped) == 1, f"{code}: {len(grouped)} distinct events"
        copies += len(found[code])
    return copies


def publisher_poller(lab: FaultLab) -> Any:
    return next(p for p in lab.stack.pollers if p.name == PUBLISHER_STREAM)


def kill_publisher_workers(lab: FaultLab) -> int:
    """SIGKILL every warm publisher process (as a crashed Lambda container)."""
    function = lab.stack.functions["PublisherFunction"]
    killed = 0
    for worker in list(function._all):  # the pool's processes (started by this test's stack)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.process.pid, signal.SIGKILL)
            killed += 1
    return killed


def test_dynamodb_goes_away_and_comes_back_with_its_data(lab: FaultLab, reliability: Any) -> None:
    h = lab.h
    stack = lab.stack
    assert stack.dynamodb is not None and stack.dynamodb.data_dir is not None
    with reliability.fault(SUITE, "DynamoDB Local stopped mid-run, restarted with its data"):
        before = paid_order(h)
        verify_paid(h, before["orderCode"])
        assert_once_each(h, [before["orderCode"]])
        during_verify = paid_order(h)
        during_webhook = pay_link(h)

        stack.dynamodb.stop()
        try:
            started = time.monotonic()
            refused = h.post("/payments/verify", {"orderCode": during_verify["orderCode"]})
            h.assert_error(refused, 503, "storage_unavailable")
            assert int(refused.headers["Retry-After"]) > 0
            assert time.monotonic() - started < 14, "a refusal must come well before the function timeout"
            # StepPay's webhooks for a payment made now are acknowledged on the first attempt:
            # the intake needs only the queue, which keeps them until the table is back. (Their
            # retries outlast the outage here as in AWS, where 6 receives x 180 s are 18 minutes.)
            lab.set_webhook_visibility(30)
            h.configure_webhooks(webhookRetryDelaysMs=[])  # StepPay's default: one attempt
            h.complete(during_webhook["orderCode"])
            h.sandbox.wait_for_webhooks(30)
            deliveries = h.sandbox.webhook_log(orderCode=during_webhook["orderCode"])
            paid_deliveries = [d for d in deliveries if d["event"] != "order.created"]
            assert paid_deliveries, deliveries
            assert all(d["outcome"] == "delivered" and d["attempt"] == 1 for d in paid_deliveries), (
                paid_deliveries
            )
            assert stack.logs.wait_for("poll failed", timeout=20, source=PUBLISHER_STREAM)
        finally:
            stack.restart_dynamodb()

        # Back, with everything it had: the earlier payment is still there, announced once only.
        assert (h.record(before["orderCode"]) or {}).get("state") == "PAID"
        verify_paid(h, during_verify["orderCode"])
        # The queued webhooks are retried and record the payment made during the outage.
        h.wait_for(
            lambda: (h.record(during_webhook["orderCode"]) or {}).get("state") == "PAID",
            timeout=90,
            what="the queued webhook to record the payment once the table is back",
        )
        lab.set_webhook_visibility(WEBHOOK_VISIBILITY_SECONDS)
        assert (h.record(during_webhook["orderCode"]) or {}).get("verified_via") == "webhook"
        report = stack.invoke("ReconciliationFunction", {"windowMinutes": 5})
        assert report["failed"] == 0, report
        codes = [before["orderCode"], during_verify["orderCode"], during_webhook["orderCode"]]
        assert_once_each(h, codes)
        assert stack.logs.wait_for("recovered after", timeout=20, source=PUBLISHER_STREAM)
        reliability.count(SUITE, records=3, events=3)


def test_dynamodb_throttling(lab: FaultLab, reliability: Any) -> None:
    h = lab.h
    with reliability.fault(SUITE, "DynamoDB throttling (a few requests)"):
        link = paid_order(h)
        lab.dynamodb_proxy.add(
            "*", "error", status=400, error_type="ProvisionedThroughputExceededException", count=2
        )
        verify_paid(h, link["orderCode"])  # the SDK's own retries absorb a short throttle
        assert lab.dynamodb_proxy.injected.total() == 2
        assert_once_each(h, [link["orderCode"]])
        reliability.count(SUITE, records=1, events=1)
    with reliability.fault(SUITE, "DynamoDB throttling (sustained)"):
        link = paid_order(h)
        lab.dynamodb_proxy.add("*", "error", status=400, error_type="ProvisionedThroughputExceededException")
        started = time.monotonic()
        h.assert_error(
            h.post("/payments/verify", {"orderCode": link["orderCode"]}), 503, "storage_unavailable"
        )
        assert time.monotonic() - started < 14, "a refusal must come well before the function timeout"
        lab.dynamodb_proxy.clear()
        assert (h.record(link["orderCode"]) or {}).get("state") == "PENDING"
        verify_paid(h, link["orderCode"])
        assert_once_each(h, [link["orderCode"]])
        reliability.count(SUITE, records=1, events=1)


def test_put_events_failing_wholly(lab: FaultLab, reliability: Any) -> None:
    h = lab.h
    with reliability.fault(SUITE, "EventBridge PutEvents failing wholly"):
        lab.events_proxy.add("PutEvents", "error", status=400, error_type="AccessDeniedException")
        links = [paid_order(h) for _ in range(3)]
        for link in links:
            verify_paid(h, link["orderCode"])  # recorded even though nothing can be announced
        h.wait_for(lambda: lab.events_proxy.injected["PutEvents"] >= 2, timeout=30, what="publish attempts")
        codes = [link["orderCode"] for link in links]
        assert all(not events for events in payment_events(h, codes).values())
        lab.events_proxy.clear()
        copies = assert_once_each(h, codes)
        assert copies == 3  # the failed attempts published nothing, so nothing is repeated
        reliability.count(SUITE, records=3, events=3)


def test_put_events_failing_for_some_entries(lab: FaultLab, reliability: Any) -> None:
    h = lab.h
    with reliability.fault(SUITE, "EventBridge PutEvents failing for some entries"):
        lab.events_proxy.add("PutEvents", "partial")
        links = [paid_order(h) for _ in range(6)]
        with ThreadPoolExecutor(6) as pool:  # recorded together, so they share publisher batches
            list(pool.map(lambda link: verify_paid(h, link["orderCode"]), links))
        codes = [link["orderCode"] for link in links]
        copies = assert_once_each(h, codes)
        assert lab.events_proxy.failed_event_ids, "some entries were refused"
        # A retry starts at the first failed record, so later ones may be published again:
        # such copies carry the same eventId (checked above) and subscribers deduplicate on it.
        assert copies >= 6
        reliability.count(SUITE, records=6, events=6)


def test_publisher_dies_before_publishing(lab: FaultLab, reliability: Any) -> None:
    h = lab.h
    with reliability.fault(SUITE, "publisher process killed between record and publish"):
        lab.events_proxy.add("PutEvents", "hang", count=1)
        link = paid_order(h)
        verify_paid(h, link["orderCode"])  # recorded
        assert lab.events_proxy.held.wait(30), "the publisher reached PutEvents"
        assert kill_publisher_workers(lab) >= 1
        lab.events_proxy.release.set()
        assert h.stack.logs.wait_for("Runtime exited with error", timeout=20, source="PublisherFunction")
        assert assert_once_each(h, [link["orderCode"]]) == 1
        reliability.count(SUITE, records=1, events=1)


def test_publisher_dies_after_publishing(lab: FaultLab, reliability: Any) -> None:
    h = lab.h
    with reliability.fault(SUITE, "publisher process killed after PutEvents, before its answer"):
        lab.events_proxy.add("PutEvents", "forward_then_hang", count=1)
        link = paid_order(h)
        verify_paid(h, link["orderCode"])
        assert lab.events_proxy.held.wait(30), "the publisher reached PutEvents"
        assert kill_publisher_workers(lab) >= 1
        lab.events_proxy.release.set()
        # The batch is retried, so the event goes out again: with the same eventId.
        copies = assert_once_each(h, [link["orderCode"]])
        assert copies == 2, copies
        reliability.count(SUITE, records=1, events=1)


def test_publisher_down_while_payments_are_recorded(lab: FaultLab, reliability: Any) -> None:
    h = lab.h
    poller = publisher_poller(lab)
    with reliability.fault(SUITE, "publisher down while payments are recorded"):
        poller.stop()
        try:
            links = [paid_order(h) for _ in range(3)]
            for link in links:
                verify_paid(h, link["orderCode"])
            time.sleep(1)
            codes = [link["orderCode"] for link in links]
            assert all(not events for events in payment_events(h, codes).values())
        finally:
            poller.start()
        assert assert_once_each(h, codes) == 3
        reliability.count(SUITE, records=3, events=3)
