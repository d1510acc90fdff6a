"""The publisher against moto's EventBridge and SQS in server mode: what a subscriber receives."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = json.loads((ROOT / "events/publisher/stream-payment-verified.json").read_text())
SCHEMA = json.loads((ROOT / "events/schemas/payment-verified.json").read_text())
REGION = "ap-northeast-2"


class Context:
    function_name = "PublisherFunction"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:ap-northeast-2:123456789012:function:PublisherFunction"
    aws_request_id = "req-1"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 10_000


@pytest.fixture
def bus(moto_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A fresh bus with a catch-all rule into an SQS queue, and the publisher pointed at it."""
    name = f"payments-{uuid.uuid4().hex[:8]}"
    kwargs = {
        "endpoint_url": moto_server.endpoint_url,
        "region_name": REGION,
        "aws_access_key_id": "local",
        "aws_secret_access_key": "local",
    }
    events = boto3.client("events", **kwargs)
    sqs = boto3.client("sqs", **kwargs)
    events.create_event_bus(Name=name)
    queue_url = sqs.create_queue(QueueName=f"tap-{name}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(Name="tap", EventBusName=name, EventPattern=json.dumps({"source": ["steppay.payments"]}))
    events.put_targets(Rule="tap", EventBusName=name, Targets=[{"Id": "tap", "Arn": queue_arn}])

    for key, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_ENDPOINT_URL_EVENTBRIDGE": moto_server.endpoint_url,
        "EVENT_BUS_NAME": name,
        "TABLE_NAME": "unused",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "StepPay",
        "POWERTOOLS_SERVICE_NAME": "publisher-test",
    }.items():
        monkeypatch.setenv(key, value)
    _clear_caches()
    yield {"name": name, "sqs": sqs, "queue_url": queue_url, "events": events}
    _clear_caches()


def _clear_caches() -> None:
    from steppay import events, settings

    # boto3's default session keeps the environment it first saw (endpoints included).
    boto3.DEFAULT_SESSION = None
    settings.get_settings.cache_clear()
    events.get_event_publisher.cache_clear()
    getattr(events._events_client, "cache_clear", lambda: None)()  # may be patched by a test


def _drain(sqs: Any, queue_url: str, expect: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    for _ in range(10):
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        )
        for message in messages:
            got.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        if len(got) >= expect and not messages:
            break
    return got


def test_only_the_transition_to_paid_is_published(bus: dict[str, Any]) -> None:
    import publisher

    result = publisher.lambda_handler(copy.deepcopy(SAMPLE), Context())
    assert result == {"batchItemFailures": []}
    received = _drain(bus["sqs"], bus["queue_url"], 1)
    assert len(received) == 1  # the INSERT of a PENDING order announces nothing
    envelope = received[0]
    assert envelope["source"] == "steppay.payments"
    assert envelope["detail-type"] == "Payment Verified"
    detail = envelope["detail"]
    jsonschema.validate(detail, SCHEMA, format_checker=jsonschema.FormatChecker())
    assert detail["orderCode"] == "order_Xb3kR9pQ2mZt"
    assert detail["amount"] == "15000"
    assert detail["paidAt"] == "2026-11-26T18:15:05.403711+09:00"
    # What was sold, as the merchant's backend registered it (the record's `registration`), and
    # what StepPay charged.
    assert detail["merchantRef"] == "cart-8d1f2a"
    assert detail["checkoutId"] == "chk_95582631ec14f5d3a9cc3d4bbda3afb7"
    assert detail["customer"] == {
        "id": 1001,
        "code": "customer_Q7mK2pXa9",
        "uuid": "2f6c1e0a-8b3d-4e7f-9a21-6c5d4b3a2e10",
    }
    assert detail["items"] == [
        {
            "productCode": "product_onetime_demo",
            "priceCode": "price_onetime_demo",
            "currency": "KRW",
            "quantity": 1,
            "maxQuantity": None,
        }
    ]
    assert detail["chargedItems"] == [
        {
            "type": "SKU",
            "name": "데모 단건 상품 (Demo one-time product)",
            "productCode": "product_onetime_demo",
            "priceCode": "price_onetime_demo",
            "quantity": 1,
            "unitPrice": "15000",
            "amount": "15000",
        }
    ]


def test_the_sample_carries_its_registration_on_every_image() -> None:
    from steppay.payments import checkout_id_for

    for record in SAMPLE["Records"]:
        for image in ("NewImage", "OldImage"):
            if image in record["dynamodb"]:
                registration = record["dynamodb"][image]["registration"]["M"]
                assert registration["merchant_ref"]["S"] == record["dynamodb"][image]["merchant_ref"]["S"]
                assert registration["checkout_id"]["S"] == checkout_id_for(registration["merchant_ref"]["S"])


def test_a_record_without_registration_is_announced_without_what_was_sold(bus: dict[str, Any]) -> None:
    """Records written before registrations existed still publish (nothing bound: nulls, no items)."""
    import publisher

    event = copy.deepcopy(SAMPLE)
    for record in event["Records"]:
        for image in ("NewImage", "OldImage"):
            record["dynamodb"].get(image, {}).pop("registration", None)
    assert publisher.lambda_handler(event, Context()) == {"batchItemFailures": []}
    received = _drain(bus["sqs"], bus["queue_url"], 1)
    assert len(received) == 1
    detail = received[0]["detail"]
    jsonschema.validate(detail, SCHEMA, format_checker=jsonschema.FormatChecker())
    assert (detail["checkoutId"], detail["merchantRef"], detail["items"]) == (None, None, [])
    assert detail["customer"] == {"id": 1001, "code": None, "uuid": None}


def test_a_replayed_batch_repeats_the_same_event_id(bus: dict[str, Any]) -> None:
    import publisher

    publisher.lambda_handler(copy.deepcopy(SAMPLE), Context())
    publisher.lambda_handler(copy.deepcopy(SAMPLE), Context())
    received = _drain(bus["sqs"], bus["queue_url"], 2)
    assert len(received) == 2
    assert received[0]["detail"]["eventId"] == received[1]["detail"]["eventId"]


def test_a_paid_order_modified_again_is_not_announced_again(bus: dict[str, Any]) -> None:
    import publisher

    event = copy.deepcopy(SAMPLE)
    record = event["Records"][1]
    record["dynamodb"]["OldImage"] = copy.deepcopy(record["dynamodb"]["NewImage"])
    event["Records"] = [record]
    assert publisher.lambda_handler(event, Context()) == {"batchItemFailures": []}
    assert _drain(bus["sqs"], bus["queue_url"], 0) == []


class FlakyEvents:
    """Wraps the real (moto) client; EventBridge fails chosen entries as it does under throttling."""

    def __init__(self, real: Any, fail_detail_substring: str | None, fail_all: bool = False) -> None:
        self.real = real
        self.fail = fail_detail_substring
        self.fail_all = fail_all

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        if self.fail_all:
            raise RuntimeError("EventBridge unavailable")
        keep = [e for e in Entries if not (self.fail and self.fail in e["Detail"])]
        answer = self.real.put_events(Entries=keep) if keep else {"Entries": []}
        results = iter(answer["Entries"])
        return {
            "FailedEntryCount": len(Entries) - len(keep),
            "Entries": [
                {"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"}
                if (self.fail and self.fail in e["Detail"])
                else next(results)
                for e in Entries
            ],
        }


def _two_paid_records() -> dict[str, Any]:
    event = copy.deepcopy(SAMPLE)
    paid = event["Records"][1]
    other = copy.deepcopy(paid)
    for image in ("NewImage", "OldImage"):
        other["dynamodb"][image]["order_code"] = {"S": "order_Second000001"}
        other["dynamodb"][image]["pk"] = {"S": "ORDER#order_Second000001"}
    other["dynamodb"]["SequenceNumber"] = "111300000000012345678903"
    event["Records"] = [paid, other]
    return event


def test_partial_failure_reports_only_the_failed_record(
    bus: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import publisher

    from steppay import events

    real = boto3.client("events")
    monkeypatch.setattr(events, "_events_client", lambda: FlakyEvents(real, "order_Second000001"))
    events.get_event_publisher.cache_clear()
    result = publisher.lambda_handler(_two_paid_records(), Context())
    assert result == {"batchItemFailures": [{"itemIdentifier": "111300000000012345678903"}]}
    received = _drain(bus["sqs"], bus["queue_url"], 1)
    assert [r["detail"]["orderCode"] for r in received] == ["order_Xb3kR9pQ2mZt"]


def test_total_failure_reports_every_record(bus: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    import publisher

    from steppay import events

    monkeypatch.setattr(events, "_events_client", lambda: FlakyEvents(None, None, fail_all=True))
    events.get_event_publisher.cache_clear()
    result = publisher.lambda_handler(_two_paid_records(), Context())
    assert result == {
        "batchItemFailures": [
            {"itemIdentifier": "111200000000012345678902"},
            {"itemIdentifier": "111300000000012345678903"},
        ]
    }
    assert _drain(bus["sqs"], bus["queue_url"], 0) == []
