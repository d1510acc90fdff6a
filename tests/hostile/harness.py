"""What the hostile, fault and load suites share: a client of a running local stack that keeps
every answer and event it sees (for the secret scan), snapshots of every table, and the checks
"nothing was written, nothing was announced, nothing leaked".
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import boto3
import requests
from botocore.credentials import Credentials
from fixtures.sandbox import seed_catalogue, seed_order_body

from steppay_merchant import SigV4RequestsAuth

SECRET_TOKEN = "sandbox-secret-token"  # the sandbox's documented local-only values
WEBHOOK_KEY = "sandbox-webhook-key"
SECRETS = (SECRET_TOKEN, WEBHOOK_KEY)
REGION = "ap-northeast-2"
# The merchant backend's credentials on the local stack (its API accepts only these for AWS_IAM).
MERCHANT_AUTH = SigV4RequestsAuth(REGION, Credentials("local", "local"))
RESULT_URLS = {
    "successUrl": "http://localhost:8080/ok",
    "errorUrl": "http://localhost:8080/err",
    "cancelUrl": "http://localhost:8080/cancel",
}
# StepPay calls that look something up (an order, a subscription): counted by `lookup_probe`.
LOOKUP_PATHS = ("/api/v1/orders/*", "/api/v1/subscriptions/*")
PROBE_COUNT = 1_000_000
PROCESSOR = "WebhookProcessorFunction"
WEBHOOK_QUEUES = ("WebhookQueue", "WebhookDeadLetterQueue")

# What an answer must never show: a trace, a secret, or how the bundle is built inside.
LEAK_MARKERS = (
    "Traceback",
    'File "',
    "site-packages",
    "/work/",
    "botocore",
    "boto3",
    "pydantic",
    "errorType",
    "stackTrace",
    "Exception",
    "arn:aws",
    "ORDER#",
    "CHECKOUT#",
    "IDEMPOTENCY#",
    "SUBSCRIPTION#",
    "steppay.",
    "requests.",
    "urllib3",
    *SECRETS,
)

ERROR_CODES = frozenset(
    {
        "invalid_request",
        "malformed_json",
        "malformed_body",
        "redirect_not_allowed",
        "order_not_found",
        "payload_too_large",
        "unsupported_media_type",
        "order_rejected",
        "checkout_not_found",
        "merchant_ref_conflict",
        "idempotency_key_reused",
        "checkout_in_progress",
        "expected_amount_mismatch",
        "steppay_customer_mismatch",
        "webhook_keys_unconfigured",
        "steppay_auth_failed",
        "steppay_unavailable",
        "storage_unavailable",
        "queue_unavailable",
        "invalid_webhook",
        "webhook_v1_disabled",  # a deployment with v1 intake off (the template's default)
        "signature_missing",
        "signature_malformed",
        "signature_stale",
        "signature_mismatch",
        "not_found",
    }
)


def sign(raw: bytes, key: str, timestamp: int) -> str:
    """A `Steppay-Signature` value, computed here independently of the code under test."""
    mac = hmac.new(key.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256).digest()
    return f"timestamp={timestamp},key={base64.b64encode(mac).decode()}"


def compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def leaks(text: str, extra: tuple[str, ...] = ()) -> list[str]:
    return [marker for marker in (*LEAK_MARKERS, *extra) if marker in text]


def _sent_text(path: str, kwargs: dict[str, Any]) -> str:
    """What a request carries that the tests made up: path, query, body (for the card scan)."""
    data = kwargs.get("data")
    body = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data or "")
    made_up = [kwargs.get("params"), kwargs.get("json")]
    return " ".join((path, *(json.dumps(value, default=str) for value in made_up), body))


def plain(value: Any) -> Any:
    """DynamoDB items as JSON-able values (Decimal -> int/str, Binary -> bytes text)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | set | tuple):
        return [plain(v) for v in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if hasattr(value, "value") and isinstance(value.value, bytes):
        return value.value.decode("utf-8", errors="replace")
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


@dataclass
class Harness:
    """A tester's hands on a running `LocalStack`."""

    stack: Any
    report: Any  # fixtures.report.ReliabilityReport
    http: requests.Session = field(default_factory=requests.Session)
    events: list[dict[str, Any]] = field(default_factory=list)
    processor_mark: int = 0  # the processor's log lines before the last case was sent
    fixtures: dict[str, Any] = field(default_factory=dict)  # set-ups shared by several cases
    dirty: bool = True  # False only right after a case left everything settled and drained

    def shared(self, name: str, make: Callable[[Harness], Any]) -> Any:
        """A set-up made once (an unpaid order...) and reused by every case that only reads it."""
        if name not in self.fixtures:
            self.fixtures[name] = make(self)
        return self.fixtures[name]

    def __post_init__(self) -> None:
        self.report.watch_logs(self.stack.logs)
        self._internal = tuple(
            text
            for text in (
                self.stack.dynamodb_endpoint,
                self.stack.moto_endpoint,
                *self.stack.table_names.values(),
            )
            if text
        )

    # -- the bundle's API ----------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 60)
        kwargs.setdefault("allow_redirects", False)
        self.report.sent(_sent_text(path, kwargs))
        response = self.http.request(method, f"{self.stack.api_url}{path}", **kwargs)
        self.report.saw(response.text)
        self.report.saw(json.dumps(dict(response.headers)))
        return response

    def post(self, path: str, body: Any, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, json=body, **kwargs)

    def post_raw(
        self,
        path: str,
        data: bytes,
        content_type: str | None = "application/json",
        auth: Any = None,
        **headers: str,
    ) -> requests.Response:
        sent = dict(headers)
        if content_type is not None:
            sent["Content-Type"] = content_type
        return self.request("POST", path, data=data, headers=sent, auth=auth)

    def backend(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A request of the merchant's backend: SigV4-signed with the local stack's credentials."""
        kwargs.setdefault("auth", MERCHANT_AUTH)
        return self.request(method, path, **kwargs)

    def backend_post(self, path: str, body: Any, **kwargs: Any) -> requests.Response:
        return self.backend("POST", path, json=body, **kwargs)

    def webhook(self, raw: bytes, signature: str | None = None, **headers: str) -> requests.Response:
        extra = dict(headers)
        if signature is not None:
            extra["Steppay-Signature"] = signature
        return self.post_raw("/webhooks/steppay", raw, **extra)

    def signed_webhook(self, body: dict[str, Any]) -> requests.Response:
        raw = compact(body)
        return self.webhook(raw, sign(raw, WEBHOOK_KEY, int(time.time())))

    # -- the sandbox (StepPay) ------------------------------------------------------------

    @property
    def sandbox(self) -> Any:
        return self.stack.sandbox

    def steppay(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Secret-Token": SECRET_TOKEN, **kwargs.pop("headers", {})}
        kwargs.setdefault("timeout", 30)
        return self.http.request(method, f"{self.stack.sandbox_url}{path}", headers=headers, **kwargs)

    def control(self, path: str, body: Any | None = None, method: str = "POST") -> requests.Response:
        return self.http.request(method, f"{self.stack.sandbox_url}/_sandbox{path}", json=body, timeout=30)

    def fault(self, **fault: Any) -> None:
        response = self.control("/faults", fault)
        assert response.status_code in (200, 201), response.text

    def clear_faults(self) -> None:
        self.control("/faults", method="DELETE")

    def catalogue(self) -> dict[str, Any]:
        """The seed catalogue (read once: the sandbox's seed never changes during a run)."""
        return dict(self.shared("catalogue", lambda h: seed_catalogue(h.steppay)))

    def order_body(self, kind: str = "one_time") -> dict[str, Any]:
        """A body for StepPay's own order API (what a foreign integration would send StepPay)."""
        return seed_order_body(self.catalogue(), kind)

    def checkout_items(self, kind: str = "one_time", **item: Any) -> list[dict[str, Any]]:
        product, price = self.catalogue()[kind]
        line = {"productCode": product["code"], "priceCode": price["code"], "currency": "KRW", "quantity": 1}
        return [{**line, **item}]

    def checkout_body(self, kind: str = "one_time", **overrides: Any) -> dict[str, Any]:
        """What the merchant's backend registers: the seed customer buys one line of the catalogue."""
        body: dict[str, Any] = {
            "merchantRef": f"hostile-{uuid.uuid4().hex[:16]}",
            "customerId": self.catalogue()["customer"]["id"],
            "items": self.checkout_items(kind),
            **RESULT_URLS,
            "lang": "ko",
        }
        body.update(overrides)
        return body

    def checkout(
        self, kind: str = "one_time", headers: dict[str, str] | None = None, **overrides: Any
    ) -> dict[str, Any]:
        """A checkout registered by the backend (a PENDING record exists); its answer plus `body`."""
        body = self.checkout_body(kind, **overrides)
        response = self.backend_post("/checkouts", body, headers=headers or {})
        assert response.status_code == 201, response.text
        return {**response.json(), "body": body, "headers": dict(headers or {})}

    pay_link = checkout  # the shopper's side of a checkout is its pay link

    def steppay_order(self, kind: str = "one_time") -> dict[str, Any]:
        """An order created at StepPay directly (the bundle knows nothing of it)."""
        response = self.steppay("POST", "/api/v1/orders", json=self.order_body(kind))
        assert response.status_code == 201, response.text
        return dict(response.json())

    def complete(self, order_code: str, outcome: str = "success") -> dict[str, Any]:
        response = self.control(f"/orders/{order_code}/complete", {"outcome": outcome})
        assert response.status_code == 200, response.text
        return dict(response.json())

    def configure_webhooks(self, **config: Any) -> None:
        response = self.control("/config", config)
        assert response.status_code == 200, response.text

    @contextlib.contextmanager
    def webhooks_off(self) -> Iterator[None]:
        """StepPay's own webhooks are not sent meanwhile (only what the test does can record)."""
        self.configure_webhooks(webhookUrl=None)
        try:
            yield
        finally:
            self.configure_webhooks(webhookUrl=f"{self.stack.api_url}{self.stack.config.webhook_path}")

    def sandbox_faults(self) -> list[dict[str, Any]]:
        return list(self.control("/faults", method="GET").json()["faults"])

    @contextlib.contextmanager
    def lookup_probe(self) -> Iterator[Callable[[], int]]:
        """Count the bundle's lookups at StepPay (GET of an order or subscription) meanwhile.

        The sandbox keeps no request log; an inbound fault that only delays by 1 ms, with a huge
        count, is used up once per matching request: its remaining count is the counter. Other
        faults are cleared on the way out (no case adds its own while probing).
        """
        assert not [f for f in self.sandbox_faults() if f["kind"] == "inbound"], "probe on top of faults"
        for path in LOOKUP_PATHS:
            self.fault(path=path, method="GET", latencyMs=1, count=PROBE_COUNT)

        def used() -> int:
            probes = [
                f for f in self.sandbox_faults() if f["kind"] == "inbound" and f["path"] in LOOKUP_PATHS
            ]
            return sum(PROBE_COUNT - f["count"] for f in probes) + PROBE_COUNT * (
                len(LOOKUP_PATHS) - len(probes)
            )

        try:
            yield used
        finally:
            self.clear_faults()

    # -- what is stored ------------------------------------------------------------------

    def _resource(self) -> Any:
        return boto3.resource(
            "dynamodb",
            endpoint_url=self.stack.dynamodb_endpoint,
            region_name=REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def table(self, logical_id: str = "PaymentsTable") -> Any:
        return self._resource().Table(self.stack.table_names[logical_id])

    def items(self, logical_id: str = "PaymentsTable") -> list[dict[str, Any]]:
        table = self.table(logical_id)
        kwargs: dict[str, Any] = {"ConsistentRead": True}
        found: list[dict[str, Any]] = []
        while True:
            page = table.scan(**kwargs)
            found.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return found
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def snapshot(self) -> dict[str, str]:
        """Every item of every table, keyed by table and key, as canonical JSON, and how many
        messages the webhook queues hold (a webhook left for a retry or dead-lettered is a change)."""
        result: dict[str, str] = {}
        for logical_id in sorted(self.stack.table_names):
            for item in self.items(logical_id):
                key = f"{logical_id}:{item.get('pk')}:{item.get('sk', '')}"
                result[key] = json.dumps(plain(item), sort_keys=True, default=str)
        for queue in WEBHOOK_QUEUES:
            result[f"sqs:{queue}"] = str(self.webhook_queue_depth(queue))
        return result

    def record(self, order_code: str) -> dict[str, Any] | None:
        item = self.table().get_item(Key={"pk": f"ORDER#{order_code}", "sk": "ORDER"}, ConsistentRead=True)
        return item.get("Item")

    # -- what the webhook processor did (its own log: the queue, not a table, holds webhooks) --

    def mark_processor_log(self) -> int:
        self.processor_mark = len(self.stack.logs.lines(PROCESSOR))
        return self.processor_mark

    def processed_webhooks(self, since: int | None = None) -> list[dict[str, Any]]:
        """What the processor logged for each queued webhook since a mark: event, hint, state, detail."""
        start = self.processor_mark if since is None else since
        return self.stack.logs.records(PROCESSOR, "Webhook processed", start)

    def webhook_queue_depth(self, logical_id: str = "WebhookQueue") -> int:
        return int(self.stack.queue_depth(logical_id))

    def stream_changes(self, pk: str, logical_id: str = "PaymentsTable") -> list[dict[str, Any]]:
        """Every write the table's stream holds for one item (its INSERT/MODIFY records), oldest first.

        Read directly from DynamoDB Local's stream: this counts writes, not just final states.
        """
        streams = boto3.client(
            "dynamodbstreams",
            endpoint_url=self.stack.dynamodb_endpoint,
            region_name=REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        ddb = self._resource().meta.client
        arn = ddb.describe_table(TableName=self.stack.table_names[logical_id])["Table"]["LatestStreamArn"]
        description = streams.describe_stream(StreamArn=arn)["StreamDescription"]
        found: list[dict[str, Any]] = []
        for shard in description.get("Shards", []):
            iterator = streams.get_shard_iterator(
                StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            ).get("ShardIterator")
            while iterator:
                page = streams.get_records(ShardIterator=iterator, Limit=1000)
                records = page.get("Records", [])
                found += [r for r in records if r["dynamodb"]["Keys"]["pk"]["S"] == pk]
                if not records:
                    break
                iterator = page.get("NextShardIterator")
        return found

    # -- what was announced --------------------------------------------------------------

    def read_events(self, max_wait: float = 0.0) -> list[dict[str, Any]]:
        """New events from the tap (also kept in `self.events`)."""
        fresh = self.stack.read_tap(max_wait)
        for event in fresh:
            self.report.saw(json.dumps(event))
        self.events.extend(fresh)
        return fresh

    def events_where(self, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        self.read_events()
        return [e for e in self.events if predicate(e)]

    def events_for(self, order_code: str, detail_type: str | None = None) -> list[dict[str, Any]]:
        return self.events_where(
            lambda e: (
                e.get("detail", {}).get("orderCode") == order_code
                and (detail_type is None or e.get("detail-type") == detail_type)
            )
        )

    # -- waiting -------------------------------------------------------------------------

    def settle(self, timeout: float = 60.0) -> None:
        """Everything in flight has happened: webhooks sent, queues and the stream drained."""
        if self.sandbox is not None:
            self.sandbox.wait_for_webhooks(timeout)
        self.stack.wait_idle(timeout)
        if self.sandbox is not None and self.sandbox.wait_for_webhooks(0.1):
            self.stack.wait_idle(timeout)

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(0.2)

    def wait_for_events(
        self, order_code: str, count: int, detail_type: str | None = None, timeout: float = 60.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.events_for(order_code, detail_type)
            if len(found) >= count or time.monotonic() > deadline:
                return found
            self.read_events(max_wait=0.5)

    # -- checks --------------------------------------------------------------------------

    def assert_no_leak(self, response: requests.Response) -> None:
        text = response.text + "\n" + "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        found = leaks(text, self._internal)
        assert not found, f"the answer shows {found}: {response.text[:300]!r}"

    def assert_error(self, response: requests.Response, status: int, code: str) -> None:
        assert response.status_code == status, f"{response.status_code} {response.text[:300]}"
        body = response.json()
        assert set(body) == {"error"}, body
        assert set(body["error"]) == {"code", "message"}, body
        assert body["error"]["code"] == code, body
        assert code in ERROR_CODES
        self.assert_no_leak(response)


def begin(h: Harness) -> tuple[int, dict[str, str]]:
    """Start from a settled state: (events seen so far, snapshot of every table)."""
    if h.dirty:
        h.settle()
        h.read_events()
    h.dirty = True
    return len(h.events), h.snapshot()


def finish(h: Harness, events_before: int, before: dict[str, str]) -> None:
    """Nothing was written and nothing was announced since `begin`."""
    h.settle()
    after = h.snapshot()
    changed = sorted(key for key in set(before) | set(after) if before.get(key) != after.get(key))
    assert not changed, f"records written: {changed[:5]}"
    h.read_events()
    assert h.events[events_before:] == [], f"events published: {h.events[events_before:]}"
    h.dirty = False


def steppay_order_count(h: Harness) -> int:
    return int(h.steppay("GET", "/api/v1/orders", params={"size": 1}).json()["totalElements"])


def newest_steppay_orders(h: Harness, count: int) -> list[dict[str, Any]]:
    """StepPay's `count` most recently created orders, newest first (full detail)."""
    if count <= 0:
        return []
    params = {"size": count, "sort": "id", "sortDir": "DESC"}
    listed = h.steppay("GET", "/api/v1/orders", params=params).json()["content"]
    return [dict(h.steppay("GET", f"/api/v1/orders/{o['orderCode']}").json()) for o in listed]


def distinct_event_ids(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Events grouped by their detail's eventId; duplicates must be identical in detail."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        grouped.setdefault(str(event["detail"]["eventId"]), []).append(event)
    for event_id, copies in grouped.items():
        details = {json.dumps(c["detail"], sort_keys=True) for c in copies}
        assert len(details) == 1, f"event {event_id} was published with different details: {details}"
    return grouped


def restore_sandbox(stack: Any) -> None:
    """Faults cleared, webhooks to the stack's API, v2 only, quick retries (the session defaults)."""
    sandbox = stack.sandbox
    if sandbox is None:
        return
    sandbox.faults.clear()
    sandbox.configure_webhooks(
        url=f"{stack.api_url}{stack.config.webhook_path}", versions=["v2"], retry_delays=[0.2, 0.5]
    )
