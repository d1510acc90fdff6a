"""DynamoDB stream -> function through DynamoDB Local's real stream, with Lambda's batching and retries."""

from __future__ import annotations

import base64
import json
from typing import Any

from local_stack.helpers import Recorder

from steppay_local.stack import LocalStack


def table(stack: LocalStack) -> str:
    return stack.table_names["ItemsTable"]


def write_together(stack: LocalStack, items: list[dict[str, Any]]) -> None:
    """One BatchWriteItem, so that the records land within one batching window whatever the load."""
    requests = [{"PutRequest": {"Item": item}} for item in items]
    response = stack.client("dynamodb").batch_write_item(RequestItems={table(stack): requests})
    assert not response.get("UnprocessedItems")


def records_for(recorder: Recorder, name: str, prefix: str) -> list[list[dict[str, Any]]]:
    """Per invocation of consumer ``name``, the records whose pk starts with ``prefix``."""
    batches = []
    for line in recorder.lines(name):
        mine = [r for r in line["records"] if r["dynamodb"]["Keys"]["pk"]["S"].startswith(prefix)]
        if mine:
            batches.append(mine)
    return batches


def test_records_arrive_in_order_with_images(
    fixture_stack: LocalStack, recorder: Recorder, unique: str
) -> None:
    ddb = fixture_stack.client("dynamodb")
    pk = f"order#{unique}"
    ddb.put_item(
        TableName=table(fixture_stack),
        Item={"pk": {"S": pk}, "sk": {"S": "A"}, "n": {"N": "1"}, "b": {"B": b"\x00\xff"}},
    )
    ddb.update_item(
        TableName=table(fixture_stack),
        Key={"pk": {"S": pk}, "sk": {"S": "A"}},
        UpdateExpression="SET n = :n",
        ExpressionAttributeValues={":n": {"N": "2"}},
    )
    ddb.delete_item(TableName=table(fixture_stack), Key={"pk": {"S": pk}, "sk": {"S": "A"}})
    fixture_stack.wait_idle(30)

    records = [r for batch in records_for(recorder, "consumer", pk) for r in batch]
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY", "REMOVE"]
    sequences = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert sequences == sorted(sequences)
    stream_arn = ddb.describe_table(TableName=table(fixture_stack))["Table"]["LatestStreamArn"]
    for record in records:
        assert set(record) == {
            "eventID",
            "eventName",
            "eventVersion",
            "eventSource",
            "awsRegion",
            "dynamodb",
            "eventSourceARN",
        }
        assert record["eventVersion"] == "1.1"
        assert record["eventSource"] == "aws:dynamodb"
        assert record["awsRegion"] == "ap-northeast-2"
        assert record["eventSourceARN"] == stream_arn
        assert record["dynamodb"]["Keys"] == {"pk": {"S": pk}, "sk": {"S": "A"}}
        assert record["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        assert isinstance(record["dynamodb"]["ApproximateCreationDateTime"], int)
        assert record["dynamodb"]["SizeBytes"] > 0
    insert, modify, remove = records
    assert "OldImage" not in insert["dynamodb"]
    assert insert["dynamodb"]["NewImage"]["n"] == {"N": "1"}
    assert base64.b64decode(insert["dynamodb"]["NewImage"]["b"]["B"]) == b"\x00\xff"  # binary as base64
    assert modify["dynamodb"]["OldImage"]["n"] == {"N": "1"}
    assert modify["dynamodb"]["NewImage"]["n"] == {"N": "2"}
    assert "NewImage" not in remove["dynamodb"]
    assert remove["dynamodb"]["OldImage"]["n"] == {"N": "2"}
    # Every mapping of the stream gets every record (the bisecting consumer ignores these).
    assert fixture_stack.logs.wait_for("START RequestId", source="BisectConsumerFunction")


def test_batching_window_groups_writes(fixture_stack: LocalStack, recorder: Recorder, unique: str) -> None:
    prefix = f"batch#{unique}"
    write_together(fixture_stack, [{"pk": {"S": f"{prefix}-{i}"}, "sk": {"S": "x"}} for i in range(5)])
    fixture_stack.wait_idle(30)
    batches = records_for(recorder, "consumer", prefix)
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for b in batches for r in b] == [
        f"{prefix}-{i}" for i in range(5)
    ]
    assert len(batches) == 1  # MaximumBatchingWindowInSeconds: 1 gathered the five writes


def test_batch_item_failures_retry_from_the_lowest_failed_record(
    fixture_stack: LocalStack, recorder: Recorder, unique: str
) -> None:
    prefix = f"partial#{unique}"
    modes = ["ok", "partial", "ok", "partial"]
    write_together(
        fixture_stack,
        [
            {"pk": {"S": f"{prefix}-{i}"}, "sk": {"S": "x"}, "mode": {"S": mode}}
            for i, mode in enumerate(modes)
        ],
    )
    fixture_stack.wait_idle(30)
    batches = [
        [r["dynamodb"]["Keys"]["pk"]["S"].rsplit("-", 1)[1] for r in b]
        for b in records_for(recorder, "consumer", prefix)
    ]
    # 1st: all four, 1 and 3 fail -> retry from 1 (the lowest failure), 0 is checkpointed.
    # 2nd: 1, 2, 3 all succeed now (each "partial" record fails once).
    assert batches == [["0", "1", "2", "3"], ["1", "2", "3"]]


def test_exhausted_retries_go_to_the_on_failure_queue(
    fixture_stack: LocalStack, recorder: Recorder, unique: str
) -> None:
    ddb = fixture_stack.client("dynamodb")
    sqs = fixture_stack.client("sqs")
    pk = f"poison#{unique}"
    ddb.put_item(
        TableName=table(fixture_stack), Item={"pk": {"S": pk}, "sk": {"S": "x"}, "mode": {"S": "error"}}
    )
    fixture_stack.wait_idle(30)
    ddb.put_item(TableName=table(fixture_stack), Item={"pk": {"S": f"after#{unique}"}, "sk": {"S": "x"}})
    fixture_stack.wait_idle(30)

    attempts = records_for(recorder, "consumer", pk)
    assert len(attempts) == 3  # the first invocation and MaximumRetryAttempts (2) retries
    assert len(records_for(recorder, "consumer", f"after#{unique}")) == 1  # and then the shard moves on

    messages = sqs.receive_message(
        QueueUrl=fixture_stack.queue_urls["FailuresQueue"], MaxNumberOfMessages=10, WaitTimeSeconds=1
    ).get("Messages", [])
    failures = [json.loads(m["Body"]) for m in messages]
    sequence = attempts[0][0]["dynamodb"]["SequenceNumber"]
    mine = [f for f in failures if f["DDBStreamBatchInfo"]["startSequenceNumber"] == sequence]
    assert len(mine) == 1
    failure = mine[0]
    assert failure["version"] == "1.0"
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == 3
    assert failure["requestContext"]["functionArn"].endswith(":function:fixture-StreamConsumerFunction")
    assert failure["responseContext"]["functionError"] == "Unhandled"
    info = failure["DDBStreamBatchInfo"]
    assert info["endSequenceNumber"] == sequence
    assert info["batchSize"] == 1
    assert info["streamArn"] == attempts[0][0]["eventSourceARN"]
    assert info["shardId"].startswith("shardId-")
    assert "timestamp" in failure


def test_bisect_on_function_error_isolates_the_bad_record(
    fixture_stack: LocalStack, recorder: Recorder, unique: str
) -> None:
    prefix = f"bisect#{unique}"
    items = [("a", "ok"), ("b", "ok"), ("p", "poison"), ("d", "ok")]
    write_together(
        fixture_stack,
        [{"pk": {"S": f"{prefix}-{name}"}, "sk": {"S": "x"}, "mode": {"S": mode}} for name, mode in items],
    )
    fixture_stack.wait_idle(30)
    calls = [
        [k.rsplit("-", 1)[1] for k in line["keys"] if k.startswith(prefix)]
        for line in recorder.lines("bisect")
    ]
    calls = [c for c in calls if c]
    # Error -> split in halves (not counted as a retry); the half with the poison splits again; the
    # poison alone is retried once (MaximumRetryAttempts 1) and then discarded; the rest succeeds.
    assert calls == [["a", "b", "p", "d"], ["a", "b"], ["p", "d"], ["p"], ["p"], ["d"]]
    assert fixture_stack.logs.wait_for(
        "RetryAttemptsExhausted: 1 record(s)", source="stream:BisectConsumerFunction.Items"
    )
