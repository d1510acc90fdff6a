"""SQS-fed invocations: SQS event source mappings, and EventBridge rules' Lambda targets.

``SqsEventSource`` does what Lambda's SQS event source mapping does: receive a batch (``BatchSize``,
``MaximumBatchingWindowInSeconds``), delete the messages its ``FilterCriteria`` filters out (Lambda
does, unseen by the function), invoke with Lambda's SQS event, delete the batch on success,
delete all but the reported items on a ``batchItemFailures`` response, delete nothing on an error.
Undeleted messages come back after the queue's visibility timeout, and SQS itself (moto) moves them to
the dead-letter queue after ``maxReceiveCount`` receives, as the queue's ``RedrivePolicy`` says.

``RuleTargetPoller`` stands for a rule's Lambda target: the rule delivers each matching event into a
local queue; the poller invokes the function asynchronously with it (the real EventBridge envelope),
retrying a failed invocation ``MaximumRetryAttempts`` times (the function's ``EventInvokeConfig``,
default 2) after ``retry_delay`` seconds (about a minute in AWS, short locally), then sends Lambda's
asynchronous failure record to the ``OnFailure`` destination if there is one.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import uuid
from typing import Any

from steppay_local._util import DEFAULT_REGION, LogSink, client
from steppay_local.pollers import Outcome, Poller
from steppay_local.template import RuleTarget, SqsEvent
from steppay_local.workers import InvocationError, LocalFunction


def _message_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    converted = {}
    for name, value in attributes.items():
        entry: dict[str, Any] = {
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value.get("DataType", "String"),
        }
        if "StringValue" in value:
            entry["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            entry["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
        converted[name] = entry
    return converted


def lambda_sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One SQS message as Lambda's SQS event carries it."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": _message_attributes(message.get("MessageAttributes") or {}),
        "md5OfBody": message.get("MD5OfBody"),
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    record.update({"eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": region})
    return record


class SqsEventSource(Poller):
    """One SQS event source mapping."""

    def __init__(
        self,
        function: LocalFunction,
        event: SqsEvent,
        *,
        queue_url: str,
        queue_arn: str,
        moto_endpoint: str,
        region: str = DEFAULT_REGION,
        log_sink: LogSink | None = None,
    ) -> None:
        super().__init__(f"sqs:{function.spec.logical_id}.{event.name}", log_sink=log_sink)
        self.function = function
        self.event = event
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.region = region
        self._sqs = client("sqs", moto_endpoint, region)
        self.filtered_messages = 0  # deleted unseen: no FilterCriteria filter matched them

    def _receive(self, count: int) -> list[dict[str, Any]]:
        response = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=max(1, min(10, count)),
            WaitTimeSeconds=0,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(response.get("Messages", []))

    def poll_once(self) -> Outcome:
        batch_size = max(1, self.event.batch_size)
        messages = self._receive(batch_size)
        if not messages:
            # A delayed message (the queue's DelaySeconds) is there but not yet receivable: not idle,
            # or "everything sent has been delivered" would be said before it was.
            return Outcome.PENDING if self._delayed() else Outcome.IDLE
        deadline = time.monotonic() + self.event.maximum_batching_window_seconds
        while len(messages) < batch_size and time.monotonic() < deadline and not self.stopping:
            more = self._receive(batch_size - len(messages))
            messages += more
            if not more:
                self.sleep(0.1)
        records = [lambda_sqs_record(m, self.queue_arn, self.region) for m in messages]
        records = self._filtered(records)
        if not records:
            return Outcome.WORKED  # only filtered-out messages: nothing to invoke
        try:
            result = self.function.invoke({"Records": records})
        except InvocationError as exc:
            if not self.stopping:
                self.log(
                    f"batch of {len(records)} failed ({exc.error_type}); the messages return after the "
                    "queue's visibility timeout"
                )
            return Outcome.WORKED
        failed = self._failed_ids(result, records)
        if failed is None:
            self.log(f"invalid batchItemFailures in {result!r}: the whole batch counts as failed")
            return Outcome.WORKED
        self._delete([r for r in records if r["messageId"] not in failed])
        if failed:
            self.log(
                f"{len(failed)} of {len(records)} message(s) reported failed; they return after the "
                "queue's visibility timeout"
            )
        return Outcome.WORKED

    def _delayed(self) -> int:
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
        )["Attributes"]
        return int(attributes.get("ApproximateNumberOfMessagesDelayed", 0))

    def _delete(self, records: list[dict[str, Any]]) -> None:
        for start in range(0, len(records), 10):
            chunk = records[start : start + 10]
            self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)],
            )

    def _filtered(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The messages the mapping's FilterCriteria lets through; Lambda deletes the others."""
        criteria = self.event.filter_criteria
        if criteria is None:
            return records
        passed, dropped = criteria.split(records)
        if dropped:
            self._delete([records[i] for i in dropped])
            self.filtered_messages += len(dropped)
        return [records[i] for i in passed]

    def _failed_ids(self, result: Any, records: list[dict[str, Any]]) -> set[str] | None:
        """Message ids reported failed; None when the report is invalid (the whole batch failed)."""
        if not self.event.report_batch_item_failures or not isinstance(result, dict):
            return set()
        failures = result.get("batchItemFailures")
        if not failures:
            return set()
        if not isinstance(failures, list):
            return None
        ids = {r["messageId"] for r in records}
        failed = set()
        for failure in failures:
            identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
            if not identifier or identifier not in ids:
                return None
            failed.add(identifier)
        return failed


class RuleTargetPoller(Poller):
    """A rule's Lambda target: asynchronous invocations with the events the rule matched."""

    def __init__(
        self,
        function: LocalFunction,
        target: RuleTarget,
        *,
        moto_endpoint: str,
        on_failure_queue_url: str | None = None,
        region: str = DEFAULT_REGION,
        log_sink: LogSink | None = None,
        retry_delay: float = 2.0,
    ) -> None:
        super().__init__(f"rule:{target.rule.logical_id}->{function.spec.logical_id}", log_sink=log_sink)
        self.function = function
        self.target = target
        self.region = region
        self.retry_delay = retry_delay
        self.on_failure_queue_url = on_failure_queue_url
        self._sqs = client("sqs", moto_endpoint, region)

    def poll_once(self) -> Outcome:
        response = self._sqs.receive_message(
            QueueUrl=self.target.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, AttributeNames=["All"]
        )
        messages = response.get("Messages", [])
        if not messages:
            return Outcome.IDLE
        for message in messages:
            if self.stopping:
                break
            self._handle(message)
        return Outcome.WORKED

    def _handle(self, message: dict[str, Any]) -> None:
        handle = message["ReceiptHandle"]
        invocations = int((message.get("Attributes") or {}).get("ApproximateReceiveCount", "1"))
        try:
            event = json.loads(message.get("Body", ""))
        except json.JSONDecodeError:
            event = message.get("Body", "")
        request_id = str(uuid.uuid4())
        try:
            self.function.invoke(event, request_id=request_id, asynchronous=True)
        except InvocationError as exc:
            if self.stopping:
                return
            allowed = self.function.spec.async_maximum_retry_attempts
            if invocations <= allowed:
                self.log(
                    f"asynchronous invocation {request_id} failed ({exc.error_type}); retry "
                    f"{invocations} of {allowed} in {self.retry_delay:.0f}s"
                )
                self._sqs.change_message_visibility(
                    QueueUrl=self.target.queue_url,
                    ReceiptHandle=handle,
                    VisibilityTimeout=max(0, int(self.retry_delay)),
                )
                return
            self._exhausted(event, exc, invocations)
        self._sqs.delete_message(QueueUrl=self.target.queue_url, ReceiptHandle=handle)

    def _exhausted(self, event: Any, error: InvocationError, invocations: int) -> None:
        record = {
            "version": "1.0",
            "timestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "requestContext": {
                "requestId": error.request_id,
                "functionArn": f"{self.function.spec.arn}:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": invocations,
            },
            "requestPayload": event,
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            },
            "responsePayload": error.payload,
        }
        if self.on_failure_queue_url:
            self._sqs.send_message(QueueUrl=self.on_failure_queue_url, MessageBody=json.dumps(record))
            self.log(f"event dropped after {invocations} invocations; sent to the on-failure destination")
        else:
            self.log(f"event dropped after {invocations} invocations (no on-failure destination)")
