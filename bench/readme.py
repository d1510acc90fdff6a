"""The README's performance table, from one `make bench` run.

    PYTHONPATH=. .venv/bin/python -m bench.readme [bench-results/latest.json]

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
        f"Per verified payment: {requests['flow_payment']} Lambda invocations, {calls['flow_payment']} "
        f"StepPay calls, ${usd['flow_payment']} per million; per renewal: {requests['flow_renewal']} "
        f"invocations, {calls['flow_renewal']} StepPay calls, ${usd['flow_renewal']} per million "
        "(US East list prices, with network latency modelled).",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
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
