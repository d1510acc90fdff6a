"""Sixteen at once: identical verifications of one order, identical deliveries of one webhook.

Exactly one record (one PENDING -> PAID write on the table's stream, not just one item in the
end) and exactly one event, whatever the interleaving.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from faults.checkouts import pay_link
from hostile.harness import WEBHOOK_KEY, Harness, compact, distinct_event_ids, sign

pytestmark = pytest.mark.e2e

SUITE = "concurrency and load"
PARALLEL = 16


def paid_writes(h: Harness, order_code: str) -> list[dict[str, Any]]:
    """The stream's writes that moved this order into PAID."""
    changes = h.stream_changes(f"ORDER#{order_code}")
    return [
        c
        for c in changes
        if c["dynamodb"].get("NewImage", {}).get("state", {}).get("S") == "PAID"
        and c["dynamodb"].get("OldImage", {}).get("state", {}).get("S") != "PAID"
    ]


def together(count: int, call: Any) -> list[Any]:
    """Run `call(i)` on `count` threads released at the same instant."""
    barrier = threading.Barrier(count)

    def run(index: int) -> Any:
        barrier.wait()
        return call(index)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def one_event(h: Harness, order_code: str, detail_type: str) -> dict[str, Any]:
    h.wait_for_events(order_code, 1, detail_type)
    h.settle()
    h.read_events(max_wait=0.5)
    events = h.events_for(order_code)
    assert len(events) == 1, f"{len(events)} events: {events}"
    assert events[0]["detail-type"] == detail_type
    return events[0]


def test_sixteen_identical_verifications(load_harness: Harness, reliability: Any) -> None:
    h = load_harness
    with reliability.case(SUITE, f"{PARALLEL} concurrent verifications of one order"):
        link = pay_link(h)
        code = link["orderCode"]
        with h.webhooks_off():  # only the verifications can record it
            h.complete(code)
        sessions = [requests.Session() for _ in range(PARALLEL)]
        url = f"{h.stack.api_url}/payments/verify"
        answers = together(
            PARALLEL,
            lambda i: sessions[i].post(url, json={"orderCode": code, "orderId": link["orderId"]}, timeout=60),
        )
        for answer in answers:
            h.report.saw(answer.text)
        assert {a.status_code for a in answers} == {200}, [a.text for a in answers]
        assert len({json.dumps(a.json(), sort_keys=True) for a in answers}) == 1
        assert answers[0].json()["verdict"] == "PAID"
        assert len(paid_writes(h, code)) == 1
        one_event(h, code, "Payment Verified")
        reliability.count(SUITE, records=1, events=1)


def test_sixteen_identical_webhook_deliveries(load_harness: Harness, reliability: Any) -> None:
    h = load_harness
    with reliability.case(SUITE, f"{PARALLEL} concurrent deliveries of one webhook"):
        link = pay_link(h)
        code = link["orderCode"]
        with h.webhooks_off():
            h.complete(code)
        raw = compact(
            {
                "timestamp": int(time.time()),
                "version": "v1",
                "event": "order.payment_completed",
                "data": {"id": link["orderId"], "code": code},
            }
        )
        signature = sign(raw, WEBHOOK_KEY, int(time.time()))
        sessions = [requests.Session() for _ in range(PARALLEL)]
        url = f"{h.stack.api_url}/webhooks/steppay"
        headers = {"Content-Type": "application/json", "Steppay-Signature": signature}
        mark = h.mark_processor_log()
        answers = together(PARALLEL, lambda i: sessions[i].post(url, data=raw, headers=headers, timeout=60))
        assert {a.status_code for a in answers} == {200}, [a.text for a in answers]
        # Nothing is deduplicated at the door: every copy is queued and handled as a hint.
        assert [a.json() for a in answers] == [{"received": True, "queued": True}] * PARALLEL
        h.wait_for(lambda: (h.record(code) or {}).get("state") == "PAID", timeout=60, what="the webhook")
        h.settle()
        handled = [r for r in h.processed_webhooks(mark) if r.get("order_ref") == code]
        assert len(handled) == PARALLEL and {r["state"] for r in handled} == {"PROCESSED"}, handled
        assert len(paid_writes(h, code)) == 1
        event = one_event(h, code, "Payment Verified")
        assert len(distinct_event_ids([event])) == 1
        assert (h.record(code) or {}).get("verified_via") == "webhook"
        reliability.count(SUITE, records=1, events=1)
