"""A burst of webhooks through the local API: every renewal recorded once and announced once.

Renewals are made at the sandbox with its webhooks captured (v2 and v1) of subscriptions whose
checkouts the merchant's backend registered (`POST /checkouts`: only those are the bundle's to
record; a renewal is bound through its subscription to that checkout), then delivered to the
local API by 16 concurrent connections, each renewal 5 times, shuffled, v1 and v2 mixed (a v2
redelivery is signed again with a fresh timestamp, as StepPay does). The full size is 1,000
deliveries covering 200 renewals (`BURST_FULL=1`, or `make burst`); by default 200 deliveries
covering 40 renewals keep CI quick. `BURST_RENEWALS=n` picks any size.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from faults.checkouts import pay_link
from fixtures.sandbox import WebhookReceiver
from hostile.harness import WEBHOOK_KEY, Harness, distinct_event_ids, sign

pytestmark = pytest.mark.e2e

SUITE = "concurrency and load"
FULL = os.environ.get("BURST_FULL", "").lower() in ("1", "true", "yes")
RENEWALS = int(os.environ.get("BURST_RENEWALS") or (200 if FULL else 40))
DELIVERIES_PER_RENEWAL = 5
CONNECTIONS = 16
RENEWALS_PER_SUBSCRIPTION = 10
# What a renewal's deliveries are made of: (version, event), picked in this order.
MIX = [
    ("v2", "order.payment_completed"),
    ("v1", "v1.order.PAYMENT"),
    ("v2", "payment.completed"),
    ("v2", "order.payment_completed"),
    ("v1", "v1.order.PAYMENT"),
]


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def make_renewals(h: Harness, receiver: WebhookReceiver, count: int) -> dict[str, dict[str, bytes]]:
    """`count` successful renewals; for each order code, its webhook bodies by (version, event)."""
    h.configure_webhooks(webhookUrl=receiver.url, webhookVersions=["v2", "v1"])
    try:
        codes: list[tuple[str, int]] = []
        while len(codes) < count:
            link = pay_link(h, "recurring")  # registered by the merchant's backend
            paid = h.complete(link["orderCode"])
            # The shopper's redirect records the initial payment (its webhooks go to the receiver).
            verified = h.post("/payments/verify", {"orderCode": link["orderCode"]})
            assert verified.status_code == 200 and verified.json()["verdict"] == "PAID", verified.text
            subscription_id = int(paid["subscriptions"][0]["id"])
            for _ in range(min(RENEWALS_PER_SUBSCRIPTION, count - len(codes))):
                response = h.control(f"/subscriptions/{subscription_id}/renew", {"outcome": "success"})
                assert response.status_code == 200, response.text
                codes.append((response.json()["orderCode"], int(response.json()["id"])))
        h.sandbox.wait_for_webhooks(60)
    finally:
        h.configure_webhooks(
            webhookUrl=f"{h.stack.api_url}{h.stack.config.webhook_path}", webhookVersions=["v2"]
        )
    by_order: dict[str, dict[str, bytes]] = {code: {} for code, _ in codes}
    ids = {order_id: code for code, order_id in codes}
    for request in receiver.requests():
        body = request.json()
        if "event" in body:
            data = body.get("data") or {}
            code = data.get("code") or ids.get(data.get("orderId"))
            key = f"v2 {body['event']}"
        elif body.get("webHookType") == "PAYMENT":
            code = ids.get(body.get("orderId"))
            key = "v1 v1.order.PAYMENT"
        else:
            continue
        if code in by_order:
            by_order[code][key] = request.body
    for code, bodies in by_order.items():
        missing = [f"{v} {e}" for v, e in MIX if f"{v} {e}" not in bodies]
        assert not missing, f"{code}: the sandbox sent no {missing}"
    return by_order


def deliveries_for(by_order: dict[str, dict[str, bytes]]) -> list[tuple[str, str, bytes]]:
    """(order code, version, body) for every delivery, shuffled."""
    plan = [
        (code, version, bodies[f"{version} {event}"])
        for code, bodies in by_order.items()
        for version, event in MIX[:DELIVERIES_PER_RENEWAL]
    ]
    random.Random(20261126).shuffle(plan)
    return plan


def test_burst_of_webhook_deliveries(load_harness: Harness, reliability: Any) -> None:
    h = load_harness
    receiver = WebhookReceiver().start()
    try:
        by_order = make_renewals(h, receiver, RENEWALS)
    finally:
        receiver.stop()
    plan = deliveries_for(by_order)
    assert len(plan) == RENEWALS * DELIVERIES_PER_RENEWAL
    h.settle()
    h.read_events()
    events_before = len(h.events)

    url = f"{h.stack.api_url}/webhooks/steppay"
    local = threading.local()
    latencies: list[float] = []
    statuses: dict[int, int] = defaultdict(int)
    lock = threading.Lock()

    def deliver(item: tuple[str, str, bytes]) -> None:
        _, version, body = item
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        headers = {"Content-Type": "application/json"}
        if version == "v2":  # a redelivery is signed again, with the time of sending
            headers["Steppay-Signature"] = sign(body, WEBHOOK_KEY, int(time.time()))
        started = time.perf_counter()
        response = session.post(url, data=body, headers=headers, timeout=60)
        elapsed = (time.perf_counter() - started) * 1000
        with lock:
            latencies.append(elapsed)
            statuses[response.status_code] += 1

    # Warm the intake up first (as a live API is): the local stack starts a worker process per
    # concurrent request on first use, and those cold starts are not the intake's latency.
    barrier = threading.Barrier(CONNECTIONS)

    def refused(_: int) -> int:
        barrier.wait()  # all at once, so the pool grows to its full size
        return requests.post(
            url, data=b"{}", headers={"Content-Type": "application/json"}, timeout=60
        ).status_code

    for _ in range(3):
        with ThreadPoolExecutor(CONNECTIONS) as pool:
            assert set(pool.map(refused, range(CONNECTIONS))) == {400}

    started = time.monotonic()
    with reliability.case(
        SUITE, f"burst: {len(plan)} deliveries, {RENEWALS} renewals, {CONNECTIONS} connections"
    ):
        with ThreadPoolExecutor(CONNECTIONS) as pool:
            list(pool.map(deliver, plan))
        wall = time.monotonic() - started
        p50, p99 = _percentile(latencies, 0.50), _percentile(latencies, 0.99)
        reliability.metric(f"burst intake latency p50 (ms), {len(plan)} deliveries", p50)
        reliability.metric(f"burst intake latency p99 (ms), {len(plan)} deliveries", p99)
        reliability.metric("burst throughput (deliveries/s)", len(plan) / wall)
        print(f"\nburst: {len(plan)} deliveries in {wall:.1f}s; intake p50 {p50:.0f} ms, p99 {p99:.0f} ms")
        assert not [s for s in statuses if s >= 500], dict(statuses)
        assert dict(statuses) == {200: len(plan)}, dict(statuses)

        codes = list(by_order)

        def recorded() -> int:
            return sum(1 for code in codes if (h.record(code) or {}).get("state") == "PAID")

        h.wait_for(lambda: recorded() == len(codes), timeout=300, what="every renewal recorded")
        h.settle(timeout=120)
        h.read_events(max_wait=1.0)
        renewals = [
            e
            for e in h.events[events_before:]
            if e["detail-type"] == "Renewal Payment Verified" and e["detail"]["orderCode"] in by_order
        ]
        grouped = distinct_event_ids(renewals)
        per_order = defaultdict(int)
        for event in renewals:
            per_order[event["detail"]["orderCode"]] += 1
        records = [h.record(code) for code in codes]
        assert all(r is not None and r["state"] == "PAID" and r["order_type"] == "RECURRING" for r in records)
        # Each bound to the checkout that created its subscription, and announced with it.
        assert all(r["registration"]["checkout_id"] for r in records)  # type: ignore[index]
        assert all(e["detail"]["checkoutId"] and e["detail"]["merchantRef"] for e in renewals)
        assert len(records) == RENEWALS
        assert len(renewals) == RENEWALS, f"{len(renewals)} renewal events for {RENEWALS} renewals"
        assert len(grouped) == RENEWALS and set(per_order.values()) == {1}
        reliability.count(SUITE, records=len(records), events=len(renewals))
        reliability.metric("burst renewals recorded / announced", f"{len(records)} / {len(renewals)}")
    # Keep the evidence readable for people as well.
    summary = {
        "deliveries": len(plan),
        "renewals": RENEWALS,
        "p50_ms": round(p50, 1),
        "p99_ms": round(p99, 1),
    }
    h.report.saw(json.dumps(summary))
