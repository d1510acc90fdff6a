"""FilterCriteria on the fixture's event sources, applied by the local pollers as Lambda applies them."""

from __future__ import annotations

import json
import time
from typing import Any

from local_stack.helpers import Recorder
from local_stack.test_local_streams import records_for, table, write_together

from steppay_local.stack import LocalStack


def keys(batch: list[dict[str, Any]]) -> list[str]:
    return [r["dynamodb"]["Keys"]["pk"]["S"].rsplit("-", 1)[1] for r in batch]


def test_the_stream_delivers_only_matching_records_in_batches_and_steps_over_the_rest(
    fixture_stack: LocalStack, recorder: Recorder, unique: str
) -> None:
    prefix = f"filter#{unique}"
    items = [
        ("a", "wanted", "ok"),
        ("b", "other", "ok"),
        ("c", "wanted", "partial"),
        ("d", "other", "partial"),
        ("e", "wanted", "ok"),
        ("f", "wanted", "ok"),
        ("g", "other", "ok"),
    ]
    write_together(
        fixture_stack,
        [
            {"pk": {"S": f"{prefix}-{name}"}, "sk": {"S": "x"}, "kind": {"S": kind}, "mode": {"S": mode}}
            for name, kind, mode in items
        ],
    )
    fixture_stack.wait_idle(30)

    batches = [keys(b) for b in records_for(recorder, "filtered", prefix)]
    # BatchSize 3 of matching records only; c fails once (ReportBatchItemFailures): the retry starts
    # at c and holds no filtered-out record; f waits for the next batch.
    assert batches == [["a", "c", "e"], ["c", "e"], ["f"]]
    # The unfiltered consumer of the same stream got all seven: the filter is per mapping.
    assert [k for b in records_for(recorder, "consumer", prefix) for k in keys(b)][:7] == list("abcdefg")

    # The checkpoint moved past g, the last (filtered-out) record: a restart does not read it again.
    g_sequence = int(records_for(recorder, "consumer", f"{prefix}-g")[0][0]["dynamodb"]["SequenceNumber"])
    shards = fixture_stack.checkpoints.snapshot()["FilteredConsumerFunction.Items"]["shards"]
    assert max(int(s.get("sequenceNumber", "0")) for s in shards.values()) >= g_sequence


def test_a_batch_of_only_filtered_out_records_invokes_nothing(
    fixture_stack: LocalStack, recorder: Recorder, unique: str
) -> None:
    fixture_stack.wait_idle(30)
    before = len(recorder.lines("filtered"))
    prefix = f"unwanted#{unique}"
    write_together(
        fixture_stack,
        [{"pk": {"S": f"{prefix}-{i}"}, "sk": {"S": "x"}, "kind": {"S": "other"}} for i in range(4)],
    )
    ddb = fixture_stack.client("dynamodb")
    ddb.delete_item(TableName=table(fixture_stack), Key={"pk": {"S": f"{prefix}-0"}, "sk": {"S": "x"}})
    fixture_stack.wait_idle(30)
    assert len(records_for(recorder, "consumer", prefix)) >= 1  # the records were on the stream
    assert len(recorder.lines("filtered")) == before  # and the filtered mapping invoked nothing

    # The second filter (a key prefix) is ORed with the first.
    ddb.put_item(TableName=table(fixture_stack), Item={"pk": {"S": f"always#{unique}-z"}, "sk": {"S": "x"}})
    fixture_stack.wait_idle(30)
    assert [keys(b) for b in records_for(recorder, "filtered", f"always#{unique}")] == [["z"]]


def test_the_sqs_source_deletes_filtered_out_messages_unseen(
    fixture_stack: LocalStack, recorder: Recorder, unique: str
) -> None:
    sqs = fixture_stack.client("sqs")
    url = fixture_stack.queue_urls["FilteredQueue"]
    bodies = [
        json.dumps({"id": f"{unique}-json-wanted", "wanted": True}),
        json.dumps({"id": f"{unique}-json-unwanted", "wanted": False}),
        json.dumps({"id": f"{unique}-json-one", "wanted": 1}),  # 1 is not true
        "plain-wanted",
        f"plain-unwanted {unique}",
        '{"wanted": true, broken json',  # not JSON: only plain-string rules could match it
    ]
    for body in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=body)
    fixture_stack.wait_idle(30)

    seen = [r["body"] for line in recorder.lines("filtered-worker") for r in line["records"]]
    assert bodies[0] in seen and seen.count("plain-wanted") >= 1
    for dropped in (bodies[1], bodies[2], bodies[4], bodies[5]):
        assert dropped not in seen
    # Deleted, not left to come back: past the queue's 1 s visibility timeout nothing is left.
    time.sleep(1.5)
    fixture_stack.wait_idle(30)
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert attributes == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}
    assert sum(1 for b in seen if b == bodies[0]) == 1  # delivered once, deleted after success
