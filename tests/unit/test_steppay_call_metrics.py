"""StepPay latency and error metrics: the container client's `on_call` hook."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools import Metrics

from steppay import client as client_module
from steppay.client import CallRecord, record_call_metrics


@pytest.fixture
def metrics(monkeypatch: pytest.MonkeyPatch) -> Iterator[Metrics]:
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "StepPay")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "steppay-payments")
    flusher = Metrics()
    flusher.clear_metrics()
    yield flusher
    flusher.clear_metrics()


def _record(outcome: str, status: int | None = 200, elapsed: float = 12.5) -> CallRecord:
    return CallRecord("get_order", "GET", "/api/v1/orders/{orderIdOrCode}", status, elapsed, 1, outcome)


def _flushed(metrics: Metrics) -> dict[str, Any]:
    blob: dict[str, Any] = metrics.serialize_metric_set()
    return blob


def test_every_call_counts_with_its_latency(metrics: Metrics) -> None:
    record_call_metrics(_record("ok", elapsed=12.5))
    record_call_metrics(_record("StepPayNotFound", status=404, elapsed=30.0))
    blob = _flushed(metrics)
    assert blob["StepPayCalls"] == [1.0, 1.0]
    assert blob["StepPayLatency"] == [12.5, 30.0]
    assert "StepPayErrors" not in blob  # StepPay answered: no such order is not an outage
    units = {m["Name"]: m["Unit"] for m in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units == {"StepPayCalls": "Count", "StepPayLatency": "Milliseconds"}


@pytest.mark.parametrize(
    "outcome", ["StepPayUnavailable", "StepPayAuthFailed", "StepPayMalformedResponse", "error"]
)
def test_failures_count_as_errors(metrics: Metrics, outcome: str) -> None:
    record_call_metrics(_record(outcome, status=None))
    assert _flushed(metrics)["StepPayErrors"] == [1.0]


def test_a_rejected_order_is_not_an_error(metrics: Metrics) -> None:
    record_call_metrics(_record("StepPayRejected", status=422))
    assert "StepPayErrors" not in _flushed(metrics)


def test_the_container_client_reports_through_the_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEPPAY_SECRET_TOKEN", "token")
    monkeypatch.setenv("STEPPAY_SECRET_TOKEN_PARAM", "")
    client_module.get_settings.cache_clear()
    client_module.get_client.cache_clear()
    try:
        client = client_module.get_client()
        assert client._on_call is record_call_metrics
    finally:
        client_module.get_client.cache_clear()
        client_module.get_settings.cache_clear()


def test_metrics_go_out_with_the_handlers_flush(metrics: Metrics, capsys: pytest.CaptureFixture[str]) -> None:
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: object) -> None:
        record_call_metrics(_record("StepPayUnavailable", status=503, elapsed=3000.0))

    handler({}, None)
    emitted = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert emitted["StepPayErrors"] == [1.0]
    assert emitted["StepPayLatency"] == [3000.0]
    assert emitted["service"] == "steppay-payments"
