"""Every StepPay call, retries included, ends before the function that makes it is cut off.

A function killed by its Timeout answers the shopper with API Gateway's bare 503 (or leaves an SQS
message to time out) instead of our `steppay_unavailable` with `Retry-After`. The worst case of a
call is its attempts x (connect + read timeout) plus the longest wait between attempts (urllib3's
backoff is capped, a `Retry-After` is honoured up to DEFAULT_MAX_RETRY_AFTER).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from steppay.client import DEFAULT_MAX_RETRY_AFTER, build_retry
from steppay.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
HTTP_API_LIMIT_S = 30  # API Gateway HTTP API's maximum integration timeout
# The functions that call StepPay; the intake only stores and queues.
STEPPAY_CALLERS = ("CheckoutFunction", "VerifyFunction", "WebhookProcessorFunction", "ReconciliationFunction")


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load((ROOT / "template.yaml").read_text(encoding="utf-8"), Loader=_Loader)
    return loaded


def worst_steppay_call_seconds(environment: dict[str, str]) -> float:
    known = {
        name.lower(): value
        for name, value in environment.items()
        if name in ("STEPPAY_CONNECT_TIMEOUT", "STEPPAY_READ_TIMEOUT", "STEPPAY_MAX_RETRIES")
    }
    settings = Settings.model_validate(known)
    retry = build_retry(settings.steppay_max_retries)
    attempts = 1 + settings.steppay_max_retries
    longest_wait = max(float(retry.backoff_max), DEFAULT_MAX_RETRY_AFTER)
    return (
        attempts * (settings.steppay_connect_timeout + settings.steppay_read_timeout)
        + (attempts - 1) * longest_wait
    )


@pytest.mark.parametrize("function", STEPPAY_CALLERS)
def test_a_steppay_call_ends_within_the_function_timeout(template: dict[str, Any], function: str) -> None:
    globals_ = template["Globals"]["Function"]
    properties = template["Resources"][function]["Properties"]
    environment = {
        **globals_["Environment"]["Variables"],
        **properties.get("Environment", {}).get("Variables", {}),
    }
    timeout = properties.get("Timeout", globals_["Timeout"])
    worst = worst_steppay_call_seconds(environment)
    assert worst < timeout, f"{function}: a StepPay call may take {worst:.1f} s, the function has {timeout} s"
    if any(event.get("Type") == "HttpApi" for event in properties.get("Events", {}).values()):
        assert timeout < HTTP_API_LIMIT_S, f"{function}: {timeout} s is beyond the HTTP API's limit"


def test_the_library_defaults_alone_would_not_fit() -> None:
    # What the template's settings guard against: 3 x (3.05 s + 10 s) + 2 x 5 s.
    assert worst_steppay_call_seconds({}) > 25
