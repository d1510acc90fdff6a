"""Data on disk: a restarted stack resumes the stream instead of replaying it; DynamoDB Local can go away."""

from __future__ import annotations

import time
from pathlib import Path

from local_stack.helpers import Recorder, fixture_config

from steppay_local.stack import LocalStack


def keys_seen(recorder: Recorder, prefix: str) -> list[str]:
    return [
        r["dynamodb"]["Keys"]["pk"]["S"]
        for line in recorder.lines("consumer")
        for r in line["records"]
        if r["dynamodb"]["Keys"]["pk"]["S"].startswith(prefix)
    ]


def test_restarts_resume_from_the_checkpoint(tmp_path: Path) -> None:
    records = tmp_path / "records"
    records.mkdir()
    recorder = Recorder(records)
    config = fixture_config(records, data_dir=tmp_path / "data", stack_name="restart")

    with LocalStack(config) as stack:
        ddb = stack.client("dynamodb")
        table = stack.table_names["ItemsTable"]
        ddb.put_item(TableName=table, Item={"pk": {"S": "r#1"}, "sk": {"S": "x"}})
        stack.wait_idle(30)
        assert keys_seen(recorder, "r#") == ["r#1"]
    assert (tmp_path / "data" / "stream-checkpoints.json").exists()
    assert any((tmp_path / "data" / "dynamodb").iterdir())

    with LocalStack(config) as stack:
        ddb = stack.client("dynamodb")
        table = stack.table_names["ItemsTable"]
        assert ddb.get_item(TableName=table, Key={"pk": {"S": "r#1"}, "sk": {"S": "x"}}).get(
            "Item"
        )  # kept on disk
        ddb.put_item(TableName=table, Item={"pk": {"S": "r#2"}, "sk": {"S": "x"}})
        stack.wait_idle(30)
        assert keys_seen(recorder, "r#") == ["r#1", "r#2"]  # r#1 not delivered again

        # DynamoDB Local goes away in the middle of the run and comes back with its data.
        assert stack.dynamodb is not None
        stack.dynamodb.stop()
        assert stack.logs.wait_for("poll failed (will retry with backoff)", timeout=10)
        stack.restart_dynamodb()
        ddb.put_item(TableName=table, Item={"pk": {"S": "r#3"}, "sk": {"S": "x"}})
        deadline = time.monotonic() + 30
        while keys_seen(recorder, "r#") != ["r#1", "r#2", "r#3"] and time.monotonic() < deadline:
            time.sleep(0.2)
        stack.wait_idle(30)
        assert keys_seen(recorder, "r#") == ["r#1", "r#2", "r#3"]
        assert ddb.get_item(TableName=table, Key={"pk": {"S": "r#1"}, "sk": {"S": "x"}}).get("Item")
        assert stack.logs.wait_for("recovered after", timeout=10)
