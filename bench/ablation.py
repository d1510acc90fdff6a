"""`make bench-ablation`: what the warm pay-url gap to its floor is made of, by taking parts away.

    PYTHONPATH=layers/steppay:sandbox:local:. .venv/bin/python -m bench.ablation [--iterations N] [--rounds R]

`make bench-segments` times each layer by the CPU clock; between I/O waits, with cold caches,
those figures do not add up the way a removal would. This measures removals: the real pay-url
handler against DynamoDB Local, moto and the sandbox, alternating call by call with its floor
(raw boto3 and requests replaying the same I/O, as in `make bench`), once as shipped and once
with each part switched off in this process only (never in the shipped code). A variant's
saving is its gap to the floor next to the as-shipped gap measured in the same round; rounds
interleave the variants so that the machine's drift touches all of them alike.

Prints a table and writes `bench-results/ablation.json`. Never passes or fails.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from bench.backends import ORDER_BODY
from bench.segments import OUT, Patches, write_results


@dataclass(frozen=True)
class Variant:
    name: str
    what: str
    apply: Callable[[Patches], None]


def variants(bench: Any) -> list[Variant]:
    """The pay-url path with one part at a time taken away."""
    from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
        OpenAPIResponseValidationMiddleware,
    )
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider
    from botocore.config import Config

    import steppay.payments as payments
    import steppay.persistence as persistence
    from steppay.api_models import PayUrlRequest
    from steppay.http import resolve_http
    from steppay.service import get_payment_flows

    module = bench.handlers.modules["PayUrlFunction"]
    request_body = json.loads(json.dumps(ORDER_BODY))  # what the handler's event carries

    def nothing(patches: Patches) -> None:
        del patches

    def no_log_line(patches: Patches) -> None:
        patches.swap(payments.logger, "info", lambda *args, **kwargs: None)

    def no_metrics(patches: Patches) -> None:
        patches.swap(AmazonCloudWatchEMFProvider, "add_metric", lambda *args, **kwargs: None)
        patches.swap(AmazonCloudWatchEMFProvider, "flush_metrics", lambda *args, **kwargs: None)

    def no_response_validation(patches: Patches) -> None:
        def serialise_only(self: Any, app: Any, next_middleware: Any) -> Any:
            response = next_middleware(app)
            if hasattr(response.body, "model_dump_json"):
                response.body = response.body.model_dump_json(by_alias=True)
            return response

        patches.swap(OpenAPIResponseValidationMiddleware, "handler", serialise_only)

    def no_decorators(patches: Patches) -> None:
        def bare(event: dict[str, Any], context: Any) -> Any:
            try:
                return resolve_http(module.app, event, context)
            finally:
                module.metrics.clear_metrics()

        patches.swap(module, "lambda_handler", bare)

    def flow_only(patches: Patches) -> None:
        # No Powertools event handling at all: the request model validated by hand, the flow
        # called directly, its answer serialised as the route would.
        def direct() -> str:
            try:
                result = get_payment_flows().create_pay_url(PayUrlRequest.model_validate(request_body))
                result.model_dump_json(by_alias=True)
                return result.order_code
            finally:
                module.metrics.clear_metrics()

        patches.swap(bench, "handler_pay_url", direct)

    def no_boto_parameter_validation(patches: Patches) -> None:
        import boto3

        store = persistence.get_payment_store()
        table = store._table  # a bench-only swap of the store's client
        client = boto3.client(
            "dynamodb", config=persistence.AWS_CLIENT_CONFIG.merge(Config(parameter_validation=False))
        )
        patches.swap(table, "_client", client)

    return [
        Variant("as shipped", "the handler as deployed", nothing),
        Variant("no audit log line", "'Pay link issued' not logged", no_log_line),
        Variant("no metrics", "no add_metric, no EMF flush", no_metrics),
        Variant(
            "no response validation",
            "the answer serialised by pydantic, not validated by the resolver",
            no_response_validation,
        ),
        Variant(
            "no botocore parameter validation",
            "DynamoDB client with parameter_validation=False",
            no_boto_parameter_validation,
        ),
        Variant("no Logger/Tracer/Metrics decorators", "the resolver called bare", no_decorators),
        Variant(
            "payment flow only",
            "no resolver, no request validation middleware, no decorators",
            flow_only,
        ),
    ]


@contextmanager
def applied(variant: Variant) -> Iterator[None]:
    patches = Patches()
    try:
        variant.apply(patches)
        yield
    finally:
        patches.restore()


def alternate(bench: Any, count: int) -> dict[str, float]:
    """`count` pay-url calls, handler and floor alternating, as `make bench` runs them."""
    from bench.warm import EndpointResult

    result = EndpointResult()
    bench._alternate(result, count, 0, lambda i: bench.handler_pay_url(), lambda i: bench.floor.pay_url())
    handler_p50, floor_p50 = statistics.median(result.handler.wall), statistics.median(result.floor.wall)
    return {"handler_p50_ms": handler_p50, "floor_p50_ms": floor_p50, "gap_ms": handler_p50 - floor_p50}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--iterations", type=int, default=300, help="pay-url calls per variant per round (300)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all variants (3)")
    args = parser.parse_args(argv)
    OUT.mkdir(exist_ok=True)

    from bench import backends as backends_module
    from bench import warm

    instruments = backends_module.install_instruments()
    print("== backends: DynamoDB Local, moto, StepPay sandbox", file=sys.stderr, flush=True)
    backends = backends_module.start_backends()
    rounds: dict[str, list[dict[str, float]]] = {}
    found: list[Variant] = []
    try:
        bench = warm.WarmBench(backends, instruments, OUT, progress=lambda m: print(m, file=sys.stderr))
        found = variants(bench)
        with backends_module.stdout_to(OUT / "handler-stdout.log"):
            alternate(bench, 30)  # warm-up
            for round_number in range(args.rounds):
                for variant in found:
                    print(f"  round {round_number + 1}: {variant.name}", file=sys.stderr, flush=True)
                    with applied(variant):
                        rounds.setdefault(variant.name, []).append(alternate(bench, args.iterations))
    finally:
        backends.stop()

    shipped = rounds["as shipped"]
    results: dict[str, Any] = {}
    for variant in found:
        runs = rounds[variant.name]
        savings = [base["gap_ms"] - run["gap_ms"] for base, run in zip(shipped, runs, strict=True)]
        results[variant.name] = {
            "what": variant.what,
            "rounds": [{k: round(v, 3) for k, v in run.items()} for run in runs],
            "gap_ms": round(statistics.median(run["gap_ms"] for run in runs), 2),
            "ratio_p50": round(
                statistics.median(run["handler_p50_ms"] / run["floor_p50_ms"] for run in runs), 3
            ),
            "saving_ms": round(statistics.median(savings), 2),
            "saving_range_ms": [round(min(savings), 2), round(max(savings), 2)],
        }

    print(f"\n### pay-url, in process: {args.rounds} rounds x {args.iterations} calls per variant")
    print(
        "| variant | what is taken away | ratio p50 | gap to floor (ms) "
        "| saving vs as shipped (ms, median [range]) |"
    )
    print("| --- | --- | --- | --- | --- |")
    for name, row in results.items():
        low, high = row["saving_range_ms"]
        saving = "-" if name == "as shipped" else f"{row['saving_ms']} [{low} .. {high}]"
        print(f"| {name} | {row['what']} | {row['ratio_p50']}x | {row['gap_ms']} | {saving} |")
    write_results("ablation.json", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
