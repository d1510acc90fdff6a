"""Warm latency in-process: each HTTP handler, invoked as Lambda invokes it, next to its floor.

The floor of an endpoint is a minimal script making the same I/O calls with raw boto3 (low-level
clients) and requests: the same StepPay requests, the same DynamoDB operations on items of the
same shape, the same SQS message. Everything above it is the handler's own work: Powertools'
resolver and validation, our models, logging and metrics (written to a file, as Lambda would
ship them), boto3's type (de)serialisers.

Handler and floor calls alternate, their order flipping every iteration, against DynamoDB
Local, moto and the sandbox on 127.0.0.1. Every handler answer is checked (status code); the
figures are wall time per call, plus the handler thread's CPU time (what a smaller Lambda
memory size would slow down).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import math
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import requests

from bench.backends import (
    ROOT,
    Backends,
    ConnectionCounter,
    Context,
    Instruments,
    SandboxControl,
    checkout_body,
    checkout_event,
    fresh_webhook,
    http_event,
    new_merchant_ref,
    stdout_to,
)

HTTP_FUNCTIONS = {
    "checkout": "CheckoutFunction",
    "verify": "VerifyFunction",
    "callback": "VerifyFunction",
    "webhook": "WebhookIntakeFunction",
}
ENDPOINTS = {
    "checkout": "POST /checkouts",
    "verify": "POST /payments/verify",
    "callback": "GET /payments/callback",
    "webhook": "POST /webhooks/steppay",
}
STREAM_ARN = "arn:aws:dynamodb:ap-northeast-2:123456789012:table/bench/stream/x"
EXPECTED_STATUS = {"checkout": 201, "verify": 200, "callback": 303, "webhook": 200}


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


@dataclass
class Series:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def add(self, wall: float, cpu: float) -> None:
        self.wall.append(wall)
        self.cpu.append(cpu)

    def summary(self) -> dict[str, float]:
        return {
            "n": len(self.wall),
            "p50_ms": round(percentile(self.wall, 50), 2),
            "p99_ms": round(percentile(self.wall, 99), 2),
            "mean_ms": round(statistics.fmean(self.wall), 2) if self.wall else float("nan"),
            "cpu_p50_ms": round(percentile(self.cpu, 50), 2),
            "cpu_mean_ms": round(statistics.fmean(self.cpu), 2) if self.cpu else float("nan"),
        }


def timed(call: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.thread_time()
    result = call()
    return result, (time.perf_counter() - wall) * 1000, (time.thread_time() - cpu) * 1000


# -- the handlers, in this process ----------------------------------------------------------------


class Handlers:
    """The real handler modules, imported with their functions' environment."""

    def __init__(self, backends: Backends) -> None:
        env = dict(backends.environments["VerifyFunction"])
        for key in ("PATH", "PYTHONPATH", "LAMBDA_TASK_ROOT", "_HANDLER", "AWS_LAMBDA_FUNCTION_NAME"):
            env.pop(key, None)
        os.environ.update(env)
        for directory in [ROOT / "layers" / "steppay", *backends.code_dirs.values()]:
            if str(directory) not in sys.path:
                sys.path.insert(0, str(directory))
        self.backends = backends
        self.modules: dict[str, Any] = {}
        for logical_id, module in backends.handlers.items():
            self.modules[logical_id] = importlib.import_module(module)

    def invoke(self, logical_id: str, event: dict[str, Any]) -> Any:
        os.environ["AWS_LAMBDA_FUNCTION_NAME"] = logical_id
        context = Context(logical_id, self.backends.memory_sizes[logical_id])
        return self.modules[logical_id].lambda_handler(event, context)


# -- the floor: a minimal script with raw boto3 and requests ---------------------------------------


def _substitute(
    value: Any, strings: Mapping[str, str], numbers: Mapping[str, str], data: Mapping[bytes, bytes]
) -> Any:
    if isinstance(value, str):
        for old, new in strings.items():
            value = value.replace(old, new)
        return value
    if isinstance(value, bytes | bytearray):
        return data.get(bytes(value), value)
    if isinstance(value, dict):
        if len(value) == 1 and "N" in value and value["N"] in numbers:
            return {"N": numbers[value["N"]]}
        return {k: _substitute(v, strings, numbers, data) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, strings, numbers, data) for v in value]
    return value


def _snake(operation: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in operation).lstrip("_")


def body_sha256(raw: bytes) -> str:
    """What the intake's queue message carries of a webhook's body (its hash, for the logs)."""
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class Checkout:
    """What identifies one registered checkout in the items and requests: replaced on replay."""

    merchant_ref: str
    checkout_id: str


@dataclass
class Recording:
    """The I/O one handler invocation made: AWS calls (low-level params) and StepPay requests."""

    calls: list[tuple[str, str, dict[str, Any]]]
    order_code: str = ""
    order_id: str = ""
    raw_body: bytes = b""
    body_sha256: str = ""
    checkout: Checkout | None = None


class Floor:
    """Replays a handler invocation's exact I/O with raw boto3 clients and a requests session:
    the same operations with the same expressions and attributes, only the identifiers (order
    code and id, merchantRef and checkout id, webhook body and its hash) replaced by the floor's own."""

    def __init__(self, backends: Backends) -> None:
        self.base = backends.sandbox.url
        self.http = requests.Session()
        self.http.headers.update(
            {"Secret-Token": os.environ["STEPPAY_SECRET_TOKEN"], "Accept": "application/json"}
        )
        self.clients = {"dynamodb": boto3.client("dynamodb"), "sqs": boto3.client("sqs")}
        self.recordings: dict[str, Recording] = {}
        self.checkouts: dict[str, Checkout] = {}  # order code -> the floor's checkout for it

    def _replay(
        self,
        recording: Recording,
        *,
        code: str = "",
        order_id: str = "",
        raw: bytes = b"",
        key: str = "",
        checkout: Checkout | None = None,
    ) -> str:
        strings = {recording.order_code: code} if code else {}
        numbers = {recording.order_id: order_id} if order_id else {}
        data = {recording.raw_body: raw} if raw else {}
        if key:
            strings[recording.body_sha256] = key
        if checkout is not None and recording.checkout is not None:
            strings[recording.checkout.merchant_ref] = checkout.merchant_ref
            strings[recording.checkout.checkout_id] = checkout.checkout_id
        for service, operation, params in recording.calls:
            if service == "steppay":
                path = _substitute(params["path"], strings, numbers, data)
                if operation == "POST":
                    body = params.get("body")
                    order = self.http.post(
                        self.base + path,
                        data=body,
                        headers={"Content-Type": "application/json"},
                        timeout=10,
                    ).json()
                    code, order_id = str(order["orderCode"]), str(order["orderId"])
                    strings[recording.order_code] = code
                    numbers[recording.order_id] = order_id
                else:
                    self.http.request(operation, self.base + path, timeout=10).json()
                continue
            call = getattr(self.clients[service], _snake(operation))
            try:
                call(**_substitute(params, strings, numbers, data))
            except botocore.exceptions.ClientError as exc:
                # As the handler's own conditional writes may fail; anything else is an error.
                if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise
        return code

    def checkout(self) -> str:
        """A registration's I/O: claim, StepPay order, pending order, checkout opened."""
        # The id's shape (chk_ and 32 hex digits), not its derivation: the floor computes nothing.
        checkout = Checkout(new_merchant_ref("floor"), "chk_" + uuid.uuid4().hex)
        code = self._replay(self.recordings["checkout"], checkout=checkout)
        self.checkouts[code] = checkout
        return code

    def verify(self, code: str) -> None:
        self._replay(self.recordings["verify"], code=code, checkout=self.checkouts.get(code))

    def callback(self, code: str) -> None:
        self._replay(self.recordings["callback"], code=code, checkout=self.checkouts.get(code))

    def webhook(self, raw: bytes, headers: dict[str, str]) -> None:
        del headers
        self._replay(self.recordings["webhook"], raw=raw, key=body_sha256(raw))


# -- the run --------------------------------------------------------------------------------------


@dataclass
class EndpointResult:
    handler: Series = field(default_factory=Series)
    floor: Series = field(default_factory=Series)
    errors: int = 0
    io_per_call: dict[str, float] = field(default_factory=dict)  # "dynamodb.PutItem" -> calls
    log_bytes_per_call: float = 0.0

    def summary(self) -> dict[str, Any]:
        handler, floor = self.handler.summary(), self.floor.summary()
        return {
            "handler": handler,
            "floor": floor,
            "ratio_p50": round(handler["p50_ms"] / floor["p50_ms"], 3),
            "ratio_p99": round(handler["p99_ms"] / floor["p99_ms"], 3),
            "errors": self.errors,
            "io_per_call": self.io_per_call,
            "log_bytes_per_call": round(self.log_bytes_per_call),
        }


class WarmBench:
    def __init__(
        self,
        backends: Backends,
        instruments: Instruments,
        out_dir: Path,
        progress: Callable[[str], None] = print,
    ) -> None:
        self.backends = backends
        self.instruments = instruments
        self.control = SandboxControl(backends.sandbox.url)
        self.sandbox_connections = ConnectionCounter(backends.sandbox)
        self.handlers = Handlers(backends)
        self.floor = Floor(backends)
        self.checkouts: dict[str, Checkout] = {}  # order code -> the handler's checkout for it
        self.log_file = out_dir / "handler-stdout.log"
        self.log_file.unlink(missing_ok=True)
        self.progress = progress
        self._webhooks_used: set[str] = set()
        self._sequence = 0
        self.learn_floors()
        self.webhook_bodies_used: list[tuple[bytes, dict[str, str]]] = []

    # handler calls, checked

    def _call(self, name: str, event: dict[str, Any]) -> dict[str, Any]:
        response: dict[str, Any] = self.handlers.invoke(HTTP_FUNCTIONS[name], event)
        if response.get("statusCode") != EXPECTED_STATUS[name]:
            raise RuntimeError(
                f"{ENDPOINTS[name]} answered {response.get('statusCode')}: {response.get('body')}"
            )
        return response

    def handler_checkout(self, body: dict[str, Any] | None = None) -> str:
        """Register a checkout (a fresh merchantRef each call); returns its order code."""
        response = self._call("checkout", checkout_event(body or checkout_body()))
        answer = json.loads(response["body"])
        code = str(answer["orderCode"])
        self.checkouts[code] = Checkout(str(answer["merchantRef"]), str(answer["checkoutId"]))
        return code

    def handler_verify(self, code: str) -> None:
        body = json.dumps({"orderCode": code, "status": "success"})
        response = self._call("verify", http_event("POST", "/payments/verify", body=body))
        if json.loads(response["body"])["verdict"] != "PAID":
            raise RuntimeError(f"verify did not find {code} paid: {response['body']}")

    def handler_callback(self, code: str) -> None:
        query = {"order_code": code, "status": "success"}
        response = self._call("callback", http_event("GET", "/payments/callback", query=query))
        if "result=paid" not in response["headers"]["Location"]:
            raise RuntimeError(f"callback did not find {code} paid: {response['headers']}")

    def handler_webhook(self, raw: bytes, headers: dict[str, str]) -> None:
        response = self._call("webhook", http_event("POST", "/webhooks/steppay", body=raw, headers=headers))
        if not json.loads(response["body"]).get("queued"):
            raise RuntimeError(f"a payment webhook was not queued: {response['body']}")

    # the floor learns each handler's I/O from one recorded invocation

    def _record(self, call: Callable[[], Any]) -> list[tuple[str, str, dict[str, Any]]]:
        self.instruments.capture = []
        try:
            with stdout_to(self.log_file):
                call()
            return list(self.instruments.capture)
        finally:
            self.instruments.capture = None

    def learn_floors(self) -> None:
        codes: list[str] = []
        calls = self._record(lambda: codes.append(self.handler_checkout()))
        order = requests.get(
            f"{self.backends.sandbox.url}/api/v1/orders/{codes[0]}",
            headers={"Secret-Token": os.environ["STEPPAY_SECRET_TOKEN"]},
            timeout=10,
        ).json()
        self.floor.recordings["checkout"] = Recording(
            calls, codes[0], str(order["orderId"]), checkout=self.checkouts[codes[0]]
        )
        for name, handler in (("verify", self.handler_verify), ("callback", self.handler_callback)):
            code = self.paid_orders(1, via_handler=True)[0]
            order_id = str(
                self.control.http.get(
                    f"{self.backends.sandbox.url}/api/v1/orders/{code}",
                    headers={"Secret-Token": os.environ["STEPPAY_SECRET_TOKEN"]},
                    timeout=10,
                ).json()["orderId"]
            )
            calls = self._record(functools.partial(handler, code))
            self.floor.recordings[name] = Recording(calls, code, order_id, checkout=self.checkouts[code])
        raw, headers = self.webhooks(1)[0]
        calls = self._record(lambda: self.handler_webhook(raw, headers))
        self.floor.recordings["webhook"] = Recording(calls, raw_body=raw, body_sha256=body_sha256(raw))

    # setup (not timed)

    def paid_orders(self, count: int, *, via_handler: bool) -> list[str]:
        with stdout_to(self.log_file):
            codes = [self.handler_checkout() if via_handler else self.floor.checkout() for _ in range(count)]
        for code in codes:
            self.control.complete(code)
        return codes

    def webhooks(self, count: int) -> list[tuple[bytes, dict[str, str]]]:
        """`count` webhooks the sandbox recorded for our orders, none used before in this run, each
        one the intake queues (`order.created` and the like are acknowledged only)."""
        from steppay.webhooks import hint_from_body

        found = []
        for delivery in self.control.webhooks():
            body = json.loads(delivery["body"])
            key = json.dumps([delivery["event"], body["data"]], sort_keys=True)
            actionable = hint_from_body(delivery["event"], body).kind != "none"
            if delivery["version"] == "v2" and actionable and key not in self._webhooks_used:
                self._webhooks_used.add(key)
                found.append(fresh_webhook(delivery))
            if len(found) == count:
                return found
        raise RuntimeError(f"the sandbox recorded {len(found)} unused webhooks, {count} needed")

    def stream_events(self, count: int) -> list[dict[str, Any]]:
        """DynamoDB stream events, one record each: an order moving PENDING -> PAID (verified here)."""
        codes = self.paid_orders(count, via_handler=True)
        client = boto3.client("dynamodb")
        found = []
        with stdout_to(self.log_file):
            for code in codes:
                key = {"pk": {"S": f"ORDER#{code}"}, "sk": {"S": "ORDER"}}
                old = client.get_item(TableName=self.backends.table, Key=key, ConsistentRead=True)["Item"]
                self.handler_verify(code)
                new = client.get_item(TableName=self.backends.table, Key=key, ConsistentRead=True)["Item"]
                self._sequence += 1
                found.append(
                    {
                        "Records": [
                            {
                                "eventID": uuid.uuid4().hex,
                                "eventName": "MODIFY",
                                "eventVersion": "1.1",
                                "eventSource": "aws:dynamodb",
                                "awsRegion": "ap-northeast-2",
                                "dynamodb": {
                                    "ApproximateCreationDateTime": int(time.time()),
                                    "Keys": key,
                                    "NewImage": new,
                                    "OldImage": old,
                                    "SequenceNumber": str(100000000000000000000 + self._sequence),
                                    "SizeBytes": 512,
                                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                                },
                                "eventSourceARN": STREAM_ARN,
                            }
                        ]
                    }
                )
        return found

    # the measurement

    def _alternate(
        self,
        result: EndpointResult,
        iterations: int,
        warmup: int,
        handler: Callable[[int], Any],
        floor: Callable[[int], Any],
    ) -> None:
        for i in range(warmup + iterations):
            pair = ((handler, result.handler), (floor, result.floor))
            for call, series in pair if i % 2 == 0 else reversed(pair):
                try:
                    _, wall, cpu = timed(functools.partial(call, i))
                except Exception:
                    result.errors += 1
                    raise
                if i >= warmup:
                    series.add(wall, cpu)

    def _io(self, result: EndpointResult, calls: int) -> None:
        snapshot = self.instruments.snapshot()
        http = {f"steppay {k}": v for k, v in snapshot["http_calls"].items() if "/_sandbox" not in k}
        io = {k: v / calls for k, v in {**snapshot["api_calls"], **http}.items()}
        result.io_per_call = {k: round(v, 2) for k, v in sorted(io.items())}

    def io_profile(self, name: str, calls: Callable[[int], Any], count: int) -> dict[str, float]:
        """The AWS and StepPay calls one handler invocation makes (handler alone)."""
        result = EndpointResult()
        self.instruments.reset()
        with stdout_to(self.log_file):
            for i in range(count):
                calls(i)
        self._io(result, count)
        return result.io_per_call

    def run(self, iterations: int, warmup: int) -> dict[str, Any]:
        total = iterations + warmup
        results: dict[str, EndpointResult] = {name: EndpointResult() for name in ENDPOINTS}

        self.progress(f"  in-process: preparing {2 * total} paid orders for the callback runs")
        callback_codes = (
            self.paid_orders(total, via_handler=True),
            self.paid_orders(total, via_handler=False),
        )

        self.progress(f"  in-process: {ENDPOINTS['checkout']} x {iterations} (+{warmup} warm-up)")
        pay = ([], [])  # type: tuple[list[str], list[str]]
        size_before = self.log_file.stat().st_size if self.log_file.exists() else 0
        with stdout_to(self.log_file):
            self._alternate(
                results["checkout"],
                iterations,
                warmup,
                lambda i: pay[0].append(self.handler_checkout()),
                lambda i: pay[1].append(self.floor.checkout()),
            )
        results["checkout"].log_bytes_per_call = (self.log_file.stat().st_size - size_before) / total
        for code in (*pay[0], *pay[1]):
            self.control.complete(code)

        self.progress(f"  in-process: {ENDPOINTS['verify']} x {iterations}")
        size_before = self.log_file.stat().st_size
        with stdout_to(self.log_file):
            self._alternate(
                results["verify"],
                iterations,
                warmup,
                lambda i: self.handler_verify(pay[0][i]),
                lambda i: self.floor.verify(pay[1][i]),
            )
        results["verify"].log_bytes_per_call = (self.log_file.stat().st_size - size_before) / total

        self.progress(f"  in-process: {ENDPOINTS['callback']} x {iterations}")
        size_before = self.log_file.stat().st_size
        with stdout_to(self.log_file):
            self._alternate(
                results["callback"],
                iterations,
                warmup,
                lambda i: self.handler_callback(callback_codes[0][i]),
                lambda i: self.floor.callback(callback_codes[1][i]),
            )
        results["callback"].log_bytes_per_call = (self.log_file.stat().st_size - size_before) / total

        self.progress(f"  in-process: {ENDPOINTS['webhook']} x {iterations}")
        pairs = self.webhooks(2 * total)
        size_before = self.log_file.stat().st_size
        with stdout_to(self.log_file):
            self._alternate(
                results["webhook"],
                iterations,
                warmup,
                lambda i: self.handler_webhook(*pairs[2 * i]),
                lambda i: self.floor.webhook(*pairs[2 * i + 1]),
            )
        results["webhook"].log_bytes_per_call = (self.log_file.stat().st_size - size_before) / total
        self.webhook_bodies_used = [pairs[2 * i] for i in range(total)]

        # What each handler invocation calls, for the cost model (handler alone, fresh inputs).
        profile_orders = self.paid_orders(20, via_handler=True)
        results["checkout"].io_per_call = self.io_profile("checkout", lambda i: self.handler_checkout(), 20)
        results["verify"].io_per_call = self.io_profile(
            "verify", lambda i: self.handler_verify(profile_orders[i]), 20
        )
        more = self.paid_orders(20, via_handler=True)
        results["callback"].io_per_call = self.io_profile(
            "callback", lambda i: self.handler_callback(more[i]), 20
        )
        fresh = self.webhooks(20)
        results["webhook"].io_per_call = self.io_profile(
            "webhook", lambda i: self.handler_webhook(*fresh[i]), 20
        )
        return {name: result.summary() for name, result in results.items()}

    def reuse(self, invocations: int = 100) -> dict[str, Any]:
        """New connections and clients over `invocations` warm invocations of each HTTP handler."""
        verify_codes = self.paid_orders(invocations, via_handler=True)
        callback_codes = self.paid_orders(invocations, via_handler=True)
        hooks = self.webhooks(invocations)
        runs: dict[str, Callable[[int], Any]] = {
            "checkout": lambda i: self.handler_checkout(),
            "verify": lambda i: self.handler_verify(verify_codes[i]),
            "callback": lambda i: self.handler_callback(callback_codes[i]),
            "webhook": lambda i: self.handler_webhook(*hooks[i]),
        }
        found: dict[str, Any] = {}
        for name, call in runs.items():
            self.instruments.reset()
            self.sandbox_connections.reset()
            with stdout_to(self.log_file):
                for i in range(invocations):
                    call(i)
            snapshot = self.instruments.snapshot()
            found[name] = {
                "invocations": invocations,
                "sandbox_new_connections": self.sandbox_connections.count,
                "new_connections_by_endpoint": snapshot["connections"],
                "boto3_clients_created": snapshot["clients"],
            }
        return found

    def extra_durations(self, count: int) -> dict[str, Any]:
        """Per-invocation durations of the non-HTTP functions (for the cost model)."""
        from bench.backends import QueuePoller

        out: dict[str, Any] = {}
        # The webhook processor: what the warm intake runs queued, one message per invocation
        # (the low-traffic case), received and deleted as Lambda's SQS poller does.
        poller = QueuePoller(self.backends)
        series, self_io = Series(), EndpointResult()
        handled = 0
        self.instruments.reset()
        with stdout_to(self.log_file):
            while handled < count and (records := poller.receive(1)):
                response, wall, cpu = timed(
                    functools.partial(self.handlers.invoke, "WebhookProcessorFunction", {"Records": records})
                )
                failures = response.get("batchItemFailures") or []
                if failures:
                    raise RuntimeError(f"webhook processing failed: {response}")
                poller.done(records, failures)
                series.add(wall, cpu)
                handled += 1
        self._io(self_io, max(1, handled))
        out["webhook_processor"] = {**series.summary(), "io_per_call": self_io.io_per_call}

        # The publisher: one stream record (PENDING -> PAID) per invocation.
        records = self.stream_events(count)
        series, self_io = Series(), EndpointResult()
        self.instruments.reset()
        with stdout_to(self.log_file):
            for event in records:
                response, wall, cpu = timed(
                    functools.partial(self.handlers.invoke, "PublisherFunction", event)
                )
                if response.get("batchItemFailures"):
                    raise RuntimeError(f"publishing failed: {response}")
                series.add(wall, cpu)
        self._io(self_io, len(records))
        out["publisher"] = {**series.summary(), "io_per_call": self_io.io_per_call}

        out["reconciliation"] = self.reconciliation_durations()
        return out

    def reconciliation_durations(self) -> dict[str, Any]:
        """One reconciliation run over the last two minutes (the orders just paid, all recorded)."""
        self.instruments.reset()
        with stdout_to(self.log_file):
            report, wall, cpu = timed(
                lambda: self.handlers.invoke("ReconciliationFunction", {"windowMinutes": 2})
            )
        snapshot = self.instruments.snapshot()
        paid = max(1, int(report["paid_seen"]))
        return {
            "orders_seen": report["orders_seen"],
            "paid_seen": report["paid_seen"],
            "fixed": report["fixed"],
            "wall_ms": round(wall, 1),
            "cpu_ms": round(cpu, 1),
            "wall_ms_per_paid_order": round(wall / paid, 2),
            "cpu_ms_per_paid_order": round(cpu / paid, 2),
            "io_per_paid_order": {
                k: round(v / paid, 2)
                for k, v in {
                    **snapshot["api_calls"],
                    **{f"steppay {k}": v for k, v in snapshot["http_calls"].items() if "/_sandbox" not in k},
                }.items()
            },
        }
