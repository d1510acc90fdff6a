"""Each function imports only what its path needs (the cold start the shopper or StepPay waits for).

Checked in a fresh interpreter per function: the modules listed must not be loaded by importing
the handler. The webhook intake authenticates and queues (it reads no table); StepPay's client, the payment
flows and the order models belong to the processor. The checkout and verification read one order:
StepPay's listings, subscriptions and webhook bodies are built only where used.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

LATER = ("steppay.listing_models", "steppay.subscription_models", "steppay.webhook_models")
NOT_IMPORTED = {
    # The intake authenticates and queues: no table (the queue is its durable store), no StepPay.
    "webhook_intake": (
        "steppay.models",
        "steppay.client",
        "steppay.service",
        "steppay.payments",
        "steppay.persistence",
        *LATER,
    ),
    "publisher": ("steppay.models", "steppay.client", "steppay.api_models", *LATER),
    # The shopper's paths read one order: no pages, subscriptions or webhook bodies.
    "checkouts": LATER,
    "verify": LATER,
}


def loaded_modules(function: str, **variables: str) -> set[str]:
    code = f"import json, sys; import {function}; print(json.dumps(sorted(sys.modules)))"
    env = {
        **{k: v for k, v in os.environ.items() if k != "STEPPAY_POWERTOOLS_TRACER"},
        **variables,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "steppay"), str(ROOT / "functions" / function)]),
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_DEFAULT_REGION": "ap-northeast-2",
        "ENTITLEMENTS_TABLE_NAME": "entitlements",  # the example subscriber refuses to start without it
    }
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("function", sorted(NOT_IMPORTED))
def test_a_handler_does_not_import_what_its_path_does_not_need(function: str) -> None:
    loaded = loaded_modules(function)
    assert "steppay" in loaded, "the handler was imported with the layer"
    unexpected = sorted(set(NOT_IMPORTED[function]) & loaded)
    assert not unexpected, f"{function} imports {unexpected} at cold start"


def test_the_check_sees_what_a_handler_does_import() -> None:
    # These handlers need StepPay's client and order models at once: the check must find them.
    for function in ("checkouts", "webhook_processor"):
        loaded = loaded_modules(function)
        assert {"steppay.client", "steppay.models", "steppay.service"} <= loaded, function


SHOPPER_FACING = ("checkouts", "verify", "webhook_intake")
# The example subscriber a merchant copies follows the same switch (its cold start was 1.5x the floor).
OPT_IN_TRACER = (*SHOPPER_FACING, "entitlements")


@pytest.mark.parametrize("function", OPT_IN_TRACER)
def test_no_handler_imports_the_xray_sdk_unless_the_tracer_is_enabled(function: str) -> None:
    # Lambda's `Tracing: Active` needs no SDK; the Powertools Tracer (opt-in) imports and patches it.
    assert not {m for m in loaded_modules(function) if m.startswith("aws_xray_sdk")}
    enabled = loaded_modules(function, STEPPAY_POWERTOOLS_TRACER="enabled")
    assert "aws_xray_sdk" in enabled, "the opt-in must bring the Powertools Tracer back"
