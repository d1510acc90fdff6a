"""The backends every warm figure is measured against, and the instruments that count I/O.

DynamoDB Local, moto (EventBridge, SQS) and the StepPay sandbox run on 127.0.0.1 with no added
latency; the tables, queues and bus come from `template.yaml` (the local stack's own code), and
the functions' environment is the one the local stack gives them.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import os
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from steppay_local.dynamodb import DynamoDBLocal
from steppay_local.moto_server import MotoServer
from steppay_local.template import Infrastructure, Template, create_infrastructure
from steppay_local.workers import function_environment
from steppay_sandbox.server import SandboxServer
from steppay_sandbox.webhooks import sign

ROOT = Path(__file__).resolve().parents[1]
REGION = "ap-northeast-2"
SECRET_TOKEN = "bench-secret-token"  # noqa: S105 - a local sandbox's token, nothing real
WEBHOOK_KEY = "bench-webhook-key"
STACK_NAME = "steppay-bench"
# What the merchant's backend registers (`POST /checkouts`): one line of the sandbox's seed
# catalogue for its seed customer. `checkout_body` adds the merchantRef, unique per call.
CHECKOUT_BODY: dict[str, Any] = {
    "customerId": 1001,
    "items": [
        {
            "productCode": "product_onetime_demo",
            "priceCode": "price_onetime_demo",
            "currency": "KRW",
            "quantity": 1,
        }
    ],
    "successUrl": "http://127.0.0.1:3000/payments/callback",
    "errorUrl": "http://127.0.0.1:3000/payments/callback",
    "lang": "ko",
}
SUBSCRIPTION_ITEMS: list[dict[str, Any]] = [
    {
        "productCode": "product_subscription_demo",
        "priceCode": "price_monthly_demo",
        "currency": "KRW",
        "quantity": 1,
    }
]


def new_merchant_ref(prefix: str = "bench") -> str:
    """A merchantRef no earlier registration used (one checkout per merchantRef)."""
    return f"{prefix}-{uuid.uuid4().hex}"


def checkout_body(prefix: str = "bench", **overrides: Any) -> dict[str, Any]:
    """A `POST /checkouts` body with a fresh merchantRef."""
    return {**copy.deepcopy(CHECKOUT_BODY), "merchantRef": new_merchant_ref(prefix), **overrides}


@dataclass
class Backends:
    dynamodb: DynamoDBLocal
    moto: MotoServer
    sandbox: SandboxServer
    template: Template
    infra: Infrastructure
    environments: dict[str, dict[str, str]]  # logical id -> the function's environment
    handlers: dict[str, str]  # logical id -> module name
    code_dirs: dict[str, Path]
    memory_sizes: dict[str, int]

    @property
    def table(self) -> str:
        return self.infra.table_names["PaymentsTable"]

    @property
    def queue_url(self) -> str:
        return self.infra.queue_urls["WebhookQueue"]

    @property
    def bus(self) -> str:
        return self.infra.bus_names["EventBus"]

    def stop(self) -> None:
        for stop in (self.sandbox.stop, self.moto.stop, self.dynamodb.stop):
            with contextlib.suppress(Exception):
                stop()


def start_backends() -> Backends:
    dynamodb = DynamoDBLocal(port=0, data_dir=None).start()
    moto = MotoServer(port=0).start()
    sandbox = SandboxServer(
        port=0, secret_token=SECRET_TOKEN, webhook_key=WEBHOOK_KEY, webhook_url=None
    ).start()
    overrides = {
        "Stage": "local",
        "StepPayBaseUrl": sandbox.url,
        "SecretsStore": "ssm",
        "AllowedRedirectHosts": "localhost,127.0.0.1",
        "ResultPageUrl": "http://127.0.0.1:8080/result.html",
        "AllowedOrigins": "http://127.0.0.1:8080",
    }
    template = Template(
        ROOT / "template.yaml",
        overrides,
        stack_name=STACK_NAME,
        region=REGION,
        moto_endpoint=moto.endpoint_url,
    )
    infra = create_infrastructure(template, dynamodb.endpoint_url, moto.endpoint_url)
    environments, handlers, code_dirs, memory = {}, {}, {}, {}
    for spec in template.functions():
        environments[spec.logical_id] = function_environment(
            spec,
            region=REGION,
            dynamodb_endpoint=dynamodb.endpoint_url,
            moto_endpoint=moto.endpoint_url,
            overrides={
                "STEPPAY_SECRET_TOKEN_PARAM": "",
                "STEPPAY_WEBHOOK_KEYS_PARAM": "",
                "STEPPAY_SECRET_TOKEN": SECRET_TOKEN,
                "STEPPAY_WEBHOOK_KEYS": WEBHOOK_KEY,
            },
        )
        handlers[spec.logical_id] = spec.handler.split(".", 1)[0]
        code_dirs[spec.logical_id] = spec.code_dir
        memory[spec.logical_id] = spec.memory_size
    return Backends(dynamodb, moto, sandbox, template, infra, environments, handlers, code_dirs, memory)


# -- the webhook queue, read as Lambda's SQS poller reads it ----------------------------------------


class QueuePoller:
    """What Lambda's SQS event source does for the processor: receive a batch, hand it over as
    Lambda's SQS event, delete it (one DeleteMessageBatch) when the invocation reports no failure.

    The calls go through boto3 in this process, so the instruments count them with the flow's:
    the intake's SendMessage, then one ReceiveMessage and one DeleteMessageBatch per batch.
    Messages carry whatever the intake queued: the bench never builds a message itself.
    """

    def __init__(self, backends: Backends) -> None:
        import boto3

        self.queue_url = backends.queue_url
        self.client = boto3.client(
            "sqs",
            endpoint_url=backends.moto.endpoint_url,
            region_name=REGION,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",  # noqa: S106 - moto's, nothing real
        )
        # The template may delay deliveries (DelaySeconds) so that the shopper's callback records
        # a payment first; the bench takes each batch at once instead of sleeping through it.
        self.client.set_queue_attributes(QueueUrl=self.queue_url, Attributes={"DelaySeconds": "0"})

    def drain(self) -> int:
        """Drop what earlier phases left queued (not counted: the flows reset the instruments after)."""
        dropped = 0
        while batch := self.client.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            self._delete(batch)
            dropped += len(batch)
        return dropped

    def receive(self, batch_size: int = 10) -> list[dict[str, Any]]:
        """One batch, as the SQS records of Lambda's event (empty when nothing is queued)."""
        messages = self.client.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=batch_size, AttributeNames=["All"]
        ).get("Messages", [])
        return [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:webhooks",
                "awsRegion": REGION,
            }
            for m in messages
        ]

    def done(self, records: list[dict[str, Any]], failures: list[dict[str, str]]) -> None:
        failed = {f["itemIdentifier"] for f in failures}
        kept = [r for r in records if r["messageId"] not in failed]
        if kept:
            self._delete([{"MessageId": r["messageId"], "ReceiptHandle": r["receiptHandle"]} for r in kept])

    def _delete(self, messages: Sequence[Mapping[str, Any]]) -> None:
        self.client.delete_message_batch(
            QueueUrl=self.queue_url,
            Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)],
        )


# -- the sandbox: orders and webhooks -------------------------------------------------------------


class SandboxControl:
    """Setup calls to the sandbox (never timed): settle orders, read the webhooks it would send."""

    def __init__(self, url: str, token: str = SECRET_TOKEN) -> None:
        self.url = url.rstrip("/")
        self.http = requests.Session()
        self.token = token

    def complete(self, order_code: str, outcome: str = "success") -> None:
        response = self.http.post(
            f"{self.url}/_sandbox/orders/{order_code}/complete", json={"outcome": outcome}, timeout=10
        )
        response.raise_for_status()

    def webhooks(self, **filters: str) -> list[dict[str, Any]]:
        response = self.http.get(f"{self.url}/_sandbox/webhooks", params=filters, timeout=30)
        response.raise_for_status()
        deliveries: list[dict[str, Any]] = response.json()["deliveries"]
        return deliveries

    def clear_webhooks(self) -> None:
        self.http.delete(f"{self.url}/_sandbox/webhooks", timeout=10).raise_for_status()


def checkout_event(body: Mapping[str, Any]) -> dict[str, Any]:
    """`POST /checkouts` as API Gateway hands it to the function, after its IAM check."""
    return http_event("POST", "/checkouts", body=json.dumps(body), iam=True)


def fresh_webhook(delivery: Mapping[str, Any], key: str = WEBHOOK_KEY) -> tuple[bytes, dict[str, str]]:
    """A recorded v2 delivery, signed again now (the intake refuses stale signatures)."""
    body = json.loads(delivery["body"])
    body["timestamp"] = int(time.time())
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    headers = {
        "content-type": "application/json",
        "steppay-signature": sign(raw, key, body["timestamp"]),
        "user-agent": "ReactorNetty/1.1.6",
    }
    return raw, headers


# -- events and context ---------------------------------------------------------------------------


def http_event(
    method: str,
    path: str,
    *,
    body: bytes | str | None = None,
    query: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    iam: bool = False,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event, as API Gateway sends it.

    `iam`: an AWS_IAM route (`/checkouts`). API Gateway checks the SigV4 signature before the
    function runs and passes the caller's identity in `requestContext.authorizer.iam`; the
    function itself checks nothing, so an in-process event needs no signature.
    """
    raw_query = "&".join(f"{k}={v}" for k, v in (query or {}).items())
    all_headers = {
        "accept": "application/json",
        "host": "abc123.execute-api.ap-northeast-2.amazonaws.com",
        "user-agent": "Mozilla/5.0",
        "x-forwarded-for": "203.0.113.7",
        "x-forwarded-proto": "https",
        "x-forwarded-port": "443",
        **({"content-type": "application/json"} if body is not None else {}),
        **{k.lower(): v for k, v in (headers or {}).items()},
    }
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": all_headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.ap-northeast-2.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "Mozilla/5.0",
            },
            "requestId": base64.b64encode(uuid.uuid4().bytes[:10]).decode(),
            "routeKey": f"{method} {path}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if iam:
        from steppay_local.api import iam_identity

        event["requestContext"]["authorizer"] = iam_identity()
    if query:
        event["queryStringParameters"] = dict(query)
    if body is not None:
        event["body"] = body.decode("utf-8") if isinstance(body, bytes) else body
    return event


class Context:
    """The parts of Lambda's context object the handlers (and Powertools) read."""

    def __init__(self, function_name: str, memory: int = 512) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "bench"
        self._deadline = time.monotonic() + 30

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - time.monotonic()) * 1000)


# -- instruments ----------------------------------------------------------------------------------


# Literal segments of StepPay's API paths; any other segment is an identifier.
PATH_WORDS = frozenset(
    {
        "",
        "api",
        "v1",
        "orders",
        "subscriptions",
        "payment",
        "receipt",
        "public",
        "pay",
        "products",
        "customers",
        "cancel",
        "_sandbox",
        "complete",
        "renew",
        "webhooks",
    }
)


@dataclass
class Instruments:
    """Counts, process-wide: AWS API calls, boto3 clients created, new outgoing TCP connections."""

    api_calls: Counter[str] = field(default_factory=Counter)  # "dynamodb.PutItem"
    # DynamoDB item operations: "PutItem|<table>|<key prefix>|ok" (or "|failed": a condition failed)
    dynamodb: Counter[str] = field(default_factory=Counter)
    clients: Counter[str] = field(default_factory=Counter)  # service name
    connections: Counter[str] = field(default_factory=Counter)  # "host:port"
    http_calls: Counter[str] = field(default_factory=Counter)  # "GET /api/v1/orders/{..}"
    # When a list: every DynamoDB and SQS call, as (service, operation, low-level params), and
    # every StepPay request (path and body).
    capture: list[tuple[str, str, dict[str, Any]]] | None = None
    # When True, DynamoDB calls ask for ReturnConsumedCapacity=INDEXES and what DynamoDB Local
    # reports is added up by label (as in `dynamodb`): the table's units and each index's.
    # Off for the timed runs (it makes each answer a little longer).
    measure_capacity: bool = False
    # "<label>|ok" (the table's units) or "<label>|ok|<index>" (an index's)
    capacity: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self._lock:
            self.api_calls.clear()
            self.dynamodb.clear()
            self.clients.clear()
            self.connections.clear()
            self.http_calls.clear()
            self.capacity.clear()

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {
                "api_calls": dict(self.api_calls),
                "dynamodb": dict(self.dynamodb),
                "clients": dict(self.clients),
                "connections": dict(self.connections),
                "http_calls": dict(self.http_calls),
                "capacity": dict(self.capacity),
            }


def install_instruments() -> Instruments:
    """Wrap botocore and urllib3 once, for this process."""
    import botocore.client
    import botocore.exceptions
    import botocore.session
    import urllib3.connection

    found = Instruments()
    make_api_call = botocore.client.BaseClient._make_api_call  # type: ignore[attr-defined]
    create_client = botocore.session.Session.create_client
    connect = urllib3.connection.HTTPConnection.connect
    send = requests.Session.send

    def counted_api_call(self: Any, operation_name: str, api_params: Any) -> Any:
        service = self.meta.service_model.service_name
        with found._lock:
            found.api_calls[f"{service}.{operation_name}"] += 1
            if found.capture is not None and service in ("dynamodb", "sqs"):
                found.capture.append((service, operation_name, low_level(api_params)))
        if service != "dynamodb" or not isinstance(api_params, dict):
            return make_api_call(self, operation_name, api_params)
        key = api_params.get("Key") or api_params.get("Item") or {}
        pk = key.get("pk", {}) if isinstance(key, dict) else {}
        prefix = str(pk.get("S", "") if isinstance(pk, dict) else pk).split("#", 1)[0] or "-"
        label = f"{operation_name}|{api_params.get('TableName', '-')}|{prefix}"
        measured = found.measure_capacity and "ReturnConsumedCapacity" not in api_params
        if measured:
            api_params = {**api_params, "ReturnConsumedCapacity": "INDEXES"}
        try:
            response = make_api_call(self, operation_name, api_params)
        except botocore.exceptions.ClientError as exc:
            failed = exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"
            with found._lock:
                found.dynamodb[f"{label}|{'failed' if failed else 'error'}"] += 1
            raise
        consumed = response.pop("ConsumedCapacity", None) if measured else None
        with found._lock:
            found.dynamodb[f"{label}|ok"] += 1
            for entry in consumed if isinstance(consumed, list) else [consumed] if consumed else []:
                table = entry.get("Table", {}).get("CapacityUnits", entry.get("CapacityUnits", 0.0))
                found.capacity[f"{label}|ok"] += float(table)
                for index, units in (entry.get("GlobalSecondaryIndexes") or {}).items():
                    found.capacity[f"{label}|ok|{index}"] += float(units.get("CapacityUnits", 0.0))
        return response

    def counted_create_client(self: Any, service_name: str, *args: Any, **kwargs: Any) -> Any:
        with found._lock:
            found.clients[service_name] += 1
        return create_client(self, service_name, *args, **kwargs)

    def counted_connect(self: Any) -> None:
        with found._lock:
            found.connections[f"{self.host}:{self.port}"] += 1
        connect(self)

    def counted_send(self: Any, request: Any, **kwargs: Any) -> Any:
        path = urlsplit(request.url).path
        parts = [p if p in PATH_WORDS else "{..}" for p in path.split("/")]
        with found._lock:
            found.http_calls[f"{request.method} {'/'.join(parts)}"] += 1
            if found.capture is not None and "/_sandbox" not in path:
                found.capture.append(("steppay", str(request.method), {"path": path, "body": request.body}))
        return send(self, request, **kwargs)

    botocore.client.BaseClient._make_api_call = counted_api_call  # type: ignore[attr-defined]
    botocore.session.Session.create_client = counted_create_client  # type: ignore[method-assign]
    urllib3.connection.HTTPConnection.connect = counted_connect  # type: ignore[method-assign]
    requests.Session.send = counted_send  # type: ignore[method-assign]
    return found


def low_level(params: Mapping[str, Any]) -> dict[str, Any]:
    """DynamoDB parameters as a low-level client takes them (boto3's resource layer passes
    plain Python values; the client's are typed: {"S": ...})."""
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    out = copy.deepcopy(dict(params))
    for name in ("Key", "Item", "ExpressionAttributeValues", "ExclusiveStartKey"):
        values = out.get(name)
        if isinstance(values, dict) and values and not _is_typed(next(iter(values.values()))):
            out[name] = {k: serializer.serialize(v) for k, v in values.items()}
    return out


def _is_typed(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and len(value) == 1
        and next(iter(value)) in {"S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"}
    )


class ConnectionCounter:
    """New TCP connections a `SandboxServer` (or any socketserver) accepts, by client address."""

    def __init__(self, server: Any) -> None:
        httpd = server._httpd  # the sandbox keeps its socketserver here
        self.accepted: list[tuple[str, int]] = []
        original = httpd.process_request

        def process_request(request: Any, client_address: Any) -> None:
            self.accepted.append(tuple(client_address[:2]))
            original(request, client_address)

        httpd.process_request = process_request

    def reset(self) -> None:
        self.accepted.clear()

    @property
    def count(self) -> int:
        return len(self.accepted)


@contextlib.contextmanager
def stdout_to(path: Path) -> Iterator[Path]:
    """Send fd 1 (the handlers' log lines and metrics) to a file; counts what Lambda would ingest."""
    sys.stdout.flush()
    saved = os.dup(1)
    with path.open("ab") as sink:
        os.dup2(sink.fileno(), 1)
        try:
            yield path
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
