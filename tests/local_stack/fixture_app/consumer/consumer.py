"""Stream consumers: record every batch; fail records as their item's ``mode`` says.

mode "ok": fine. "partial": reported in batchItemFailures the first ``times`` deliveries (default 1).
"error": the whole invocation raises, every time. "poison": the bisecting consumer raises for it.
"""

from __future__ import annotations

from typing import Any

import fixture_helpers


def _mode(record: dict[str, Any]) -> tuple[str, int]:
    image = record["dynamodb"].get("NewImage") or {}
    mode = image.get("mode", {}).get("S", "ok")
    times = int(image.get("times", {}).get("N", "1"))
    return mode, times


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    fixture_helpers.record("consumer", {"requestId": context.aws_request_id, "records": event["Records"]})
    failures = []
    for record in event["Records"]:
        mode, times = _mode(record)
        sequence = record["dynamodb"]["SequenceNumber"]
        if mode == "error":
            raise RuntimeError(f"cannot handle {sequence}")
        if mode == "partial" and fixture_helpers.bump(f"partial-{sequence}") <= times:
            failures.append({"itemIdentifier": sequence})
    return {"batchItemFailures": failures}


def bisect_handler(event: dict[str, Any], context: Any) -> None:
    keys = [r["dynamodb"]["Keys"]["pk"]["S"] for r in event["Records"]]
    mine = [k for k in keys if k.startswith("bisect#")]
    if not mine:
        return
    fixture_helpers.record("bisect", {"keys": keys})
    if any(_mode(r)[0] == "poison" for r in event["Records"]):
        raise RuntimeError("poison in the batch")


def filtered_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Behind a FilterCriteria: records every batch it is given; "partial" fails a record once."""
    fixture_helpers.record("filtered", {"requestId": context.aws_request_id, "records": event["Records"]})
    failures = []
    for record in event["Records"]:
        mode, times = _mode(record)
        sequence = record["dynamodb"]["SequenceNumber"]
        if mode == "partial" and fixture_helpers.bump(f"filtered-partial-{sequence}") <= times:
            failures.append({"itemIdentifier": sequence})
    return {"batchItemFailures": failures}
