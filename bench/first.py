"""The first invocation of each HTTP function in a fresh process: import, set-up, the rest.

A cold start is the import plus the first call's set-up. Each run is a fresh Lambda-like process
(`bench/memory_child.py`, the function's environment against the local backends) that imports
the handler and handles two real events. Unlike the memory runs, the secrets are read as deployed:
the Secret-Token and the webhook keys are SSM parameters (in moto), so the first checkout or
verify makes its GetParameter call, and the webhook intake makes its own at import.

The first invocation is split at its first request to StepPay, DynamoDB or SQS (its first bytes
sent): before it, the set-up (settings, the secret, boto3 clients, the first connection's
opening); after it, the rest (the requests' round trips and the handler's own work). On
127.0.0.1 a connection costs no handshake: deployed, the first StepPay request also pays TLS.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import boto3

from bench.backends import checkout_body, checkout_event, http_event
from bench.lambda_env import LambdaTree
from bench.memory import CHILD
from bench.warm import WarmBench

FUNCTIONS = {"CheckoutFunction": 201, "VerifyFunction": 200, "WebhookIntakeFunction": 200}
MODULES = {
    "CheckoutFunction": "checkouts",
    "VerifyFunction": "verify",
    "WebhookIntakeFunction": "webhook_intake",
}
REQUESTS = ("steppay", "dynamodb", "sqs")  # the set-up ends when the first of these is sent
SECRET_TOKEN_PARAM = "/steppay/bench/secret-token"  # noqa: S105 - a parameter's name
WEBHOOK_KEYS_PARAM = "/steppay/bench/webhook-keys"
INVOCATIONS = 2  # the first, and one warm for comparison


def put_secrets(bench: WarmBench) -> dict[str, str]:
    """The sandbox's Secret-Token and webhook key as SecureString parameters in moto's SSM; the
    variables that make the functions read them from there."""
    from bench.backends import REGION, SECRET_TOKEN, WEBHOOK_KEY

    ssm = boto3.client("ssm", region_name=REGION, endpoint_url=bench.backends.moto.endpoint_url)
    for name, value in ((SECRET_TOKEN_PARAM, SECRET_TOKEN), (WEBHOOK_KEYS_PARAM, WEBHOOK_KEY)):
        ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
    return {
        "STEPPAY_SECRET_TOKEN_PARAM": SECRET_TOKEN_PARAM,
        "STEPPAY_WEBHOOK_KEYS_PARAM": WEBHOOK_KEYS_PARAM,
    }


def inputs(bench: WarmBench, processes: int) -> dict[str, list[list[dict[str, Any]]]]:
    """`INVOCATIONS` events per process and function (prepared in-process, not measured)."""
    count = processes * INVOCATIONS
    codes = bench.paid_orders(count, via_handler=True)
    hooks = bench.webhooks(count)
    events: dict[str, list[dict[str, Any]]] = {
        "CheckoutFunction": [checkout_event(checkout_body()) for _ in range(count)],
        "VerifyFunction": [
            http_event("POST", "/payments/verify", body=json.dumps({"orderCode": code})) for code in codes
        ],
        "WebhookIntakeFunction": [
            http_event("POST", "/webhooks/steppay", body=raw, headers=headers) for raw, headers in hooks
        ],
    }
    return {
        name: [found[i * INVOCATIONS : (i + 1) * INVOCATIONS] for i in range(processes)]
        for name, found in events.items()
    }


def _environment(bench: WarmBench, logical_id: str, secrets: Mapping[str, str]) -> dict[str, str]:
    env = dict(bench.backends.environments[logical_id])
    for name in ("PYTHONPATH", "POWERTOOLS_TRACE_DISABLED", "STEPPAY_SECRET_TOKEN", "STEPPAY_WEBHOOK_KEYS"):
        env.pop(name, None)
    env.update(secrets)
    # Lambda's active tracing hands every invocation a trace header (the Powertools Tracer stays
    # as the template has it: off).
    env["_X_AMZN_TRACE_ID"] = (
        f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=1"
    )
    return env


def split(result: Mapping[str, Any]) -> dict[str, Any]:
    """A child's result as import / set-up / rest of the first invocation (ms)."""
    phases = result.get("first_invocation_phases") or {}
    total = float(result["first_invocation_ms"])
    sent = {k: v for k, v in (phases.get("first_sent_ms") or {}).items() if k in REQUESTS}
    setup = min(sent.values()) if sent else None
    ssm = sum(took for what, _, took in phases.get("calls", []) if what.startswith("ssm."))
    return {
        "import_ms": float(result["import_ms"]),
        "setup_ms": setup,
        "rest_ms": None if setup is None else total - setup,
        "first_invocation_ms": total,
        "second_invocation_ms": result.get("warm_invocation_p50_ms"),
        "ssm_ms": ssm,
        "clients_ms": float(phases.get("clients_ms", 0.0)),
        "connect_ms": float(phases.get("connect_ms", 0.0)),
        "first_request": min(sent, key=lambda k: sent[k]) if sent else None,
    }


def medians(splits: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"processes": len(splits)}
    for key in splits[0]:
        values = [s[key] for s in splits if isinstance(s[key], int | float)]
        if values:
            out[key] = round(statistics.median(values), 1)
        else:
            out[key] = next((s[key] for s in splits if s[key] is not None), None)
    return out


def run(
    bench: WarmBench,
    tree: LambdaTree,
    processes: int = 3,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    secrets = put_secrets(bench)
    events = inputs(bench, processes)
    steppay_port = urlsplit(bench.backends.sandbox.url).port
    found: dict[str, list[dict[str, Any]]] = {name: [] for name in FUNCTIONS}
    for i in range(processes):
        order = list(FUNCTIONS) if i % 2 == 0 else list(reversed(FUNCTIONS))
        for logical_id in order:
            module = bench.backends.handlers[logical_id]
            spec: dict[str, Any] = {
                "phases": True,
                "steppay_port": steppay_port,
                "paths": tree.sys_path(module),
                "module": module,
                "function_name": logical_id,
                "memory": bench.backends.memory_sizes[logical_id],
                "events": events[logical_id][i],
            }
            process = subprocess.run(  # noqa: S603 - our interpreter, our script
                [sys.executable, "-S", "-B", str(CHILD)],
                input=json.dumps(spec),
                env=_environment(bench, logical_id, secrets),
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            lines = [line for line in process.stdout.splitlines() if line.startswith("RESULT ")]
            if process.returncode != 0 or not lines:
                raise RuntimeError(f"{logical_id}: {process.stderr[-3000:]}")
            result = json.loads(lines[-1][len("RESULT ") :])
            expected = FUNCTIONS[logical_id]
            if result["status_codes"] != [expected] * len(spec["events"]):
                raise RuntimeError(f"{logical_id} answered {result['status_codes']}, not {expected}")
            found[logical_id].append(result)
        progress(f"  first invocation: process {i + 1}/{processes}")
    return {
        name: {
            **medians([split(r) for r in results]),
            "first_invocation_calls": results[len(results) // 2]["first_invocation_phases"]["calls"],
        }
        for name, results in found.items()
    }


def render(data: Mapping[str, Mapping[str, Any]]) -> str:
    headers = [
        "function",
        "import ms",
        "1st call: set-up ms",
        "1st call: rest ms",
        "1st call ms",
        "import + 1st call ms",
        "2nd call ms",
        "set-up: SSM / clients / connect ms",
        "first request",
    ]
    rows = []
    for logical_id, d in data.items():
        total = d["import_ms"] + d["first_invocation_ms"]
        rows.append(
            [
                MODULES.get(logical_id, logical_id),
                d["import_ms"],
                d.get("setup_ms", "-"),
                d.get("rest_ms", "-"),
                d["first_invocation_ms"],
                round(total, 1),
                d.get("second_invocation_ms", "-"),
                f"{d['ssm_ms']} / {d['clients_ms']} / {d['connect_ms']}",
                d.get("first_request") or "-",
            ]
        )
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    processes = {d["processes"] for d in data.values()}
    lines.append(
        f"\nMedians of {'/'.join(map(str, sorted(processes)))} fresh processes each (secrets from SSM in "
        "moto; DynamoDB Local, moto's SQS and the StepPay sandbox on 127.0.0.1, no TLS)."
    )
    for logical_id, d in data.items():
        calls = ", ".join(
            f"{what} @{start:.0f} ({took:.1f})" for what, start, took in d["first_invocation_calls"]
        )
        lines.append(f"\n{MODULES.get(logical_id, logical_id)}, first call (ms from its start): {calls}")
    return "\n".join(lines)
