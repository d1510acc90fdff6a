"""Whole flows, in-process, counted: what one verified payment and one renewal cost in calls.

Each flow runs through the real handlers, with the events AWS would deliver:

* verified payment: the merchant's backend registers the checkout (`POST /checkouts`, AWS_IAM,
  `CheckoutFunction`: the checkout claimed, StepPay's order created, the pending order stored,
  the checkout opened), the shopper pays (sandbox), the redirect back (`GET /payments/callback`,
  `VerifyFunction`: the order moves to PAID and the checkout is kept), every webhook StepPay
  sends for the order (`WebhookIntakeFunction`), what the intake queued handed to
  `WebhookProcessorFunction` as Lambda's SQS poller would (`bench.backends.QueuePoller`: one
  batch, received and deleted for real), and the publisher for the payment's stream record.
* renewal: StepPay charges an existing subscription (sandbox), every webhook it sends (intake,
  processor), the publisher, and the example subscriber (`EntitlementSubscriberFunction`) for
  the `Renewal Payment Verified` event.

For every function: invocations per flow and their mean wall and CPU time; for every service:
the calls made (DynamoDB operations, SQS, EventBridge, StepPay HTTP calls). DynamoDB stream
records per flow are read from the payments table's stream (DynamoDB Local's) and put through the
publisher's `FilterCriteria` from the template, with the local stack's matcher, as Lambda would:
only the records that pass invoke the publisher (counted as one invocation per record, the
low-traffic worst case: under load, batches of up to 25 share one). The
capacity units DynamoDB Local reports for each successful call (`ReturnConsumedCapacity`,
table and index apart) are kept next to the operation counts, for the cost model.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3

from bench.backends import (
    ROOT,
    SUBSCRIPTION_ITEMS,
    QueuePoller,
    checkout_body,
    checkout_event,
    fresh_webhook,
    http_event,
    stdout_to,
)
from bench.warm import WarmBench, timed
from steppay_local._util import client
from steppay_local.streams import lambda_record
from steppay_local.template import DynamoDBEvent


@dataclass
class FlowTotals:
    flows: int = 0
    invocations: Counter[str] = field(default_factory=Counter)
    wall_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    cpu_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    calls: Counter[str] = field(default_factory=Counter)
    dynamodb: Counter[str] = field(default_factory=Counter)  # see bench.backends.Instruments
    capacity: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # units, same labels
    function_calls: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    http_api_requests: int = 0
    webhooks: int = 0
    stream_records: int = 0
    records_to_publisher: int = 0  # the stream records the publisher's FilterCriteria lets through
    events_published: int = 0
    log_bytes: int = 0  # what the handlers wrote to stdout (CloudWatch Logs ingests it)

    def per_flow(self) -> dict[str, Any]:
        n = max(1, self.flows)
        return {
            "flows": self.flows,
            "http_api_requests": round(self.http_api_requests / n, 2),
            "webhooks": round(self.webhooks / n, 2),
            "stream_records": round(self.stream_records / n, 2),
            "records_to_publisher": round(self.records_to_publisher / n, 2),
            "events_published": round(self.events_published / n, 2),
            "log_bytes": round(self.log_bytes / n),
            "invocations": {k: round(v / n, 2) for k, v in sorted(self.invocations.items())},
            "mean_wall_ms": {k: round(sum(v) / len(v), 2) for k, v in sorted(self.wall_ms.items()) if v},
            "mean_cpu_ms": {k: round(sum(v) / len(v), 2) for k, v in sorted(self.cpu_ms.items()) if v},
            "calls": {k: round(v / n, 2) for k, v in sorted(self.calls.items())},
            "dynamodb": {k: round(v / n, 2) for k, v in sorted(self.dynamodb.items())},
            "dynamodb_capacity": {k: round(v / n, 3) for k, v in sorted(self.capacity.items())},
            # calls per invocation of each function
            "calls_per_invocation": {
                function: {k: round(v / self.invocations[function], 2) for k, v in sorted(calls.items())}
                for function, calls in sorted(self.function_calls.items())
            },
        }


class PublisherStream:
    """The payments table's stream from now on, as the publisher's event source sees it: each new
    record shaped as Lambda's event and matched against the template's FilterCriteria."""

    def __init__(self, backends: Any) -> None:
        endpoint, region = backends.dynamodb.endpoint_url, backends.template.region
        self.region = region
        # Streams API only: the bench's DynamoDB instruments would count (and alter) table calls.
        self._streams = client("dynamodbstreams", endpoint, region)
        [stream] = self._streams.list_streams(TableName=backends.table)["Streams"]
        self.arn = str(stream["StreamArn"])
        [source] = [
            e for e in backends.template.function("PublisherFunction").events if isinstance(e, DynamoDBEvent)
        ]
        self.criteria = source.filter_criteria
        self._iterators: dict[str, str | None] = {
            shard["ShardId"]: self._iterator(shard["ShardId"], "LATEST") for shard in self._shards()
        }

    def _shards(self) -> list[dict[str, Any]]:
        return list(self._streams.describe_stream(StreamArn=self.arn)["StreamDescription"].get("Shards", []))

    def _iterator(self, shard_id: str, kind: str) -> str | None:
        answer = self._streams.get_shard_iterator(
            StreamArn=self.arn, ShardId=shard_id, ShardIteratorType=kind
        )
        iterator = answer.get("ShardIterator")
        return str(iterator) if iterator else None

    def take(self) -> tuple[int, int]:
        """(records written since the last take, how many of them would invoke the publisher)."""
        for shard in self._shards():  # a shard opened since: read it from its start
            self._iterators.setdefault(shard["ShardId"], self._iterator(shard["ShardId"], "TRIM_HORIZON"))
        records: list[dict[str, Any]] = []
        for shard_id, iterator in list(self._iterators.items()):
            while iterator:
                page = self._streams.get_records(ShardIterator=iterator, Limit=1000)
                records += [lambda_record(r, self.arn, self.region) for r in page.get("Records", [])]
                iterator = page.get("NextShardIterator")
                self._iterators[shard_id] = iterator
                if not page.get("Records"):
                    break
        passed = sum(1 for r in records if self.criteria is None or self.criteria.matches(r))
        return len(records), passed


class Flows:
    def __init__(self, bench: WarmBench) -> None:
        self.bench = bench
        self.instruments = bench.instruments
        self.poller = QueuePoller(bench.backends)

    def _calls_now(self) -> Counter[str]:
        snapshot = self.instruments.snapshot()
        found = Counter(snapshot["api_calls"])
        found.update({f"steppay {k}": v for k, v in snapshot["http_calls"].items() if "/_sandbox" not in k})
        return found

    def _invoke(self, totals: FlowTotals, logical_id: str, event: dict[str, Any]) -> Any:
        before = self._calls_now()
        response, wall, cpu = timed(lambda: self.bench.handlers.invoke(logical_id, event))
        after = self._calls_now()
        after.subtract(before)
        totals.function_calls[logical_id].update({k: v for k, v in after.items() if v > 0})
        totals.invocations[logical_id] += 1
        totals.wall_ms[logical_id].append(wall)
        totals.cpu_ms[logical_id].append(cpu)
        return response

    def _count_calls(self, totals: FlowTotals) -> None:
        snapshot = self.instruments.snapshot()
        totals.calls.update(snapshot["api_calls"])
        totals.calls.update(
            {f"steppay {k}": v for k, v in snapshot["http_calls"].items() if "/_sandbox" not in k}
        )
        totals.dynamodb.update(snapshot["dynamodb"])
        for label, units in snapshot["capacity"].items():
            totals.capacity[label] += units

    def _count_stream(self, totals: FlowTotals, stream: PublisherStream) -> None:
        # Read after the flow's calls are counted: the bench's own stream reads are not the flow's.
        records, passed = stream.take()
        totals.stream_records += records
        totals.records_to_publisher += passed

    def _webhooks(self, totals: FlowTotals, deliveries: list[dict[str, Any]]) -> None:
        """Intake of each v2 delivery as API Gateway delivers it, then the processor for what the
        intake queued, a batch at a time as Lambda's SQS poller hands it over (StepPay sends one
        payment's webhooks within a second: they share the event source's batching window)."""
        for delivery in deliveries:
            raw, headers = fresh_webhook(delivery)
            event = http_event("POST", "/webhooks/steppay", body=raw, headers=headers)
            response = self._invoke(totals, "WebhookIntakeFunction", event)
            if response["statusCode"] != 200:
                raise RuntimeError(f"webhook intake answered {response}")
            totals.http_api_requests += 1
            totals.webhooks += 1
        while records := self.poller.receive():
            outcome = self._invoke(totals, "WebhookProcessorFunction", {"Records": records})
            failures = outcome.get("batchItemFailures") or []
            if failures:
                raise RuntimeError(f"webhook processing failed: {outcome}")
            self.poller.done(records, failures)

    def payments(self, count: int) -> dict[str, Any]:
        self.instruments.measure_capacity = True
        try:
            return self._payments(count)
        finally:
            self.instruments.measure_capacity = False

    def renewals(self, count: int) -> dict[str, Any]:
        self.instruments.measure_capacity = True
        try:
            return self._renewals(count)
        finally:
            self.instruments.measure_capacity = False

    def _payments(self, count: int) -> dict[str, Any]:
        totals = FlowTotals()
        bench = self.bench
        stream = bench.stream_events(count)  # publisher inputs (PENDING -> PAID), prepared apart
        tap = PublisherStream(bench.backends)
        for n in range(count):
            bench.control.clear_webhooks()
            self.poller.drain()
            tap.take()  # what came before this flow is not its own
            self.instruments.reset()
            size = bench.log_file.stat().st_size if bench.log_file.exists() else 0
            with stdout_to(bench.log_file):
                # The merchant's backend registers the checkout (a new merchantRef each time).
                response = self._invoke(totals, "CheckoutFunction", checkout_event(checkout_body()))
                if response["statusCode"] != 201:
                    raise RuntimeError(f"checkout registration answered {response}")
                code = json.loads(response["body"])["orderCode"]
                totals.http_api_requests += 1
                bench.control.complete(code)
                query = {"order_code": code, "status": "success"}
                response = self._invoke(
                    totals, "VerifyFunction", http_event("GET", "/payments/callback", query=query)
                )
                if "result=paid" not in response["headers"]["Location"]:
                    raise RuntimeError(f"callback did not find {code} paid")
                totals.http_api_requests += 1
                deliveries = [d for d in bench.control.webhooks() if d["version"] == "v2"]
                self._webhooks(totals, deliveries)
                # Publisher: the PAID transition (the one record that becomes an event).
                publish = self._invoke(totals, "PublisherFunction", stream[n])
                if publish.get("batchItemFailures"):
                    raise RuntimeError(f"publisher failed: {publish}")
                totals.events_published += 1
            totals.log_bytes += bench.log_file.stat().st_size - size
            self._count_calls(totals)
            self._count_stream(totals, tap)
            totals.flows += 1
        return self._with_publisher_invocations(totals)

    def _renewals(self, count: int) -> dict[str, Any]:
        totals = FlowTotals()
        bench = self.bench
        # Setup, not counted: `count` subscriptions, paid and recorded.
        subscriptions: list[int] = []
        with stdout_to(bench.log_file):
            for _ in range(count):
                body = checkout_body("subscriber", items=SUBSCRIPTION_ITEMS)
                response = bench.handlers.invoke("CheckoutFunction", checkout_event(body))
                if response["statusCode"] != 201:
                    raise RuntimeError(f"checkout registration answered {response}")
                code = json.loads(response["body"])["orderCode"]
                bench.control.complete(code)
                verified = bench.handlers.invoke(
                    "VerifyFunction",
                    http_event("POST", "/payments/verify", body=json.dumps({"orderCode": code})),
                )
                if json.loads(verified["body"]).get("verdict") != "PAID":
                    raise RuntimeError(f"{code} not verified paid: {verified['body']}")
                # The verify answer names no subscription: StepPay's order does.
                order = bench.control.http.get(
                    f"{bench.control.url}/api/v1/orders/{code}",
                    headers={"Secret-Token": bench.control.token},
                    timeout=10,
                )
                order.raise_for_status()
                ids = [s["id"] for s in order.json().get("subscriptions") or []]
                if not ids:
                    raise RuntimeError(f"no subscription for {code}: {order.text}")
                subscriptions.append(int(ids[0]))
        stream = bench.stream_events(count)
        tap = PublisherStream(bench.backends)
        entitlement = json.loads(
            (ROOT / "events" / "entitlements" / "renewal-payment-verified.json").read_text("utf-8")
        )
        for n, subscription in enumerate(subscriptions):
            bench.control.clear_webhooks()
            self.poller.drain()
            tap.take()
            self.instruments.reset()
            size = bench.log_file.stat().st_size if bench.log_file.exists() else 0
            with stdout_to(bench.log_file):
                renewed = bench.control.http.post(
                    f"{bench.control.url}/_sandbox/subscriptions/{subscription}/renew",
                    json={"outcome": "success"},
                    timeout=10,
                )
                renewed.raise_for_status()
                deliveries = [d for d in bench.control.webhooks() if d["version"] == "v2"]
                self._webhooks(totals, deliveries)
                self._invoke(totals, "PublisherFunction", stream[n])
                totals.events_published += 1
                event = json.loads(json.dumps(entitlement))
                event["id"] = str(uuid.uuid4())
                event["detail"]["eventId"] = str(uuid.uuid4())
                self._invoke(totals, "EntitlementSubscriberFunction", event)
            totals.log_bytes += bench.log_file.stat().st_size - size
            self._count_calls(totals)
            self._count_stream(totals, tap)
            totals.flows += 1
        return self._with_publisher_invocations(totals)

    @staticmethod
    def _with_publisher_invocations(totals: FlowTotals) -> dict[str, Any]:
        # The publisher was invoked above once per flow, with the transition that is the event
        # (for its timings); what Lambda would invoke is each record the filter lets through.
        result = totals.per_flow()
        result["invocations"]["PublisherFunction"] = result["records_to_publisher"]
        return result


def _attribute_size(value: Mapping[str, Any]) -> float:
    ((kind, data),) = value.items()
    if kind == "S":
        return len(str(data).encode("utf-8"))
    if kind == "N":
        return (len(str(data).lstrip("-").replace(".", "")) + 1) / 2 + 1
    if kind == "B":
        return len(data) if isinstance(data, bytes | bytearray) else len(str(data)) * 3 / 4
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(_attribute_size(v) + 1 for v in data)
    if kind == "M":
        return 3 + sum(len(k.encode()) + _attribute_size(v) + 1 for k, v in data.items())
    return len(json.dumps(data, default=str))  # sets: close enough


def item_size(item: Mapping[str, Mapping[str, Any]]) -> float:
    """DynamoDB's size of an item (attribute names plus values), in bytes."""
    return sum(len(name.encode("utf-8")) + _attribute_size(value) for name, value in item.items())


def item_sizes(tables: list[str], limit: int = 1000) -> dict[str, float]:
    """Mean item size per key prefix (`ORDER`, `WEBHOOK`, ...) of what the run stored."""
    client = boto3.client("dynamodb")
    sizes: dict[str, list[float]] = defaultdict(list)
    for table in tables:
        for item in client.scan(TableName=table, Limit=limit).get("Items", []):
            prefix = str(item.get("pk", {}).get("S", "-")).split("#", 1)[0]
            sizes[prefix].append(item_size(item))
    return {prefix: round(sum(v) / len(v), 1) for prefix, v in sorted(sizes.items())}
