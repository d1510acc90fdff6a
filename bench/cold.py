"""`make bench-cold`: cold imports against the bare floor, and the first invocations.

    PYTHONPATH=layers/steppay:sandbox:local:merchant:. .venv/bin/python -m bench.cold [options]

1. Each function's cold import (a fresh Lambda-like process importing its handler module)
   alternating with the bare floor's (`bench/bare_floor.py`), medians of `--samples`; the ratio
   to the goal (`bench.coldstart.GOALS`); `-X importtime`'s costliest imports above the bare floor
   (what to defer next).
2. The first invocation of each HTTP function (checkouts, verify, webhook intake) in a fresh
   process against DynamoDB Local, moto and the StepPay sandbox, split into import, set-up and
   the rest (`bench.first`).

Prints both tables and writes `bench-results/cold.json`. Never pass/fail: a measurement.
`--quick`: 3 samples, 1 process per first invocation.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from bench import coldstart, lambda_env

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench-results"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cold_imports(
    tree: lambda_env.LambdaTree, samples: int, importtime_runs: int, *, packages_floor: bool = False
) -> dict[str, Any]:
    found = coldstart.measure(tree, samples=samples, progress=log, packages_floor=packages_floor)
    data = coldstart.summaries(found)
    log("  -X importtime")
    bare = coldstart.bare_floor_modules(tree)
    for function in data:
        data[function]["importtime"] = coldstart.importtime(tree, function, floor=bare, runs=importtime_runs)
    return {"functions": data, "raw": coldstart.raw(found), "bare_floor_modules": len(bare)}


def first_invocations(tree: lambda_env.LambdaTree, processes: int) -> dict[str, Any]:
    from bench import backends as backends_module

    instruments = backends_module.install_instruments()  # before any boto3 client exists
    log("  backends: DynamoDB Local, moto, StepPay sandbox")
    backends = backends_module.start_backends()
    try:
        from bench import first, warm

        bench = warm.WarmBench(backends, instruments, OUT, progress=log)
        return first.run(bench, tree, processes, progress=log)
    finally:
        backends.stop()


def write(results: dict[str, Any]) -> Path:
    OUT.mkdir(exist_ok=True)
    path = OUT / "cold.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def render(results: dict[str, Any]) -> str:
    from bench import first

    out = []
    cold = results.get("cold_start")
    if cold:
        out.append("### Cold import against the bare floor (fresh process, median wall ms)\n")
        out.append(coldstart.render(cold["functions"]))
    firsts = results.get("first_invocation")
    if firsts:
        out.append("\n### First invocation of the HTTP functions (fresh process, ms)\n")
        out.append(first.render(firsts))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="3 samples, 1 first-invocation process")
    parser.add_argument("--samples", type=int, default=7, help="fresh processes per function and floor (7)")
    parser.add_argument("--importtime-runs", type=int, default=1, help="-X importtime runs per function (1)")
    parser.add_argument("--first", type=int, default=3, help="fresh processes per first invocation (3)")
    parser.add_argument("--skip-first", action="store_true", help="cold imports only (no backends)")
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.first = 3, 1
    started = time.perf_counter()
    results: dict[str, Any] = {
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_at_start": list(os.getloadavg()),
        },
        "settings": vars(args),
        "goals": {**coldstart.GOALS, "others": coldstart.DEFAULT_GOAL},
    }
    log("== Lambda-like trees (bench-results/lambda)")
    tree, _ = lambda_env.build(OUT / "lambda", results.setdefault("notes", []))
    log("== cold imports, alternating with the bare floor")
    phase = time.perf_counter()
    results["cold_start"] = cold_imports(tree, args.samples, args.importtime_runs)
    results["seconds"] = {"cold_start": round(time.perf_counter() - phase, 1)}
    if not args.skip_first:
        log("== first invocations")
        phase = time.perf_counter()
        results["first_invocation"] = first_invocations(tree, args.first)
        results["seconds"]["first_invocation"] = round(time.perf_counter() - phase, 1)
    results["seconds"]["total"] = round(time.perf_counter() - started, 1)
    results["load_average_at_end"] = list(os.getloadavg())
    path = write(results)
    print(render(results))
    log(f"\nwritten: {path.relative_to(ROOT)} ({results['seconds']['total']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
