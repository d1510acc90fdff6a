"""The publisher counts what it announced, per detail-type (the dashboard's verified payments)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from steppay.events import OutgoingEvent, PublishFailure

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "events" / "publisher" / "stream-payment-verified.json"


class _Context:
    function_name = "PublisherFunction"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:ap-northeast-2:123456789012:function:PublisherFunction"
    aws_request_id = "req-1"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


class _Publisher:
    def __init__(self, fail: bool) -> None:
        self.fail = fail

    def publish(self, events: list[OutgoingEvent]) -> list[PublishFailure]:
        return [PublishFailure(e, "InternalFailure") for e in events] if self.fail else []


def _emitted(out: str) -> dict[str, Any]:
    blobs = [json.loads(line) for line in out.splitlines() if line.startswith('{"_aws"')]
    assert len(blobs) == 1
    blob: dict[str, Any] = blobs[0]
    return blob


def _values(blob: dict[str, Any], name: str) -> list[float]:
    value = blob[name]
    return [float(v) for v in value] if isinstance(value, list) else [float(value)]


@pytest.fixture
def publisher(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "StepPay")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "steppay-payments")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    import publisher as module

    return module


def test_a_verified_payment_is_counted_by_its_detail_type(
    publisher: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(publisher, "get_event_publisher", lambda: _Publisher(fail=False))
    event = json.loads(SAMPLE.read_text(encoding="utf-8"))
    assert publisher.lambda_handler(event, _Context()) == {"batchItemFailures": []}
    blob = _emitted(capsys.readouterr().out)
    assert _values(blob, "PaymentVerifiedEvents") == [1.0]
    assert _values(blob, "EventsPublished") == [1.0]


def test_events_eventbridge_refused_are_not_counted_as_published(
    publisher: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(publisher, "get_event_publisher", lambda: _Publisher(fail=True))
    event = json.loads(SAMPLE.read_text(encoding="utf-8"))
    response = publisher.lambda_handler(event, _Context())
    assert response["batchItemFailures"]
    blob = _emitted(capsys.readouterr().out)
    assert "PaymentVerifiedEvents" not in blob
    assert _values(blob, "EventPublishFailures") == [1.0]
