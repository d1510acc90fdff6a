"""`make bench-segments`: where a warm HTTP invocation's CPU goes, segment by segment, in place.

    PYTHONPATH=layers/steppay:sandbox:local:. .venv/bin/python -m bench.segments [--iterations N]

The warm-latency table (`make bench`) compares each handler with its floor; this says what the
difference is made of. Each segment (a Powertools layer, a payment-flow step, the StepPay client,
the store, a log line) is timed by the thread's CPU clock while the real handler runs against
DynamoDB Local, moto and the sandbox, with the time spent inside I/O calls (botocore's API call,
requests' send) taken out. Segments nest: a row is inclusive of the rows it calls. A tight loop
of the same code would show smaller figures; between I/O waits the caches are cold, and that is
the handler's real cost. The floor (same I/O, raw boto3 and requests) is measured the same way.

Prints a table per endpoint and writes `bench-results/segments.json`. Never passes or fails.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench-results"
_ABSENT = object()


class Patches:
    """Attribute swaps for the bench process, undone in reverse order."""

    def __init__(self) -> None:
        self._undo: list[tuple[Any, str, Any]] = []  # (owner, name, what its __dict__ held)

    def swap(self, owner: Any, attr: str, replacement: Any) -> None:
        self._undo.append((owner, attr, vars(owner).get(attr, _ABSENT)))
        setattr(owner, attr, replacement)

    def restore(self) -> None:
        for owner, attr, original in reversed(self._undo):
            if original is _ABSENT:  # an instance that used its class's method
                delattr(owner, attr)
            else:
                setattr(owner, attr, original)
        self._undo.clear()


def write_results(filename: str, results: dict[str, Any]) -> None:
    """A bench's figures as JSON in bench-results/, and where they went."""
    path = OUT / filename
    path.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(f"\nwritten: {path.relative_to(ROOT)}")


class SegmentClock:
    """CPU per labelled segment, minus the CPU spent inside I/O calls made within it."""

    def __init__(self) -> None:
        self.io = 0.0
        self.io_by: defaultdict[str, float] = defaultdict(float)
        self.totals: defaultdict[str, float] = defaultdict(float)
        self._patches = Patches()

    def io_call(self, owner: Any, attr: str, label: str) -> None:
        original = getattr(owner, attr)
        clock = self

        @functools.wraps(original)
        def timed_io(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                spent = time.thread_time() - started
                clock.io += spent
                clock.io_by[label] += spent

        self._patches.swap(owner, attr, timed_io)

    def segment(self, owner: Any, attr: str, label: str) -> None:
        original = getattr(owner, attr)
        clock = self
        depth = [0]

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            depth[0] += 1
            started, io_before = time.thread_time(), clock.io
            try:
                return original(*args, **kwargs)
            finally:
                depth[0] -= 1
                if depth[0] == 0:  # recursion is counted once
                    clock.totals[label] += (time.thread_time() - started) - (clock.io - io_before)

        self._patches.swap(owner, attr, timed)

    def reset(self) -> None:
        self.io = 0.0
        self.io_by.clear()
        self.totals.clear()

    def restore(self) -> None:
        self._patches.restore()


def instrument(clock: SegmentClock, modules: dict[str, Any]) -> None:
    """The segments worth naming on the pay-url and verify paths."""
    import aws_lambda_powertools.event_handler.api_gateway as api_gateway
    import aws_lambda_powertools.event_handler.middlewares.openapi_validation as openapi_validation
    import aws_lambda_powertools.logging.logger as powertools_logger
    import botocore.client
    import requests
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

    import steppay.client as steppay_client
    import steppay.payments as payments
    import steppay.persistence as persistence

    clock.io_call(botocore.client.BaseClient, "_make_api_call", "AWS API calls")
    clock.io_call(requests.Session, "send", "StepPay (requests' send)")

    for logical_id, short in (("PayUrlFunction", "pay-url"), ("VerifyFunction", "verify")):
        module = modules[logical_id]
        clock.segment(module, "lambda_handler", f"{short}: handler, with Logger/Tracer/Metrics decorators")
        clock.segment(module, "resolve_http", f"{short}: body prechecks + resolver")
        clock.segment(module.app, "resolve", f"{short}: resolver")
    for owner, attrs in (
        (openapi_validation.OpenAPIRequestValidationMiddleware, ("handler",)),
        (openapi_validation.OpenAPIResponseValidationMiddleware, ("handler", "_handle_response")),
        (api_gateway.ResponseBuilder, ("build",)),
        (payments.PaymentFlows, ("create_pay_url", "verify_and_record", "apply_verdict")),
        (steppay_client.StepPayClient, ("create_order", "get_order", "_call", "_model", "build_pay_url")),
        (requests.Session, ("request",)),
        (persistence.PaymentStore, ("save_pending_order", "get_payment", "record_verified_payment")),
        (persistence._ItemTable, ("_attributes", "_item")),
        (powertools_logger.Logger, ("info",)),
        (AmazonCloudWatchEMFProvider, ("add_metric", "flush_metrics")),
    ):
        for attr in attrs:
            clock.segment(owner, attr, f"{owner.__name__}.{attr}")
    for module, attrs in (
        (payments, ("check_redirect_url", "verify_payment")),
        (persistence, ("record_from_item", "_to_item")),
        (steppay_client, ("dumps_json", "_read")),
    ):
        for attr in attrs:
            clock.segment(module, attr, f"{module.__name__.rsplit('.', 1)[-1]}.{attr}")


def measure(clock: SegmentClock, calls: Callable[[int], Any], count: int, offset: int) -> dict[str, Any]:
    clock.reset()
    started = time.thread_time()
    for i in range(offset, offset + count):
        calls(i)
    total = time.thread_time() - started
    per_call = {label: round(value / count * 1000, 3) for label, value in clock.totals.items()}
    return {
        "cpu_ms": round(total / count * 1000, 3),
        "io_cpu_ms": round(clock.io / count * 1000, 3),
        "io_cpu_ms_by_kind": {k: round(v / count * 1000, 3) for k, v in clock.io_by.items()},
        "outside_io_cpu_ms": round((total - clock.io) / count * 1000, 3),
        "segments_ms": dict(sorted(per_call.items(), key=lambda kv: -kv[1])),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--iterations", type=int, default=300, help="measured invocations per endpoint (300)")
    args = parser.parse_args(argv)
    warmup, count = 20, args.iterations
    OUT.mkdir(exist_ok=True)

    from bench import backends as backends_module
    from bench import warm

    instruments = backends_module.install_instruments()
    print("== backends: DynamoDB Local, moto, StepPay sandbox", file=sys.stderr, flush=True)
    backends = backends_module.start_backends()
    clock = SegmentClock()
    results: dict[str, Any] = {}
    try:
        bench = warm.WarmBench(backends, instruments, OUT, progress=lambda m: print(m, file=sys.stderr))
        paid_by_handler = bench.paid_orders(warmup + count, via_handler=True)
        paid_by_floor = bench.paid_orders(warmup + count, via_handler=False)
        instrument(clock, bench.handlers.modules)
        runs: dict[str, tuple[Callable[[int], Any], Callable[[int], Any]]] = {
            "pay-url": (lambda i: bench.handler_pay_url(), lambda i: bench.floor.pay_url()),
            "verify": (
                lambda i: bench.handler_verify(paid_by_handler[i]),
                lambda i: bench.floor.verify(paid_by_floor[i]),
            ),
        }
        with backends_module.stdout_to(OUT / "handler-stdout.log"):
            for name, (handler, floor) in runs.items():
                for i in range(warmup):
                    handler(i)
                    floor(i)
                results[name] = {
                    "handler": measure(clock, handler, count, warmup),
                    "floor": measure(clock, floor, count, warmup),
                }
    finally:
        clock.restore()
        backends.stop()

    for name, found in results.items():
        handler, floor = found["handler"], found["floor"]
        print(f"\n### {name}: CPU per call (ms), {count} invocations")
        print(
            f"handler {handler['cpu_ms']} (I/O calls {handler['io_cpu_ms']}, the rest "
            f"{handler['outside_io_cpu_ms']}); floor {floor['cpu_ms']} (I/O calls {floor['io_cpu_ms']}, "
            f"the rest {floor['outside_io_cpu_ms']})"
        )
        for kind, value in handler["io_cpu_ms_by_kind"].items():
            print(f"  inside {kind}: handler {value}, floor {floor['io_cpu_ms_by_kind'].get(kind, '-')}")
        print()
        print("| segment (inclusive, I/O taken out) | handler | floor |")
        print("| --- | --- | --- |")
        for label, value in handler["segments_ms"].items():
            if label.startswith("pay-url:" if name == "verify" else "verify:"):
                continue
            print(f"| {label} | {value} | {floor['segments_ms'].get(label, '-')} |")
    write_results("segments.json", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
