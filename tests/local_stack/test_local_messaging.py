"""Infrastructure from the template, SQS event sources, EventBridge rules and the event tap."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from local_stack.helpers import Recorder

from steppay_local.stack import LocalStack
from steppay_local.template import TAP_QUEUE_NAME, Template, create_infrastructure, rule_queue_name

ROOT = Path(__file__).resolve().parents[2]
REGION = "ap-northeast-2"


def put_event(
    stack: LocalStack, source: str, detail: dict[str, Any], detail_type: str = "Fixture Event"
) -> None:
    result = stack.client("events").put_events(
        Entries=[
            {
                "Source": source,
                "DetailType": detail_type,
                "Detail": json.dumps(detail),
                "EventBusName": stack.bus_names["Bus"],
            }
        ]
    )
    assert result["FailedEntryCount"] == 0


def drain(stack: LocalStack, queue_url: str, want: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    sqs = stack.client("sqs")
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        for message in sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, AttributeNames=["All"]
        ).get("Messages", []):
            got.append(message)
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return got


def test_tables_queues_buses_and_rules_follow_the_template(fixture_stack: LocalStack) -> None:
    template = Template(Path(fixture_stack.template_path))
    declared = template.raw["Resources"]["ItemsTable"]["Properties"]
    table = fixture_stack.client("dynamodb").describe_table(
        TableName=fixture_stack.table_names["ItemsTable"]
    )["Table"]
    assert table["KeySchema"] == declared["KeySchema"]
    assert sorted(table["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == sorted(
        declared["AttributeDefinitions"], key=lambda a: a["AttributeName"]
    )
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == ["by-kind"]
    assert "NotLocalOnlyTable" not in fixture_stack.table_names  # its Condition is false on Stage=local

    sqs = fixture_stack.client("sqs")
    attributes = sqs.get_queue_attributes(
        QueueUrl=fixture_stack.queue_urls["WorkQueue"], AttributeNames=["All"]
    )["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(":fixture-WorkDeadLetterQueue")
    assert int(redrive["maxReceiveCount"]) == 2
    assert attributes["VisibilityTimeout"] == "1"

    events = fixture_stack.client("events")
    bus = fixture_stack.bus_names["Bus"]
    assert bus == "fixture-bus-local"
    rules = {r["Name"]: r for r in events.list_rules(EventBusName=bus)["Rules"]}
    assert json.loads(rules["fixture-CopyRule"]["EventPattern"]) == {"source": ["fixture.copy"]}
    assert TAP_QUEUE_NAME in rules
    [target] = events.list_targets_by_rule(Rule="fixture-SubscriberFunctionFixture", EventBusName=bus)[
        "Targets"
    ]
    queue = rule_queue_name("SubscriberFunctionFixture", "SubscriberFunctionFixtureLambdaTarget")
    assert target["Arn"].endswith(f":{queue}")


def test_the_bundle_template_creates_its_infrastructure(fixture_stack: LocalStack) -> None:
    """template.yaml's own tables, bus and rules (nothing is invoked).

    Uses the fixture stack's servers, so that nothing is added to the moto server the ``local_stack``
    fixture (the bundle's end-to-end tests) shares.
    """
    ddb_endpoint, moto_endpoint = fixture_stack.dynamodb_endpoint, fixture_stack.moto_endpoint
    template = Template(
        ROOT / "template.yaml", {"Stage": "local"}, stack_name="infra-check", moto_endpoint=moto_endpoint
    )
    infra = create_infrastructure(template, ddb_endpoint, moto_endpoint)
    again = create_infrastructure(template, ddb_endpoint, moto_endpoint)  # idempotent
    assert again.table_names == infra.table_names
    from steppay_local._util import client

    ddb = client("dynamodb", ddb_endpoint)
    for logical_id, resource in template.resources_of("AWS::DynamoDB::Table").items():
        declared = resource["Properties"]
        table = ddb.describe_table(TableName=infra.table_names[logical_id])["Table"]
        assert table["KeySchema"] == declared["KeySchema"]
        view = (declared.get("StreamSpecification") or {}).get("StreamViewType")
        if view:
            assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": view}
        else:
            assert "StreamSpecification" not in table or not table["StreamSpecification"].get("StreamEnabled")
    events = client("events", moto_endpoint)
    for logical_id, bus in infra.bus_names.items():
        assert events.describe_event_bus(Name=bus)["Name"] == bus, logical_id
        assert TAP_QUEUE_NAME in {r["Name"] for r in events.list_rules(EventBusName=bus)["Rules"]}
    for rule in template.rules():
        described = events.describe_rule(Name=rule.name, EventBusName=rule.bus_name)
        if rule.pattern is not None:
            assert json.loads(described["EventPattern"]) == rule.pattern
    sqs = client("sqs", moto_endpoint)
    for spec in template.queues():
        if "RedrivePolicy" in spec.attributes:
            attributes = sqs.get_queue_attributes(
                QueueUrl=infra.queue_urls[spec.logical_id], AttributeNames=["RedrivePolicy"]
            )["Attributes"]
            assert (
                json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"]
                == infra.queue_arns[spec.dead_letter_logical_id or ""]
            )


def test_the_tap_receives_every_event_on_the_bus(fixture_stack: LocalStack) -> None:
    fixture_stack.read_tap()  # whatever earlier tests left
    put_event(fixture_stack, "anything.at.all", {"n": 1}, "Whatever Happened")
    put_event(fixture_stack, "fixture.copy", {"n": 2})
    events = fixture_stack.read_tap(max_wait=5)
    while len(events) < 2:
        more = fixture_stack.read_tap(max_wait=5)
        if not more:
            break
        events += more
    assert sorted(e["detail"]["n"] for e in events) == [1, 2]
    first = next(e for e in events if e["detail"]["n"] == 1)
    assert first["source"] == "anything.at.all"
    assert first["detail-type"] == "Whatever Happened"
    assert first["region"] == REGION
    assert {"id", "time", "version", "resources"} <= set(first)


def test_a_rule_with_an_sqs_target_copies_matching_events(fixture_stack: LocalStack, unique: str) -> None:
    put_event(fixture_stack, "fixture.copy", {"copied": True, "marker": unique})
    put_event(fixture_stack, "fixture.other", {"copied": False, "marker": unique})
    messages = drain(fixture_stack, fixture_stack.queue_urls["CopyQueue"], want=10, timeout=3)
    mine = [json.loads(m["Body"])["detail"] for m in messages if unique in m["Body"]]
    assert mine == [{"copied": True, "marker": unique}]


def test_a_rule_with_a_lambda_target_invokes_the_function_with_the_envelope(
    fixture_stack: LocalStack, recorder: Recorder, unique: str
) -> None:
    put_event(fixture_stack, "fixture.events", {"marker": unique}, "Something Happened")
    put_event(fixture_stack, "fixture.ignored", {"marker": unique})
    fixture_stack.wait_idle(30)
    mine = [
        line["event"]
        for line in recorder.lines("subscriber")
        if isinstance(line["event"], dict) and line["event"].get("detail", {}).get("marker") == unique
    ]
    assert len(mine) == 1
    event = mine[0]
    assert event["source"] == "fixture.events"
    assert event["detail-type"] == "Something Happened"
    assert event["version"] == "0" and event["region"] == REGION and event["id"]


def test_failed_asynchronous_invocations_are_retried_twice(
    fixture_stack: LocalStack, recorder: Recorder, unique: str
) -> None:
    put_event(fixture_stack, "fixture.events", {"marker": unique, "fail": True})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        mine = [
            line
            for line in recorder.lines("subscriber")
            if isinstance(line["event"], dict) and line["event"].get("detail", {}).get("marker") == unique
        ]
        if len(mine) >= 3 and fixture_stack.logs.wait_for("dropped after 3 invocations", timeout=0.1):
            break
        time.sleep(0.2)
    assert len(mine) == 3  # the invocation and Lambda's two asynchronous retries
    assert len({line["requestId"] for line in mine}) == 3


def test_sqs_event_source_deletes_successes_and_redrives_failures(
    fixture_stack: LocalStack, recorder: Recorder, unique: str
) -> None:
    sqs = fixture_stack.client("sqs")
    url = fixture_stack.queue_urls["WorkQueue"]
    for mode in ("ok", "fail", "ok"):
        sqs.send_message(
            QueueUrl=url,
            MessageBody=json.dumps({"id": unique, "mode": mode}),
            MessageAttributes={"kind": {"DataType": "String", "StringValue": mode}},
        )
    dead = drain(fixture_stack, fixture_stack.queue_urls["WorkDeadLetterQueue"], want=1, timeout=20)
    assert [json.loads(m["Body"])["mode"] for m in dead] == ["fail"]

    seen = [
        r
        for line in recorder.lines("worker")
        for r in line["records"]
        if json.loads(r["body"])["id"] == unique
    ]
    by_mode: dict[str, list[dict[str, Any]]] = {}
    for record in seen:
        by_mode.setdefault(json.loads(record["body"])["mode"], []).append(record)
    assert len(by_mode["ok"]) == 2  # each success delivered once, then deleted
    assert [r["attributes"]["ApproximateReceiveCount"] for r in by_mode["fail"]] == [
        "1",
        "2",
    ]  # maxReceiveCount 2
    record = by_mode["ok"][0]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"].endswith(":fixture-WorkQueue")
    assert record["awsRegion"] == REGION
    assert record["messageAttributes"]["kind"] == {
        "stringValue": "ok",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert {"messageId", "receiptHandle", "body", "attributes", "md5OfBody"} <= set(record)


def test_trigger_schedule_uses_the_schedule_input(fixture_stack: LocalStack, recorder: Recorder) -> None:
    assert fixture_stack.schedule_payload("SubscriberFunction") == {"job": "nightly"}
    fixture_stack.trigger_schedule("SubscriberFunction")
    assert any(line["event"] == {"job": "nightly"} for line in recorder.lines("subscriber"))


@pytest.fixture
def boto_defaults(aws_env: Any) -> Iterator[Any]:
    yield aws_env


def test_aws_env_points_plain_boto3_clients_at_the_local_servers(boto_defaults: Any) -> None:
    import boto3

    assert boto3.client("events").meta.endpoint_url == boto_defaults.moto_endpoint
    assert boto3.client("sqs").meta.endpoint_url == boto_defaults.moto_endpoint
    assert boto3.client("dynamodb").meta.endpoint_url == boto_defaults.dynamodb_endpoint
    assert boto3.client("secretsmanager").meta.endpoint_url == boto_defaults.moto_endpoint
    boto3.client("dynamodb").list_tables()
    boto3.client("events").list_event_buses()
