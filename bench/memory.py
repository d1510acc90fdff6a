"""Memory and first invocations: each function in a fresh Lambda-like process, tracing on.

One process per function, started as Lambda starts one (the Lambda-like tree of
`bench.lambda_env`, the function's environment against the local backends, X-Ray tracing active
with a trace header, as with `Tracing: Active`), imports the handler, then handles a series of
real events. It reports the peak resident set size (what Lambda calls "Max Memory Used"), the
import time, the first invocation's duration and the warm ones', and, over all its invocations,
the boto3 clients it created, the TCP connections it opened (by endpoint) and the new
connections the StepPay sandbox accepted from it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench.backends import ROOT, QueuePoller, checkout_body, checkout_event, http_event
from bench.lambda_env import LambdaTree
from bench.warm import WarmBench

CHILD = Path(__file__).with_name("memory_child.py")


def events(bench: WarmBench, count: int) -> dict[str, list[dict[str, Any]]]:
    """Inputs for each function (prepared through the in-process handlers, not measured)."""
    verify_codes = bench.paid_orders(count, via_handler=True)
    hooks = bench.webhooks(count)
    stream = bench.stream_events(count)
    entitlement_events = []
    for sample in sorted((ROOT / "events" / "entitlements").glob("*.json")):
        base = json.loads(sample.read_text(encoding="utf-8"))
        for _ in range(max(1, count // 2)):
            event = json.loads(json.dumps(base))
            event["id"] = str(uuid.uuid4())
            event["detail"]["eventId"] = str(uuid.uuid4())
            entitlement_events.append(event)
    return {
        # A fresh merchantRef each: every invocation registers a new checkout.
        "CheckoutFunction": [checkout_event(checkout_body()) for _ in range(count)],
        "VerifyFunction": [
            http_event("POST", "/payments/verify", body=json.dumps({"orderCode": code}))
            for code in verify_codes
        ],
        "WebhookIntakeFunction": [
            http_event("POST", "/webhooks/steppay", body=raw, headers=headers) for raw, headers in hooks
        ],
        # Filled by `run` after the intake's process: what that process queued, one per event.
        "WebhookProcessorFunction": [],
        "PublisherFunction": stream,
        "ReconciliationFunction": [{"windowMinutes": 2} for _ in range(3)],
        "EntitlementSubscriberFunction": entitlement_events,
    }


def run(bench: WarmBench, tree: LambdaTree, count: int = 30) -> dict[str, Any]:
    inputs = events(bench, count)
    sandbox = bench.sandbox_connections
    poller = QueuePoller(bench.backends)
    results: dict[str, Any] = {}
    for logical_id, function_events in inputs.items():
        if logical_id == "WebhookIntakeFunction":
            poller.drain()
        if logical_id == "WebhookProcessorFunction":
            # The messages the intake's process just queued, handed over one per invocation.
            function_events = [{"Records": records} for records in iter(lambda: poller.receive(1), [])]
        module = bench.backends.handlers[logical_id]
        env = dict(bench.backends.environments[logical_id])
        env.pop("PYTHONPATH", None)
        env.pop("POWERTOOLS_TRACE_DISABLED", None)
        env.update(
            {
                "_X_AMZN_TRACE_ID": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};"
                f"Parent={uuid.uuid4().hex[:16]};Sampled=1",
                "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
                "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR",
            }
        )
        spec = {
            "count_io": True,
            "paths": tree.sys_path(module),
            "module": module,
            "function_name": logical_id,
            "memory": bench.backends.memory_sizes[logical_id],
            "events": function_events,
        }
        sandbox.reset()
        process = subprocess.run(  # noqa: S603 - our interpreter, our script
            [sys.executable, "-S", "-B", str(CHILD)],
            input=json.dumps(spec),
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        lines = [line for line in process.stdout.splitlines() if line.startswith("RESULT ")]
        if process.returncode != 0 or not lines:
            raise RuntimeError(f"{logical_id}: {process.stderr[-3000:]}")
        results[logical_id] = json.loads(lines[-1][len("RESULT ") :])
        # What the StepPay sandbox saw from this process over all its invocations.
        results[logical_id]["sandbox_new_connections"] = sandbox.count
    return results
