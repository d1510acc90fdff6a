"""Cold start: importing each handler module in a fresh process, next to its floor.

The floor of a function is a fresh process (same interpreter, same Lambda-like tree, same
environment) that imports only the third-party packages the function cannot avoid and sets up
the Powertools parts it uses exactly as the handler does at module level (`Logger()`,
`Tracer()` -- which patches botocore and requests for X-Ray, as in Lambda with tracing active --,
`Metrics()`, the event-handler resolver, ...). Everything above the floor is ours: the `steppay`
modules, our pydantic models, route registration.

Samples alternate handler and floor (and functions) so that load from other processes on the
machine weighs on both alike. Each sample reports the import's wall time and the CPU time of the
process during the import; the median of each is printed.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.lambda_env import FUNCTIONS, LambdaTree

THIRD_PARTY = "import boto3, requests, pydantic, pydantic_settings\n"
POWERTOOLS = (
    "from aws_lambda_powertools import Logger, Metrics, Tracer\n"
    "from aws_lambda_powertools.metrics import MetricUnit\n"
    "from aws_lambda_powertools.utilities.typing import LambdaContext\n"
    "Logger(); Tracer(); Metrics()\n"
)
HTTP = (
    "from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response\n"
    "from aws_lambda_powertools.logging import correlation_paths\n"
)
PARAMETERS = "from aws_lambda_powertools.utilities import parameters\n"

# What each function cannot avoid (see the module docstring).
FLOORS: dict[str, str] = {
    "pay_url": THIRD_PARTY
    + POWERTOOLS
    + PARAMETERS
    + HTTP
    + "APIGatewayHttpResolver(enable_validation=True)\n",
    "verify": THIRD_PARTY
    + POWERTOOLS
    + PARAMETERS
    + HTTP
    + "from aws_lambda_powertools.event_handler.openapi.params import Query\n"
    + "APIGatewayHttpResolver(enable_validation=True)\n",
    "webhook_intake": THIRD_PARTY + POWERTOOLS + PARAMETERS + HTTP + "APIGatewayHttpResolver()\n",
    "webhook_processor": THIRD_PARTY
    + POWERTOOLS
    + PARAMETERS
    + "from aws_lambda_powertools.utilities.batch import (\n"
    + "    BatchProcessor, EventType, process_partial_response)\n"
    + "from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord\n"
    + "BatchProcessor(event_type=EventType.SQS)\n",
    "publisher": THIRD_PARTY
    + POWERTOOLS
    + "from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent, event_source\n",
    "reconciliation": THIRD_PARTY + POWERTOOLS + PARAMETERS,
    "entitlements": "import boto3\n"
    + POWERTOOLS
    + "from aws_lambda_powertools.utilities.idempotency import (\n"
    + "    DynamoDBPersistenceLayer, IdempotencyConfig, idempotent)\n"
    + "DynamoDBPersistenceLayer(table_name='t', key_attr='pk')\n",
}

# Lambda's own variables and the template's (values do not matter for an import).
BASE_ENV = {
    "LANG": "C.UTF-8",
    "TZ": "UTC",
    "AWS_REGION": "ap-northeast-2",
    "AWS_DEFAULT_REGION": "ap-northeast-2",
    "AWS_ACCESS_KEY_ID": "cold",
    "AWS_SECRET_ACCESS_KEY": "cold",
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
    "STAGE": "dev",
    "STEPPAY_BASE_URL": "https://api.steppay.kr",
    "STEPPAY_SECRET_TOKEN_PARAM": "/steppay/dev/secret-token",
    "STEPPAY_WEBHOOK_KEYS_PARAM": "/steppay/dev/webhook-keys",
    "ALLOWED_REDIRECT_HOSTS": "shop.example.com",
    "RESULT_PAGE_URL": "https://shop.example.com/payment/result",
    "TABLE_NAME": "payments",
    "EVENT_BUS_NAME": "steppay-payments-dev",
    "WEBHOOK_QUEUE_URL": "https://sqs.ap-northeast-2.amazonaws.com/123456789012/webhooks",
    "WEBHOOK_TOLERANCE_SECONDS": "300",
    "RECONCILIATION_WINDOW_MINUTES": "180",
    "ENTITLEMENTS_TABLE_NAME": "entitlements",
    "POWERTOOLS_SERVICE_NAME": "steppay-payments",
    "POWERTOOLS_METRICS_NAMESPACE": "StepPay",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    "POWERTOOLS_LOGGER_LOG_EVENT": "false",
    "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
}

_CHILD = """\
import sys, time
sys.path[0:0] = {paths!r}
wall, cpu = time.perf_counter(), time.process_time()
exec(compile({code!r}, "<cold start>", "exec"), {{"__name__": "__cold__"}})
print("RESULT", (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000)
"""


def environment(function: str, tracing: bool = True) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **BASE_ENV}
    env["AWS_LAMBDA_FUNCTION_NAME"] = f"steppay-{function}"
    env["_HANDLER"] = f"{function}.lambda_handler"
    if not tracing:
        env["POWERTOOLS_TRACE_DISABLED"] = "true"
    return env


def _run(
    tree: LambdaTree, function: str, code: str, *, with_task: bool, tracing: bool, extra: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    child = _CHILD.format(paths=tree.sys_path(function if with_task else None), code=code)
    return subprocess.run(  # noqa: S603 - our interpreter, our code
        [sys.executable, "-S", "-B", *extra, "-c", child],
        env=environment(function, tracing),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def sample(tree: LambdaTree, function: str, *, floor: bool, tracing: bool = True) -> tuple[float, float]:
    """(wall ms, CPU ms) of one cold import."""
    code = FLOORS[function] if floor else f"import {function}\n"
    result = _run(tree, function, code, with_task=not floor, tracing=tracing)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"cold import of {function} (floor={floor}) failed:\n{result.stderr[-3000:]}")
    _, wall, cpu = lines[-1].split()
    return float(wall), float(cpu)


GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("boto3/botocore", ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six")),
    ("requests/urllib3", ("requests", "urllib3", "idna", "charset_normalizer", "certifi")),
    ("pydantic", ("pydantic", "pydantic_core", "annotated_types", "typing_extensions", "typing_inspection")),
    ("pydantic_settings", ("pydantic_settings", "dotenv")),
    ("powertools", ("aws_lambda_powertools",)),
    ("x-ray sdk", ("aws_xray_sdk", "wrapt")),
    ("steppay layer", ("steppay",)),
)


def _group(module: str, handler: str) -> str:
    top = module.split(".", 1)[0]
    if top == handler:
        return "handler module"
    for name, tops in GROUPS:
        if top in tops:
            return name
    return "stdlib"


def importtime(tree: LambdaTree, function: str, *, floor: bool, runs: int = 3) -> dict[str, Any]:
    """Self time (µs, median of `runs`) per module and per group, from `-X importtime`."""
    per_module: dict[str, list[int]] = defaultdict(list)
    code = FLOORS[function] if floor else f"import {function}\n"
    for _ in range(runs):
        result = _run(tree, function, code, with_task=not floor, tracing=True, extra=("-X", "importtime"))
        for line in result.stderr.splitlines():
            if not line.startswith("import time:") or "|" not in line:
                continue
            parts = [p.strip() for p in line[len("import time:") :].split("|")]
            if parts[0].isdigit():
                per_module[parts[2]].append(int(parts[0]))
    modules = {name: statistics.median(values) for name, values in per_module.items()}
    groups: dict[str, float] = defaultdict(float)
    for name, value in modules.items():
        groups[_group(name, function)] += value
    ours = {name: value for name, value in modules.items() if name.split(".", 1)[0] in ("steppay", function)}
    return {
        "groups_ms": {k: round(v / 1000, 1) for k, v in sorted(groups.items(), key=lambda kv: -kv[1])},
        "ours_ms": {k: round(v / 1000, 1) for k, v in sorted(ours.items(), key=lambda kv: -kv[1])[:12]},
    }


@dataclass
class ColdStart:
    function: str
    handler_wall: list[float] = field(default_factory=list)
    handler_cpu: list[float] = field(default_factory=list)
    floor_wall: list[float] = field(default_factory=list)
    floor_cpu: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        med = statistics.median
        data: dict[str, Any] = {
            "samples": len(self.handler_wall),
            "handler_wall_ms": round(med(self.handler_wall), 1),
            "floor_wall_ms": round(med(self.floor_wall), 1),
            "handler_cpu_ms": round(med(self.handler_cpu), 1),
            "floor_cpu_ms": round(med(self.floor_cpu), 1),
        }
        data["ratio_wall"] = round(data["handler_wall_ms"] / data["floor_wall_ms"], 3)
        data["ratio_cpu"] = round(data["handler_cpu_ms"] / data["floor_cpu_ms"], 3)
        return data


def measure(
    tree: LambdaTree,
    functions: Sequence[str] = FUNCTIONS,
    samples: int = 11,
    progress: Callable[[str], None] = print,
) -> dict[str, ColdStart]:
    results = {fn: ColdStart(fn) for fn in functions}
    for _ in range(2):  # page the files in; not counted
        for fn in functions:
            sample(tree, fn, floor=False)
            sample(tree, fn, floor=True)
    for i in range(samples):
        for fn in functions:
            order = (False, True) if i % 2 == 0 else (True, False)
            for floor in order:
                wall, cpu = sample(tree, fn, floor=floor)
                result = results[fn]
                (result.floor_wall if floor else result.handler_wall).append(wall)
                (result.floor_cpu if floor else result.handler_cpu).append(cpu)
        progress(f"  cold start: sample {i + 1}/{samples}")
    return results


def summaries(results: Mapping[str, ColdStart]) -> dict[str, dict[str, Any]]:
    return {fn: result.summary() for fn, result in results.items()}


def raw(results: Mapping[str, ColdStart]) -> dict[str, dict[str, list[float]]]:
    return {fn: {k: v for k, v in asdict(r).items() if k != "function"} for fn, r in results.items()}


if __name__ == "__main__":  # quick look: python -m bench.coldstart verify [samples]
    from pathlib import Path

    from bench.lambda_env import build

    tree, _ = build(Path("bench-results/lambda"))
    names = sys.argv[1].split(",") if len(sys.argv) > 1 else list(FUNCTIONS)
    found = measure(tree, names, int(sys.argv[2]) if len(sys.argv) > 2 else 5)
    print(json.dumps(summaries(found), indent=2))
    for name in names:
        print(name, json.dumps(importtime(tree, name, floor=False), indent=1))
