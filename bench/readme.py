"""The README's performance table, from one `make bench` run.

    .venv/bin/python -m bench.readme [bench-results/latest.json]
    .venv/bin/python -m bench.readme --cost [bench-results/cost.json]

The second form keeps the last `make bench-cost` run's figures beside the full run's (a cost run
measures no cold starts, so the full run's table stays as it was).

Keeps the figures the README shows in `docs/benchmarks/readme-run.json` (a small extract of the
run: when, on what, cold starts, warm p50s, cost per million) and writes the table rendered from
it between `<!-- bench:start -->` and `<!-- bench:end -->` in README.md and README.ko.md.
`tests/build/test_readme_performance.py` renders the table again from that file and requires it
in README.md, so the README's figures are always one run's, with its date and machine.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXTRACT = ROOT / "docs" / "benchmarks" / "readme-run.json"
READMES = (ROOT / "README.md", ROOT / "README.ko.md")  # the same table in both
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
SHOWN = ("checkouts", "verify", "webhook_intake", "webhook_processor", "publisher", "reconciliation")
# The warm phase's endpoint names (bench.warm) of the functions someone waits on.
WARM = {"checkouts": "checkout", "verify": "verify", "webhook_intake": "webhook"}


def extract(results: Mapping[str, Any]) -> dict[str, Any]:
    """What the README shows of a full run's results."""
    cold = results["cold_start"]["functions"]
    warm = results.get("warm_in_process", {})
    cost = results["cost"]
    return {
        "started": results["started"],
        "machine": {k: results["machine"][k] for k in ("platform", "python", "cpus")},
        "load_average_at_start": round(results["machine"]["load_average_at_start"][0], 1),
        "cold": {
            fn: {k: cold[fn][k] for k in ("handler_wall_ms", "bare_wall_ms", "ratio_wall", "goal")}
            for fn in SHOWN
            if fn in cold
        },
        "warm_p50_ms": {fn: warm[name]["handler"]["p50_ms"] for fn, name in WARM.items() if name in warm},
        "usd_per_million": {
            flow: cost[flow]["with_network_latency"]["usd_per_million_total"]
            for flow in ("flow_payment", "flow_renewal")
        },
        "steppay_calls": {
            flow: cost[flow]["measured"]["quantities_per_flow"]["steppay_calls"]
            for flow in ("flow_payment", "flow_renewal")
        },
        "lambda_requests": {
            flow: cost[flow]["measured"]["quantities_per_flow"]["lambda_requests"]
            for flow in ("flow_payment", "flow_renewal")
        },
    }


FLOWS = ("flow_payment", "flow_renewal")
COST_FIGURES = ("lambda_requests", "dynamodb_wru", "sqs_requests", "steppay_calls")


def extract_cost(results: Mapping[str, Any]) -> dict[str, Any]:
    """What the README shows of a `make bench-cost` run."""
    cost = results["cost"]
    return {
        "started": results["started"],
        **{
            flow: {
                **{k: cost[flow]["measured"]["quantities_per_flow"][k] for k in COST_FIGURES},
                "usd_measured": cost[flow]["measured"]["usd_per_million_total"],
                "usd_with_network": cost[flow]["with_network_latency"]["usd_per_million_total"],
            }
            for flow in FLOWS
        },
    }


def _cost_line(run: Mapping[str, Any]) -> str:
    def flow(name: str, what: str) -> str:
        f = run[name]
        return (
            f"per {what}: {f['lambda_requests']} Lambda invocations, {f['dynamodb_wru']} WRU, "
            f"{f['sqs_requests']} SQS requests, {f['steppay_calls']} StepPay calls, ${f['usd_measured']} "
            f"per million (${f['usd_with_network']} with network latency modelled)"
        )

    return (
        f"The last `make bench-cost` run, {run['started']}: "
        f"{flow('flow_payment', 'verified payment')}; {flow('flow_renewal', 'renewal')}."
    )


def render(data: Mapping[str, Any]) -> str:
    machine = data["machine"]
    lines = [
        f"One `make bench` run, {data['started']}, on {machine['platform']} ({machine['cpus']} vCPUs, "
        f"load {data['load_average_at_start']} at start), Python {machine['python']}:",
        "",
        "| function | cold import ms | bare floor ms | ratio (goal) | warm p50 ms (in process) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for fn, cold in data["cold"].items():
        warm = data["warm_p50_ms"].get(fn, "-")
        lines.append(
            f"| {fn} | {cold['handler_wall_ms']} | {cold['bare_wall_ms']} | "
            f"{cold['ratio_wall']:.2f}x ({cold['goal']:.2f}x) | {warm} |"
        )
    usd, calls, requests = data["usd_per_million"], data["steppay_calls"], data["lambda_requests"]
    lines += [
        "",
        f"That run, per verified payment: {requests['flow_payment']} Lambda invocations, "
        f"{calls['flow_payment']} StepPay calls, ${usd['flow_payment']} per million; per renewal: "
        f"{requests['flow_renewal']} invocations, {calls['flow_renewal']} StepPay calls, "
        f"${usd['flow_renewal']} per million "
        "(US East list prices, with network latency modelled).",
    ]
    if "cost_run" in data:
        lines += ["", _cost_line(data["cost_run"])]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--cost"]:
        source = Path(argv[1]) if len(argv) > 1 else ROOT / "bench-results" / "cost.json"
        data = json.loads(EXTRACT.read_text(encoding="utf-8"))
        data["cost_run"] = extract_cost(json.loads(source.read_text(encoding="utf-8")))
    else:
        source = Path(argv[0]) if argv else ROOT / "bench-results" / "latest.json"
        data = extract(json.loads(source.read_text(encoding="utf-8")))
    EXTRACT.parent.mkdir(parents=True, exist_ok=True)
    EXTRACT.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    table = render(data)
    block = f"{START}\n{table}\n{END}"
    for readme in READMES:
        page = readme.read_text(encoding="utf-8")
        pattern = re.escape(START) + r".*?" + re.escape(END)
        updated, count = re.subn(pattern, lambda _: block, page, flags=re.S)
        if count != 1:
            raise SystemExit(f"{readme.name}: expected one {START} ... {END} block, found {count}")
        readme.write_text(updated, encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
