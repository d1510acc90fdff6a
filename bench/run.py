"""`make bench`: cold starts, warm latency, connection reuse, memory and cost, as figures.

    PYTHONPATH=layers/steppay:sandbox:local:. .venv/bin/python -m bench.run [options]

Prints tables and writes `bench-results/bench-<time>.json`, `bench-results/latest.json` and
`bench-results/summary.md` (the tables, for the README). Nothing here passes or fails on speed:
a benchmark on a shared machine is a measurement, not a test. `--quick` runs a short version
(fewer samples and invocations) to check that everything works.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import cold as bench_cold
from bench import coldstart, cost, lambda_env

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench-results"
# Someone waits on these: the merchant's checkout on its registration (the shopper is sent to the
# pay link only after it), the shopper on verification, StepPay on the webhook intake.
SHOPPER_FACING = ("CheckoutFunction", "VerifyFunction", "WebhookIntakeFunction")
MODULE_OF = {
    "CheckoutFunction": "checkouts",
    "VerifyFunction": "verify",
    "WebhookIntakeFunction": "webhook_intake",
    "WebhookProcessorFunction": "webhook_processor",
    "PublisherFunction": "publisher",
    "ReconciliationFunction": "reconciliation",
    "EntitlementSubscriberFunction": "entitlements",
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(c) for c in row] for row in rows]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def phase(results: dict[str, Any], name: str, run: Callable[[], Any]) -> Any:
    log(f"== {name}")
    started = time.perf_counter()
    value = run()
    results.setdefault("seconds", {})[name] = round(time.perf_counter() - started, 1)
    results[name] = value
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short run: 3 cold samples, 50 invocations")
    parser.add_argument(
        "--cold-samples", type=int, default=7, help="fresh processes per function and floor (7)"
    )
    parser.add_argument("--iterations", type=int, default=500, help="warm invocations per endpoint (500)")
    parser.add_argument("--flows", type=int, default=30, help="payments and renewals counted (30 each)")
    parser.add_argument(
        "--process-invocations", type=int, default=100, help="invocations per fresh function process (100)"
    )
    parser.add_argument("--skip", default="", help="comma-separated phases to skip: cold,api")
    parser.add_argument(
        "--cost-only",
        action="store_true",
        help="`make bench-cost`: the counted flows and the priced table only (no timing phases)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.cold_samples, args.iterations, args.flows, args.process_invocations = 3, 50, 5, 10
    skip = set(filter(None, args.skip.split(",")))
    if args.cost_only:
        return cost_only(args)
    OUT.mkdir(exist_ok=True)
    started = dt.datetime.now(dt.UTC)
    results: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "machine": _machine(),
        "settings": vars(args),
    }

    log("== Lambda-like trees (bench-results/lambda)")
    build_log: list[str] = []
    tree, tree_src = lambda_env.build(OUT / "lambda", build_log)
    results["versions"] = lambda_env.versions(tree)
    results["notes"] = build_log

    if "cold" not in skip:

        def cold_phase() -> dict[str, Any]:
            found = bench_cold.cold_imports(
                tree, args.cold_samples, 1 if args.quick else 3, packages_floor=True
            )
            no_bytecode = {}
            for function in ("checkouts", "verify"):
                walls = [
                    coldstart.sample(tree_src, function)[0] for _ in range(max(3, args.cold_samples // 2))
                ]
                no_bytecode[function] = round(sorted(walls)[len(walls) // 2], 1)
            found["layer_without_bytecode_wall_ms"] = no_bytecode
            return found

        phase(results, "cold_start", cold_phase)

    # Everything below runs against DynamoDB Local, moto and the sandbox.
    from bench import backends as backends_module

    instruments = backends_module.install_instruments()  # before any boto3 client exists
    log("== backends: DynamoDB Local, moto, StepPay sandbox")
    backends = backends_module.start_backends()
    results["endpoints"] = {
        backends.dynamodb.endpoint_url.split("//")[-1]: "DynamoDB Local",
        backends.moto.endpoint_url.split("//")[-1]: "moto (SQS, EventBridge)",
        backends.sandbox.url.split("//")[-1]: "StepPay sandbox",
    }
    try:
        from bench import flows, memory, warm

        bench = warm.WarmBench(backends, instruments, OUT, progress=log)
        phase(results, "memory", lambda: memory.run(bench, tree, count=args.process_invocations))
        if "cold" not in skip:
            from bench import first

            processes = 1 if args.quick else 3
            phase(results, "first_invocation", lambda: first.run(bench, tree, processes, progress=log))
        iterations, warmup = args.iterations, max(10, args.iterations // 25)
        phase(results, "warm_in_process", lambda: bench.run(iterations, warmup))
        phase(results, "connection_reuse", lambda: bench.reuse(100))
        phase(results, "other_functions", lambda: bench.extra_durations(min(100, iterations)))
        counter = flows.Flows(bench)
        phase(results, "flow_payment", lambda: counter.payments(args.flows))
        phase(results, "flow_renewal", lambda: counter.renewals(args.flows))
        results["item_sizes"] = flows.item_sizes(
            [backends.table, backends.infra.table_names["EntitlementsTable"]]
        )
        if "api" not in skip:
            from bench.localapi import LocalApiBench

            log("== local API (LocalStack on the same DynamoDB Local and moto)")
            api = LocalApiBench(backends, OUT / "local-stack.log")
            try:
                phase(results, "warm_local_api", lambda: api.run(iterations, warmup, progress=log))
                phase(results, "connection_reuse_local_api", lambda: api.reuse(100))
            finally:
                api.stop()
        results["memory_sizes"] = dict(backends.memory_sizes)
    finally:
        backends.stop()

    if "cold_start" in results:  # the same file `make bench-cold` writes
        keys = ("started", "machine", "cold_start", "first_invocation")
        bench_cold.write({k: results[k] for k in keys if k in results})
    results["cost"] = costs(results)
    results["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    path = OUT / f"bench-{stamp}.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    shutil.copyfile(path, OUT / "latest.json")
    summary = render(results)
    (OUT / "summary.md").write_text(summary + "\n", encoding="utf-8")
    print(summary)
    log(f"\nwritten: {path.relative_to(ROOT)}, bench-results/latest.json, bench-results/summary.md")
    return 0


def _machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_at_start": list(os.getloadavg()),
    }


def cost_only(args: argparse.Namespace) -> int:
    """The counted flows (payments, renewals), one reconciliation run and the priced table."""
    from bench import backends as backends_module
    from bench import flows, warm

    OUT.mkdir(exist_ok=True)
    started = dt.datetime.now(dt.UTC)
    results: dict[str, Any] = {"started": started.isoformat(timespec="seconds"), "machine": _machine()}
    results["settings"] = vars(args)
    instruments = backends_module.install_instruments()  # before any boto3 client exists
    log("== backends: DynamoDB Local, moto, StepPay sandbox")
    backends = backends_module.start_backends()
    try:
        bench = warm.WarmBench(backends, instruments, OUT, progress=log)
        counter = flows.Flows(bench)
        phase(results, "flow_payment", lambda: counter.payments(args.flows))
        phase(results, "flow_renewal", lambda: counter.renewals(args.flows))
        results["other_functions"] = {"reconciliation": bench.reconciliation_durations()}
        results["item_sizes"] = flows.item_sizes(
            [backends.table, backends.infra.table_names["EntitlementsTable"]]
        )
        results["memory_sizes"] = dict(backends.memory_sizes)
    finally:
        backends.stop()
    results["cost"] = costs(results)
    results["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    path = OUT / "cost.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    summary = render(results)
    (OUT / "cost.md").write_text(summary + "\n", encoding="utf-8")
    print(summary)
    log(f"\nwritten: {path.relative_to(ROOT)}, bench-results/cost.md")
    return 0


def costs(results: dict[str, Any]) -> dict[str, Any]:
    memory = results["memory_sizes"]
    sizes = results["item_sizes"]
    reconciliation = results["other_functions"]["reconciliation"]
    # Each paid order is seen by every run whose window covers it: window / schedule interval.
    passes = 180 / 60
    found: dict[str, Any] = {"prices": cost.PRICE_NOTES, "reconciliation_passes_per_order": passes}
    for name in ("flow_payment", "flow_renewal"):
        flow = results[name]
        found[name] = {
            "measured": cost.flow_cost(flow, memory, sizes, reconciliation, reconciliation_passes=passes),
            "with_network_latency": cost.flow_cost(
                flow, memory, sizes, reconciliation, reconciliation_passes=passes, production=True
            ),
        }
    found["scheduler_usd_per_month"] = round(cost.scheduler_monthly_usd(), 4)
    # Memory options per function: warm duration from the flows, cold start from the cold runs.
    timings: dict[str, dict[str, float]] = {}
    for name in ("flow_payment", "flow_renewal"):
        flow = results[name]
        for function, wall in flow["mean_wall_ms"].items():
            timings.setdefault(function, {"wall_ms": wall, "cpu_ms": flow["mean_cpu_ms"][function]})
    timings["ReconciliationFunction"] = {
        "wall_ms": reconciliation["wall_ms_per_paid_order"],
        "cpu_ms": reconciliation["cpu_ms_per_paid_order"],
    }
    cold: dict[str, dict[str, float]] = {}
    for function, module in MODULE_OF.items():
        data = results.get("cold_start", {}).get("functions", {}).get(module)
        if data:
            cold[function] = {"cpu_ms": data["handler_cpu_ms"], "wall_ms": data["handler_wall_ms"]}
    rss = {f: m["peak_rss_mb"] for f, m in results.get("memory", {}).items()}
    found["memory_options"] = cost.memory_options(timings, cold, rss)
    found["memory_recommended"] = {
        function: cost.recommend(rows, function in SHOPPER_FACING)
        for function, rows in found["memory_options"].items()
    }
    return found


def render(results: dict[str, Any]) -> str:
    out: list[str] = []
    machine = results["machine"]
    out.append(
        f"Run {results['started']} on {machine['platform']}, Python {machine['python']}, "
        f"{machine['cpus']} CPUs, load average at start {machine['load_average_at_start'][0]:.1f}."
    )
    cold_start = results.get("cold_start")
    if cold_start:
        out.append(
            "\n### Cold start (import of the handler module, fresh process, median wall ms) against the "
            "bare floor\n"
        )
        out.append(coldstart.render(cold_start["functions"]))
        out.append(
            "\nThe packages floor imports the function's third-party packages and sets up its Powertools "
            "parts; above it is ours. Our costliest modules (ms, `-X importtime` self): "
            + "; ".join(
                f"{f}: " + ", ".join(f"{k} {v}" for k, v in list(d["importtime"]["ours_ms"].items())[:3])
                for f, d in cold_start["functions"].items()
            )
        )
        groups = {f: d["importtime"]["groups_ms"] for f, d in cold_start["functions"].items()}
        names = sorted({g for v in groups.values() for g in v})
        out.append("\nImport time by group (ms, `-X importtime` self times, median of the runs):\n")
        out.append(
            table(["function", *names], [[f, *[v.get(n, 0) for n in names]] for f, v in groups.items()])
        )
        nb = cold_start.get("layer_without_bytecode_wall_ms", {})
        if nb:
            out.append(
                "\nWithout the layer's bytecode (as a `--no-compile` layer runs on read-only /opt): "
                + ", ".join(f"{k} {v} ms" for k, v in nb.items())
                + "."
            )
    firsts = results.get("first_invocation")
    if firsts:
        from bench import first

        out.append("\n### First invocation of the HTTP functions (fresh process, ms)\n")
        out.append(first.render(firsts))
    warm = results.get("warm_in_process")
    api = results.get("warm_local_api", {})
    if warm:
        out.append("\n### Warm latency (ms)\n")
        rows = []
        for name, data in warm.items():
            h, f = data["handler"], data["floor"]
            a = api.get(name, {})
            rows.append(
                [
                    name,
                    h["n"],
                    h["p50_ms"],
                    h["p99_ms"],
                    f["p50_ms"],
                    f["p99_ms"],
                    f"{data['ratio_p50']:.2f}x / {data['ratio_p99']:.2f}x",
                    h["cpu_p50_ms"],
                    a.get("p50_ms", "-"),
                    a.get("p99_ms", "-"),
                    data["errors"],
                ]
            )
        out.append(
            table(
                [
                    "endpoint",
                    "n",
                    "handler p50",
                    "handler p99",
                    "floor p50",
                    "floor p99",
                    "ratio p50 / p99",
                    "handler CPU p50",
                    "local API p50",
                    "local API p99",
                    "errors",
                ],
                rows,
            )
        )
    reuse = results.get("connection_reuse")
    if reuse:
        out.append("\n### Connection reuse (100 warm invocations each, after the first)\n")
        rows = [
            [
                name,
                data["sandbox_new_connections"],
                json.dumps(data["new_connections_by_endpoint"]) or "{}",
                json.dumps(data["boto3_clients_created"]) or "{}",
            ]
            for name, data in reuse.items()
        ]
        api_reuse = results.get("connection_reuse_local_api")
        if api_reuse:
            rows.append(["verify via local API", api_reuse["sandbox_new_connections"], "-", "-"])
        out.append(
            table(
                [
                    "handler",
                    "new TCP connections at the sandbox",
                    "new connections (client side)",
                    "boto3 clients created",
                ],
                rows,
            )
        )
    mem = results.get("memory")
    if mem:
        names = results.get("endpoints", {})
        out.append(
            "\n### A fresh function process: memory, first invocation, connections and clients "
            "(Lambda's trace header set; the Powertools Tracer as the template has it)\n"
        )
        rows = [
            [
                function,
                data["invocations"],
                data["after_import_mb"],
                data["peak_rss_mb"],
                data["import_ms"],
                data["first_invocation_ms"],
                data["warm_invocation_p50_ms"],
                data.get("sandbox_new_connections", "-"),
                ", ".join(
                    f"{names.get(k, k)} {n}" for k, n in sorted(data.get("new_connections", {}).items())
                ),
                ", ".join(f"{k} {n}" for k, n in sorted(data.get("boto3_clients_created", {}).items())),
            ]
            for function, data in mem.items()
        ]
        out.append(
            table(
                [
                    "function",
                    "invocations",
                    "RSS after import MB",
                    "peak RSS MB",
                    "import ms",
                    "1st invocation ms",
                    "warm p50 ms",
                    "new connections at the sandbox",
                    "TCP connections opened",
                    "boto3 clients",
                ],
                rows,
            )
        )
    options = results.get("cost", {}).get("memory_options")
    if options:
        out.append("\n### Memory size: modelled cold start (ms) / warm cost (USD per million invocations)\n")
        sizes = [int(row["memory_mb"]) for row in next(iter(options.values()))]
        rows = []
        for function, function_rows in options.items():
            cells = [
                f"{row.get('cold_start_ms', '-')} / {row['usd_per_million_invocations']}"
                for row in function_rows
            ]
            rows.append(
                [
                    function,
                    *cells,
                    results["cost"]["memory_recommended"][function],
                    results.get("memory_sizes", {}).get(function, "-"),
                ]
            )
        out.append(table(["function", *[f"{s} MB" for s in sizes], "rule picks", "template"], rows))
    costs_ = results.get("cost")
    if costs_:
        out.append("\n### Cost per one million (USD, list prices; see the formula in README)\n")
        lines = list(costs_["flow_payment"]["measured"]["usd_per_million"])
        rows = []
        for line in lines:
            rows.append(
                [
                    line,
                    costs_["flow_payment"]["measured"]["usd_per_million"][line],
                    costs_["flow_payment"]["with_network_latency"]["usd_per_million"][line],
                    costs_["flow_renewal"]["measured"]["usd_per_million"][line],
                    costs_["flow_renewal"]["with_network_latency"]["usd_per_million"][line],
                ]
            )
        rows.append(
            [
                "**total**",
                costs_["flow_payment"]["measured"]["usd_per_million_total"],
                costs_["flow_payment"]["with_network_latency"]["usd_per_million_total"],
                costs_["flow_renewal"]["measured"]["usd_per_million_total"],
                costs_["flow_renewal"]["with_network_latency"]["usd_per_million_total"],
            ]
        )
        rows.append(
            [
                "CloudWatch Logs (extra)",
                costs_["flow_payment"]["measured"]["usd_per_million_logs"],
                costs_["flow_payment"]["with_network_latency"]["usd_per_million_logs"],
                costs_["flow_renewal"]["measured"]["usd_per_million_logs"],
                costs_["flow_renewal"]["with_network_latency"]["usd_per_million_logs"],
            ]
        )
        out.append(
            table(
                [
                    "line",
                    "verified payments (measured)",
                    "payments (+network)",
                    "renewals (measured)",
                    "renewals (+network)",
                ],
                rows,
            )
        )
        out.append("\nQuantities per flow:\n")
        q1 = costs_["flow_payment"]["measured"]["quantities_per_flow"]
        q2 = costs_["flow_renewal"]["measured"]["quantities_per_flow"]
        out.append(
            table(["quantity", "per verified payment", "per renewal"], [[k, q1[k], q2[k]] for k in q1])
        )
        pay, renew = results["flow_payment"], results["flow_renewal"]
        functions = sorted({*pay["invocations"], *renew["invocations"]})
        out.append("\nLambda invocations per flow (publisher: one per stream record):\n")
        out.append(
            table(
                ["function", "per verified payment", "per renewal"],
                [[f, pay["invocations"].get(f, 0), renew["invocations"].get(f, 0)] for f in functions],
            )
        )
        out.append(
            "\nDynamoDB writes per flow (write units: as DynamoDB Local reported them for a "
            "successful call, index entries included; modelled from the item size for a failed "
            "condition):\n"
        )
        units = (
            costs_["flow_payment"]["measured"]["dynamodb_wru_by_write"],
            costs_["flow_renewal"]["measured"]["dynamodb_wru_by_write"],
        )
        rows = []
        for label in sorted({*units[0], *units[1]}):
            operation, _table, prefix, outcome = label.split("|")
            rows.append(
                [
                    f"{operation} {prefix} ({outcome})",
                    f"{pay['dynamodb'].get(label, 0)} / {units[0].get(label, 0)}",
                    f"{renew['dynamodb'].get(label, 0)} / {units[1].get(label, 0)}",
                ]
            )
        out.append(table(["write", "per payment: calls / WRU", "per renewal: calls / WRU"], rows))
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
