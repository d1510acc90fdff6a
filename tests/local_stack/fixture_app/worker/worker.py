"""SQS consumer: records each message; reports those whose body says {"mode": "fail"} as failed."""

from __future__ import annotations

import json
from typing import Any

import fixture_helpers


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    fixture_helpers.record("worker", {"requestId": context.aws_request_id, "records": event["Records"]})
    failures = []
    for record in event["Records"]:
        if json.loads(record["body"]).get("mode") == "fail":
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def filtered_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Behind a FilterCriteria: records every batch it is given, fails nothing."""
    fixture_helpers.record(
        "filtered-worker", {"requestId": context.aws_request_id, "records": event["Records"]}
    )
    return {"batchItemFailures": []}
