"""Cold start: importing each handler module in a fresh process, next to the bare floor.

The bare floor (`bench/bare_floor.py`) is a fresh process of the same interpreter, in the same
Lambda-like tree (`bench.lambda_env`) and environment, importing a handler that imports the
standard library, creates a DynamoDB client and a `requests.Session`, and nothing else. Every
function's cold import is measured against it, in the same run: samples alternate the function
and the bare floor (their order flipping every round, functions interleaved) so that load from
other processes on the machine weighs on both alike; the medians are compared with the goals
(`GOALS`: the ratio of the function's median to the bare floor's).

`make bench` also measures a second floor per function, the packages floor (`FLOORS`): the same
third-party packages as the function and the Powertools parts it sets up at module level
(`Logger()`, `Metrics()`, the event-handler resolver, ...). What lies between the bare floor and
the packages floor is what those packages cost; what lies above the packages floor is ours (the
`steppay` modules, our pydantic models, route registration).

Each sample reports the import's wall time and the CPU time of the process during the import.
`-X importtime` (a separate run: it slows the import it measures) says which imports cost the
most above the bare floor, attributed to the module of ours that makes them: what to defer next.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.lambda_env import BARE_FLOOR, FUNCTIONS, LambdaTree

HANDLER, BARE, PACKAGES = "handler", "bare", "packages"  # what one sample imports

# The goals: a function's median cold import at most this many times the bare floor's. Someone
# waits on the first three (the merchant's checkout, the shopper's verify and callback, StepPay's
# webhook delivery); the webhook intake needs neither requests nor the resolver's validation.
GOALS: dict[str, float] = {
    "checkouts": 1.35,
    "verify": 1.35,  # POST /payments/verify and GET /payments/callback
    "webhook_intake": 1.2,
}
DEFAULT_GOAL = 1.5


def goal(function: str) -> float:
    return GOALS.get(function, DEFAULT_GOAL)


THIRD_PARTY = "import boto3, requests, pydantic\n"
POWERTOOLS = (
    "from aws_lambda_powertools import Logger, Metrics\n"
    "from aws_lambda_powertools.metrics import MetricUnit\n"
    "from aws_lambda_powertools.utilities.typing import LambdaContext\n"
    "Logger(); Metrics()\n"
)
TRACER = "from aws_lambda_powertools import Tracer\nTracer()\n"
HTTP = (
    "from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response\n"
    "from aws_lambda_powertools.logging import correlation_paths\n"
)
PARAMETERS = "from aws_lambda_powertools.utilities import parameters\n"

# What each function cannot avoid (see the module docstring).
FLOORS: dict[str, str] = {
    "checkouts": THIRD_PARTY
    + POWERTOOLS
    + PARAMETERS
    + HTTP
    + "from aws_lambda_powertools.event_handler.openapi.params import Path, Query\n"
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
    + TRACER
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
    # The secrets as plain variables, not parameter names: a handler that reads one at init (the
    # webhook intake checks its keys) would otherwise call SSM in AWS with these dummy
    # credentials. Deployed, that init also makes one GetParameter call, not counted here.
    "STEPPAY_SECRET_TOKEN_PARAM": "",
    "STEPPAY_SECRET_TOKEN": "cold-start-token",
    "STEPPAY_WEBHOOK_KEYS_PARAM": "",
    "STEPPAY_WEBHOOK_KEYS": "cold-start-key",
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
    "STEPPAY_CONNECT_TIMEOUT": "2",
    "STEPPAY_READ_TIMEOUT": "5",
    "STEPPAY_MAX_RETRIES": "1",
    "STEPPAY_TIMEZONE": "UTC",
    "STEPPAY_POWERTOOLS_TRACER": "disabled",  # the template's default (steppay.tracing)
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


def _code(tree: LambdaTree, function: str, kind: str) -> tuple[str, list[str]]:
    """What one sample of `kind` runs, and its sys.path (Lambda's order: task, /opt/python, runtime)."""
    if kind == HANDLER:
        return f"import {function}\n", tree.sys_path(function)
    if kind == BARE:
        return f"import {BARE_FLOOR}\n", tree.sys_path(BARE_FLOOR)
    if kind == PACKAGES:
        return FLOORS[function], tree.sys_path(None)
    raise ValueError(f"unknown sample kind {kind!r}")


def _run(
    tree: LambdaTree, function: str, kind: str, *, tracing: bool, extra: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    code, paths = _code(tree, function, kind)
    child = _CHILD.format(paths=paths, code=code)
    return subprocess.run(  # noqa: S603 - our interpreter, our code
        [sys.executable, "-S", "-B", *extra, "-c", child],
        env=environment(function, tracing),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def sample(
    tree: LambdaTree, function: str, kind: str = HANDLER, *, tracing: bool = True
) -> tuple[float, float]:
    """(wall ms, CPU ms) of one cold import of `kind` (the handler, the bare or the packages floor)."""
    result = _run(tree, function, kind, tracing=tracing)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"cold import of {function} ({kind}) failed:\n{result.stderr[-3000:]}")
    _, wall, cpu = lines[-1].split()
    return float(wall), float(cpu)


# -- -X importtime --------------------------------------------------------------------------------

GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("boto3/botocore", ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six")),
    ("requests/urllib3", ("requests", "urllib3", "idna", "charset_normalizer", "certifi")),
    ("pydantic", ("pydantic", "pydantic_core", "annotated_types", "typing_extensions", "typing_inspection")),
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


@dataclass
class ImportNode:
    """One line of `-X importtime`: a module, its self and cumulative time (µs), what it imported first."""

    name: str
    self_us: int
    cumulative_us: int
    children: list[ImportNode] = field(default_factory=list)

    def walk(self) -> Iterator[ImportNode]:
        yield self
        for child in self.children:
            yield from child.walk()


def parse_importtime(stderr: str) -> list[ImportNode]:
    """The import tree (roots in order) from `-X importtime` output.

    A module's line comes after those of the modules it imported first, indented two spaces
    deeper; so each line adopts the deeper lines pending before it.
    """
    pending: list[tuple[int, ImportNode]] = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        self_us, cumulative_us, name = line[len("import time:") :].split("|")
        if not self_us.strip().isdigit():
            continue  # the header line
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        node = ImportNode(name.strip(), int(self_us), int(cumulative_us))
        while pending and pending[-1][0] > depth:
            node.children.insert(0, pending.pop()[1])
        pending.append((depth, node))
    return [node for _, node in pending]


def _ours(module: str, function: str) -> bool:
    return module.split(".", 1)[0] in ("steppay", function)


def above_floor(node: ImportNode, floor: frozenset[str]) -> int:
    """µs of `node`'s subtree spent in modules the bare floor does not import."""
    own = 0 if node.name in floor else node.self_us
    return own + sum(above_floor(child, floor) for child in node.children)


def offenders(roots: Sequence[ImportNode], function: str, floor: frozenset[str]) -> dict[str, int]:
    """µs above the bare floor by the import that brings it in: each of our modules' own body
    (`steppay.api_models`), and each foreign module one of ours imports first, with all it
    imports (`pydantic <- steppay.api_models`). Deferring one of these saves about that much."""
    found: dict[str, int] = defaultdict(int)

    def visit(node: ImportNode) -> None:
        found[node.name] += node.self_us
        for child in node.children:
            if _ours(child.name, function):
                visit(child)
            else:
                cost = above_floor(child, floor)
                if cost:
                    found[f"{child.name} <- {node.name}"] += cost

    for root in roots:
        for node in root.walk():
            if _ours(node.name, function):
                visit(node)
                break
    return dict(found)


def importtime_runs(
    tree: LambdaTree, function: str, kind: str = HANDLER, runs: int = 3
) -> list[list[ImportNode]]:
    found = []
    for _ in range(runs):
        result = _run(tree, function, kind, tracing=True, extra=("-X", "importtime"))
        if result.returncode != 0:
            raise RuntimeError(f"-X importtime of {function} ({kind}) failed:\n{result.stderr[-3000:]}")
        found.append(parse_importtime(result.stderr))
    return found


def bare_floor_modules(tree: LambdaTree) -> frozenset[str]:
    """The modules the bare floor imports (from one `-X importtime` run)."""
    (roots,) = importtime_runs(tree, FUNCTIONS[0], BARE, runs=1)
    return frozenset(node.name for root in roots for node in root.walk())


def summarize_importtime(
    runs: Sequence[Sequence[ImportNode]], function: str, floor: frozenset[str], top: int = 5
) -> dict[str, Any]:
    """Medians over runs: self time by group, our costliest modules, and what to defer next."""

    def median_of(per_run: list[dict[str, int]]) -> dict[str, float]:
        keys = {k for run in per_run for k in run}
        return {k: statistics.median(run.get(k, 0) for run in per_run) for k in keys}

    def ms(values: Mapping[str, float], limit: int | None = None) -> dict[str, float]:
        ranked = sorted(values.items(), key=lambda kv: -kv[1])[:limit]
        return {k: round(v / 1000, 1) for k, v in ranked}

    groups, ours, defer = [], [], []
    for roots in runs:
        per_group: dict[str, int] = defaultdict(int)
        per_ours: dict[str, int] = defaultdict(int)
        for root in roots:
            for node in root.walk():
                per_group[_group(node.name, function)] += node.self_us
                if _ours(node.name, function):
                    per_ours[node.name] += node.self_us
        groups.append(dict(per_group))
        ours.append(dict(per_ours))
        defer.append(offenders(roots, function, floor))
    return {
        "runs": len(runs),
        "groups_ms": ms(median_of(groups)),
        "ours_ms": ms(median_of(ours), 12),
        "defer_next_ms": ms(median_of(defer), top),
    }


def importtime(
    tree: LambdaTree, function: str, *, floor: frozenset[str] | None = None, runs: int = 3
) -> dict[str, Any]:
    floor = bare_floor_modules(tree) if floor is None else floor
    return summarize_importtime(importtime_runs(tree, function, HANDLER, runs), function, floor)


# -- samples, medians, goals ----------------------------------------------------------------------


@dataclass
class ColdStart:
    function: str
    handler_wall: list[float] = field(default_factory=list)
    handler_cpu: list[float] = field(default_factory=list)
    bare_wall: list[float] = field(default_factory=list)
    bare_cpu: list[float] = field(default_factory=list)
    packages_wall: list[float] = field(default_factory=list)
    packages_cpu: list[float] = field(default_factory=list)

    def add(self, kind: str, wall: float, cpu: float) -> None:
        getattr(self, f"{kind}_wall").append(wall)
        getattr(self, f"{kind}_cpu").append(cpu)

    def summary(self) -> dict[str, Any]:
        med = statistics.median
        data: dict[str, Any] = {
            "samples": len(self.handler_wall),
            "handler_wall_ms": round(float(med(self.handler_wall)), 1),
            "bare_wall_ms": round(float(med(self.bare_wall)), 1),
            "handler_cpu_ms": round(float(med(self.handler_cpu)), 1),
            "bare_cpu_ms": round(float(med(self.bare_cpu)), 1),
        }
        data["ratio_wall"] = round(data["handler_wall_ms"] / data["bare_wall_ms"], 3)
        data["ratio_cpu"] = round(data["handler_cpu_ms"] / data["bare_cpu_ms"], 3)
        # Each round's pair (function and bare floor, back to back): less swayed by load drift.
        pairs = [h / b for h, b in zip(self.handler_wall, self.bare_wall, strict=False) if b > 0]
        data["ratio_wall_paired_median"] = round(med(pairs), 3) if pairs else None
        data["goal"] = goal(self.function)
        data["met"] = data["ratio_wall"] <= data["goal"]
        if self.packages_wall:
            data["packages_wall_ms"] = round(float(med(self.packages_wall)), 1)
            data["packages_cpu_ms"] = round(float(med(self.packages_cpu)), 1)
            data["ratio_wall_packages"] = round(data["handler_wall_ms"] / data["packages_wall_ms"], 3)
        return data


def rounds(functions: Sequence[str], samples: int, kinds: Sequence[str]) -> Iterator[list[tuple[str, str]]]:
    """The order of the samples, round by round: each function next to its floor(s), the order
    within each pair flipping every round and the functions' order reversed every other round."""
    for i in range(samples):
        order = list(functions) if i % 4 < 2 else list(reversed(functions))
        within = list(kinds) if i % 2 == 0 else list(reversed(kinds))
        yield [(fn, kind) for fn in order for kind in within]


def measure(
    tree: LambdaTree,
    functions: Sequence[str] = FUNCTIONS,
    samples: int = 7,
    progress: Callable[[str], None] = print,
    *,
    packages_floor: bool = False,
    warmup: int = 1,
) -> dict[str, ColdStart]:
    kinds = (HANDLER, BARE, PACKAGES) if packages_floor else (HANDLER, BARE)
    results = {fn: ColdStart(fn) for fn in functions}
    for _ in range(warmup):  # page the files in; not counted
        for fn in functions:
            for kind in kinds:
                sample(tree, fn, kind)
    for i, this_round in enumerate(rounds(functions, samples, kinds)):
        for fn, kind in this_round:
            results[fn].add(kind, *sample(tree, fn, kind))
        progress(f"  cold start: sample {i + 1}/{samples}")
    return results


def summaries(results: Mapping[str, ColdStart]) -> dict[str, dict[str, Any]]:
    return {fn: result.summary() for fn, result in results.items()}


def raw(results: Mapping[str, ColdStart]) -> dict[str, dict[str, list[float]]]:
    return {
        fn: {k: [round(x, 2) for x in getattr(r, k)] for k in vars(r) if k != "function" and getattr(r, k)}
        for fn, r in results.items()
    }


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render(functions: Mapping[str, Mapping[str, Any]], defer_top: int = 3) -> str:
    """The cold-start table: each function's median against the bare floor's, and its goal."""
    packages = any("packages_wall_ms" in data for data in functions.values())
    headers = ["function", "cold ms", "bare floor ms", "ratio", "goal", "met?", "CPU ratio"]
    if packages:
        headers.append("packages floor ms")
    headers.append("defer next (ms above the bare floor, -X importtime)")
    rows = []
    for function, data in functions.items():
        row: list[Any] = [
            function,
            data["handler_wall_ms"],
            data["bare_wall_ms"],
            f"{data['ratio_wall']:.2f}x",
            f"{data['goal']:.2f}x",
            "yes" if data["met"] else "no",
            f"{data['ratio_cpu']:.2f}x",
        ]
        if packages:
            row.append(data.get("packages_wall_ms", "-"))
        defer = data.get("importtime", {}).get("defer_next_ms", {})
        row.append(", ".join(f"{k} {v}" for k, v in list(defer.items())[:defer_top]) or "-")
        rows.append(row)
    met = sum(1 for data in functions.values() if data["met"])
    samples = {data["samples"] for data in functions.values()}
    return (
        _table(headers, rows)
        + f"\n\nMedians of {'/'.join(str(n) for n in sorted(samples))} fresh processes each, alternating "
        f"with the bare floor; goals met: {met} of {len(functions)}."
    )


if __name__ == "__main__":  # quick look: python -m bench.coldstart verify [samples]
    from pathlib import Path

    from bench.lambda_env import build

    tree, _ = build(Path("bench-results/lambda"))
    names = sys.argv[1].split(",") if len(sys.argv) > 1 else list(FUNCTIONS)
    found = summaries(measure(tree, names, int(sys.argv[2]) if len(sys.argv) > 2 else 5))
    bare = bare_floor_modules(tree)
    for name in names:
        found[name]["importtime"] = importtime(tree, name, floor=bare, runs=1)
    print(render(found))
    print(json.dumps(found, indent=1))
