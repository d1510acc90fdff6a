"""Reading templates: short tags, parameters, conditions, intrinsics, typed specs (no servers needed)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from steppay_local.template import (
    DynamoDBEvent,
    EventBridgeRuleEvent,
    HttpApiEvent,
    ScheduleEvent,
    SqsEvent,
    Template,
    TemplateError,
    load_template,
    rule_queue_name,
)

HERE = Path(__file__).resolve().parent
FIXTURE_TEMPLATE = HERE / "fixture_app" / "template.yaml"
REAL_TEMPLATE = HERE.parents[1] / "template.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_short_tags_become_long_form(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        Resources:
          X:
            Type: AWS::SQS::Queue
            Properties:
              A: !Ref Foo
              B: !GetAtt Table.StreamArn
              C: !Sub "${AWS::Region}-x"
              D: !If [Cond, !Ref A, !Ref AWS::NoValue]
              E: !Join [",", [a, b]]
              F: !Select [1, !Split [",", "a,b,c"]]
              G: !Equals [a, b]
              H: !GetAtt [Table, Arn]
              I: !Condition Cond
        """,
    )
    props = load_template(path)["Resources"]["X"]["Properties"]
    assert props["A"] == {"Ref": "Foo"}
    assert props["B"] == {"Fn::GetAtt": ["Table", "StreamArn"]}
    assert props["C"] == {"Fn::Sub": "${AWS::Region}-x"}
    assert props["D"] == {"Fn::If": ["Cond", {"Ref": "A"}, {"Ref": "AWS::NoValue"}]}
    assert props["E"] == {"Fn::Join": [",", ["a", "b"]]}
    assert props["F"] == {"Fn::Select": [1, {"Fn::Split": [",", "a,b,c"]}]}
    assert props["G"] == {"Fn::Equals": ["a", "b"]}
    assert props["H"] == {"Fn::GetAtt": ["Table", "Arn"]}
    assert props["I"] == {"Condition": "Cond"}


def test_intrinsics_resolve(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        Parameters:
          Stage: {Type: String, Default: dev, AllowedValues: [dev, local]}
          Hosts: {Type: CommaDelimitedList, Default: "a.example, b.example"}
          Size: {Type: Number, Default: 5, MinValue: 1}
        Mappings:
          Sizes:
            dev: {mem: 256}
            local: {mem: 128}
        Conditions:
          IsLocal: !Equals [!Ref Stage, local]
          Both: !And [!Condition IsLocal, !Not [!Equals [!Ref Size, 0]]]
          Either: !Or [!Condition IsLocal, !Equals [x, x]]
        Resources:
          Table:
            Type: AWS::DynamoDB::Table
            Properties:
              KeySchema: [{AttributeName: pk, KeyType: HASH}]
              AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
          OnlyLocal:
            Type: AWS::SQS::Queue
            Condition: IsLocal
        """,
    )
    dev = Template(path, stack_name="s")
    assert dev.parameters == {"Stage": "dev", "Hosts": ["a.example", "b.example"], "Size": "5"}
    assert "OnlyLocal" not in dev.resources
    local = Template(path, {"Stage": "local", "Unknown": "ignored"}, stack_name="s")
    assert "OnlyLocal" in local.resources
    assert local.condition("Both") and local.condition("Either") and not dev.condition("Both")
    r = local.resolve
    assert r({"Ref": "Table"}) == "s-Table"
    assert r({"Fn::GetAtt": ["Table", "Arn"]}) == "arn:aws:dynamodb:ap-northeast-2:123456789012:table/s-Table"
    assert (
        r(
            {
                "Fn::Sub": "${AWS::Region}:${AWS::AccountId}:${AWS::Partition}:"
                "${AWS::URLSuffix}:${AWS::StackName}"
            }
        )
        == "ap-northeast-2:123456789012:aws:amazonaws.com:s"
    )
    assert r({"Fn::Sub": "${Table}/${Table.Arn}/${Stage}/${!Literal}"}).startswith(
        "s-Table/arn:aws:dynamodb:"
    )
    assert r({"Fn::Sub": "${Stage}/${!Literal}"}) == "local/${Literal}"
    assert r({"Fn::Sub": ["${X}-${Stage}", {"X": {"Ref": "Size"}}]}) == "5-local"
    assert r({"Fn::Join": ["|", {"Ref": "Hosts"}]}) == "a.example|b.example"
    assert r({"Fn::Select": [1, {"Ref": "Hosts"}]}) == "b.example"
    assert r({"Fn::Split": [".", "a.b"]}) == ["a", "b"]
    assert r({"Fn::FindInMap": ["Sizes", {"Ref": "Stage"}, "mem"]}) == 128
    assert r({"Fn::If": ["IsLocal", "yes", "no"]}) == "yes"
    assert r(
        {"a": {"Fn::If": ["IsLocal", {"Ref": "AWS::NoValue"}, 1]}, "b": [1, {"Ref": "AWS::NoValue"}]}
    ) == {"b": [1]}
    assert r({"Fn::Base64": "hi"}) == "aGk="
    with pytest.raises(TemplateError):
        r({"Ref": "Nope"})
    with pytest.raises(TemplateError):
        Template(path, {"Stage": "prod"})
    with pytest.raises(TemplateError):
        Template(path, {"Size": "0"})


def test_fixture_template_specs() -> None:
    template = Template(
        FIXTURE_TEMPLATE,
        {"Stage": "local", "RecordDir": "/r"},
        stack_name="fx",
        moto_endpoint="http://127.0.0.1:5999",
    )
    [table] = template.tables()
    assert table.name == "fx-ItemsTable"
    assert table.create_kwargs["StreamSpecification"] == {
        "StreamEnabled": True,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    assert table.create_kwargs["GlobalSecondaryIndexes"][0]["IndexName"] == "by-kind"
    assert "PointInTimeRecoverySpecification" in table.ignored
    queues = {q.logical_id: q for q in template.queues()}
    assert queues["WorkQueue"].dead_letter_logical_id == "WorkDeadLetterQueue"
    assert '"maxReceiveCount": 2' in queues["WorkQueue"].attributes["RedrivePolicy"]
    assert [b.name for b in template.buses()] == ["fixture-bus-local"]
    rules = {r.logical_id: r for r in template.rules()}
    assert rules["CopyRule"].targets[0].kind == "sqs"
    sam_rule = rules["SubscriberFunctionFixture"]
    assert sam_rule.bus_name == "fixture-bus-local"
    assert sam_rule.targets[0].kind == "lambda" and sam_rule.targets[0].logical_id == "SubscriberFunction"

    echo = template.function("EchoFunction")
    assert echo.handler == "echo.handler" and echo.memory_size == 384 and echo.timeout == 10
    assert echo.environment["OVERRIDDEN"] == "own"  # the function's own variables win over Globals
    assert echo.environment["LOCAL_FLAG"] == "yes"
    assert echo.environment["WORK_QUEUE_URL"] == "http://127.0.0.1:5999/123456789012/fx-WorkQueue"
    assert echo.environment["WORK_QUEUE_NAME"] == "fx-WorkQueue"
    assert echo.layer_dirs == (HERE / "fixture_app" / "layer",)
    routes = {e.route_key for e in echo.events_of(HttpApiEvent)}
    assert {"GET /echo", "ANY /items/{id}", "GET /files/{proxy+}"} <= routes

    [stream] = template.function("StreamConsumerFunction").events_of(DynamoDBEvent)
    assert stream.table_logical_id == "ItemsTable"
    assert (stream.batch_size, stream.maximum_batching_window_seconds, stream.maximum_retry_attempts) == (
        10,
        1,
        2,
    )
    assert stream.report_batch_item_failures and not stream.bisect_batch_on_function_error
    assert stream.on_failure_destination == "arn:aws:sqs:ap-northeast-2:123456789012:fx-FailuresQueue"
    [bisect] = template.function("BisectConsumerFunction").events_of(DynamoDBEvent)
    assert bisect.bisect_batch_on_function_error and not bisect.report_batch_item_failures
    [sqs] = template.function("QueueWorkerFunction").events_of(SqsEvent)
    assert sqs.queue_logical_id == "WorkQueue" and sqs.batch_size == 5 and sqs.report_batch_item_failures
    subscriber = template.function("SubscriberFunction")
    [rule_event] = subscriber.events_of(EventBridgeRuleEvent)
    assert rule_event.pattern == {"source": ["fixture.events"]}
    [schedule] = subscriber.events_of(ScheduleEvent)
    assert (schedule.kind, schedule.expression, schedule.input) == (
        "ScheduleV2",
        "rate(1 day)",
        '{"job": "nightly"}',
    )

    apis = template.http_apis()
    assert apis["HttpApi"].cors is not None
    assert apis["HttpApi"].cors.allow_origins == ("https://shop.example.com",)


def test_condition_on_a_resource_removes_it() -> None:
    dev = Template(FIXTURE_TEMPLATE, {"Stage": "dev"})
    local = Template(FIXTURE_TEMPLATE, {"Stage": "local"})
    assert "NotLocalOnlyTable" in dev.resources
    assert "NotLocalOnlyTable" not in local.resources


def test_the_real_template_resolves_for_local_runs() -> None:
    """Parsing only: every function of template.yaml gets an environment, code dir and events."""
    template = Template(REAL_TEMPLATE, {"Stage": "local", "StepPayBaseUrl": "http://127.0.0.1:8181"})
    functions = template.functions()
    assert functions
    for function in functions:
        assert function.code_dir.is_dir(), function.code_dir
        assert function.handler.endswith(".lambda_handler")
        assert function.environment["STAGE"] == "local"
        assert function.layer_dirs, f"{function.logical_id} has no layer"
    tables = {t.logical_id: t for t in template.tables()}
    raw = template.raw["Resources"]
    for logical_id, spec in tables.items():
        assert spec.create_kwargs["KeySchema"] == raw[logical_id]["Properties"]["KeySchema"]


def test_rule_queue_names_are_valid_sqs_names() -> None:
    assert rule_queue_name("Rule", "Target.1") == "local-rule-Rule-Target-1"
    long = rule_queue_name("R" * 60, "T" * 60)
    assert len(long) <= 80 and long.startswith("local-rule-")
