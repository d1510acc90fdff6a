"""DynamoDB stream → function, as Lambda's event source mapping does it, on DynamoDB Local's real stream.

Per mapping: shards are discovered with ``DescribeStream`` (children only after their parent is fully
read), read with ``GetRecords`` in order, filtered by the mapping's ``FilterCriteria`` (a record no
filter matches is stepped over: never delivered, the checkpoint moves past it), and batched by
``BatchSize`` and ``MaximumBatchingWindowInSeconds``. Records are shaped exactly as in Lambda's
DynamoDB event. A batch is retried with backoff until it succeeds or ``MaximumRetryAttempts`` is
exhausted (-1: forever); ``ReportBatchItemFailures`` responses make the retry start at the lowest
failed sequence number; ``BisectBatchOnFunctionError`` splits a failing batch (splitting does not
count as a retry). An exhausted batch goes to the ``OnFailure`` SQS destination as Lambda's failure
record, and the shard moves on. The checkpoint (last delivered sequence number per shard) is kept in
memory and, given a path, in a JSON file, so a restarted stack resumes instead of replaying.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steppay_local._util import DEFAULT_REGION, LogSink, client
from steppay_local.pollers import Outcome, Poller
from steppay_local.template import DynamoDBEvent
from steppay_local.workers import InvocationError, LocalFunction


class CheckpointStore:
    """Last delivered sequence number per (mapping, shard); optionally persisted as JSON."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._data: dict[str, Any] = {}
        if path is not None and path.exists():
            with contextlib.suppress(OSError, json.JSONDecodeError):
                self._data = json.loads(path.read_text(encoding="utf-8"))

    def mapping(self, key: str, stream_arn: str) -> dict[str, Any]:
        """The shards' checkpoints of ``key``; forgotten when the stream is a different one."""
        with self._lock:
            entry = self._data.get(key)
            if not entry or entry.get("streamArn") != stream_arn:
                entry = {"streamArn": stream_arn, "shards": {}}
                self._data[key] = entry
                self._save()
            return dict(entry["shards"])

    def update(
        self,
        key: str,
        stream_arn: str,
        shard_id: str,
        *,
        sequence: str | None = None,
        done: bool | None = None,
    ) -> None:
        with self._lock:
            entry = self._data.setdefault(key, {"streamArn": stream_arn, "shards": {}})
            if entry.get("streamArn") != stream_arn:
                entry.clear()
                entry.update({"streamArn": stream_arn, "shards": {}})
            shard = entry["shards"].setdefault(shard_id, {})
            if sequence is not None:
                shard["sequenceNumber"] = sequence
            if done is not None:
                shard["done"] = done
            self._save()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            copied: dict[str, Any] = json.loads(json.dumps(self._data))
            return copied

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self._data, indent=1, sort_keys=True), encoding="utf-8")
        tmp.replace(self.path)


def _json_attribute_values(value: Any) -> Any:
    """boto3's parsed DynamoDB JSON back to the wire form Lambda puts in events (binary as base64)."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):
        return {k: _json_attribute_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_attribute_values(v) for v in value]
    return value


def _epoch(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return int(value.timestamp())
    return value


def lambda_record(raw: dict[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """One stream record as Lambda's DynamoDB event carries it."""
    source = raw.get("dynamodb") or {}
    dynamodb: dict[str, Any] = {}
    if "ApproximateCreationDateTime" in source:
        dynamodb["ApproximateCreationDateTime"] = _epoch(source["ApproximateCreationDateTime"])
    for key in ("Keys", "NewImage", "OldImage"):
        if key in source:
            dynamodb[key] = _json_attribute_values(source[key])
    for key in ("SequenceNumber", "SizeBytes", "StreamViewType"):
        if key in source:
            dynamodb[key] = source[key]
    record: dict[str, Any] = {
        "eventID": raw.get("eventID"),
        "eventName": raw.get("eventName"),
        "eventVersion": raw.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }
    if raw.get("userIdentity"):
        record["userIdentity"] = raw["userIdentity"]
    return record


def _iso(epoch: Any) -> str | None:
    if not isinstance(epoch, int | float):
        return None
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso_now() -> str:
    return (
        dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{dt.datetime.now(dt.UTC).microsecond // 1000:03d}Z"
    )


@dataclass
class _Shard:
    shard_id: str
    parent_id: str | None
    iterator: str | None = None
    finished: bool = False  # closed and every record delivered
    at_end: bool = False  # closed and every record read
    buffer: list[dict[str, Any]] = field(default_factory=list)
    first_buffered: float = 0.0
    started: bool = False
    #: Buffered record's sequence number -> the last filtered-out record read right after it: the
    #: checkpoint moves there once that record's batch is done (Lambda advances past them too).
    skipped_after: dict[str, str] = field(default_factory=dict)


class StreamEventSource(Poller):
    """One DynamoDB event source mapping: a table's stream feeding one function."""

    def __init__(
        self,
        function: LocalFunction,
        event: DynamoDBEvent,
        *,
        table_name: str,
        dynamodb_endpoint: str,
        moto_endpoint: str | None = None,
        on_failure_queue_url: str | None = None,
        checkpoints: CheckpointStore | None = None,
        region: str = DEFAULT_REGION,
        log_sink: LogSink | None = None,
        retry_backoff: tuple[float, float] = (0.2, 5.0),
        shard_refresh_seconds: float = 2.0,
    ) -> None:
        super().__init__(f"stream:{function.spec.logical_id}.{event.name}", log_sink=log_sink)
        self.function = function
        self.event = event
        self.table_name = table_name
        self.region = region
        self.key = f"{function.spec.logical_id}.{event.name}"
        self.checkpoints = checkpoints or CheckpointStore()
        self.retry_backoff = retry_backoff
        self.shard_refresh_seconds = shard_refresh_seconds
        self.on_failure_queue_url = on_failure_queue_url
        self._ddb = client("dynamodb", dynamodb_endpoint, region)
        self._streams = client("dynamodbstreams", dynamodb_endpoint, region)
        self._sqs = client("sqs", moto_endpoint, region) if moto_endpoint else None
        self.stream_arn: str | None = None
        self._shards: dict[str, _Shard] = {}
        self._refreshed = 0.0
        self._first_discovery = True
        self.delivered_batches = 0
        self.failed_batches = 0
        self.filtered_records = 0  # dropped by the mapping's FilterCriteria, never delivered

    # -- discovery --

    def _refresh(self) -> None:
        table = self._ddb.describe_table(TableName=self.table_name)["Table"]
        arn = table.get("LatestStreamArn")
        if not arn:
            raise RuntimeError(f"table {self.table_name} has no stream")
        if arn != self.stream_arn:
            if self.stream_arn is not None:
                self.log(f"stream changed ({self.stream_arn} -> {arn}); starting on the new stream")
            self.stream_arn = arn
            self._shards = {}
            self._first_discovery = True
        saved = self.checkpoints.mapping(self.key, arn)
        shards: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"StreamArn": arn}
        while True:
            description = self._streams.describe_stream(**kwargs)["StreamDescription"]
            shards += description.get("Shards", [])
            last = description.get("LastEvaluatedShardId")
            if not last:
                break
            kwargs["ExclusiveStartShardId"] = last
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id in self._shards:
                continue
            state = _Shard(shard_id, shard.get("ParentShardId"))
            if saved.get(shard_id, {}).get("done"):
                state.finished = True
            self._shards[shard_id] = state
        self._first_discovery = False
        self._refreshed = time.monotonic()

    def _eligible(self) -> list[_Shard]:
        """Unfinished shards whose parent (if we know it) has been fully delivered, parents first."""
        ready = []
        for shard in self._shards.values():
            if shard.finished:
                continue
            parent = self._shards.get(shard.parent_id or "")
            if parent is not None and not parent.finished:
                continue
            ready.append(shard)
        return ready

    def _iterator(self, shard: _Shard) -> str | None:
        assert self.stream_arn is not None
        saved = self.checkpoints.mapping(self.key, self.stream_arn).get(shard.shard_id, {})
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard.shard_id}
        if saved.get("sequenceNumber"):
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=saved["sequenceNumber"])
        elif (
            self.event.starting_position == "LATEST"
            and shard.parent_id not in self._shards
            and not shard.started
        ):
            kwargs["ShardIteratorType"] = "LATEST"
        else:
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"
        shard.started = True
        try:
            return str(self._streams.get_shard_iterator(**kwargs)["ShardIterator"])
        except Exception as exc:
            code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
            if code == "TrimmedDataAccessException":
                self.log(f"{shard.shard_id}: checkpoint trimmed away, reading from TRIM_HORIZON")
                kwargs.pop("SequenceNumber", None)
                kwargs["ShardIteratorType"] = "TRIM_HORIZON"
                return str(self._streams.get_shard_iterator(**kwargs)["ShardIterator"])
            raise

    def _read(self, shard: _Shard) -> None:
        if shard.at_end or len(shard.buffer) >= self.event.batch_size:
            return
        if shard.iterator is None:
            shard.iterator = self._iterator(shard)
        try:
            response = self._streams.get_records(ShardIterator=shard.iterator, Limit=1000)
        except Exception:
            shard.iterator = None  # recreate it from the checkpoint next time
            raise
        records = self._filtered(shard, response.get("Records", []))
        if records and not shard.buffer:
            shard.first_buffered = time.monotonic()
        shard.buffer += records
        shard.iterator = response.get("NextShardIterator")
        if shard.iterator is None:
            shard.at_end = True

    def _filtered(self, shard: _Shard, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The records the mapping's FilterCriteria lets through; the others are only stepped over.

        A filtered-out record is never delivered and never retried: with nothing buffered before
        it, the checkpoint moves past it at once, else once the batch before it is done.
        """
        criteria = self.event.filter_criteria
        if criteria is None or not records:
            return records
        assert self.stream_arn is not None
        kept: list[dict[str, Any]] = []
        for raw in records:
            if criteria.matches(lambda_record(raw, self.stream_arn, self.region)):
                kept.append(raw)
                continue
            sequence = raw["dynamodb"]["SequenceNumber"]
            before = kept[-1] if kept else (shard.buffer[-1] if shard.buffer else None)
            if before is None:
                self.checkpoints.update(self.key, self.stream_arn, shard.shard_id, sequence=sequence)
            else:
                shard.skipped_after[before["dynamodb"]["SequenceNumber"]] = sequence
            self.filtered_records += 1
        return kept

    # -- the loop --

    def poll_once(self) -> Outcome:
        if (
            self.stream_arn is None
            or time.monotonic() - self._refreshed > self.shard_refresh_seconds
            or not self._eligible()
        ):
            self._refresh()
        worked = False
        pending = False
        for shard in self._eligible():
            if self.stopping:
                return Outcome.PENDING
            self._read(shard)
            if not shard.buffer:
                if shard.at_end:
                    shard.finished = True
                    assert self.stream_arn is not None
                    self.checkpoints.update(self.key, self.stream_arn, shard.shard_id, done=True)
                    worked = True
                continue
            full = len(shard.buffer) >= self.event.batch_size
            window_over = (
                time.monotonic() - shard.first_buffered >= self.event.maximum_batching_window_seconds
            )
            if full or window_over or shard.at_end:
                batch = shard.buffer[: self.event.batch_size]
                if not self._deliver(shard, batch):
                    return Outcome.PENDING  # stopping in the middle of a batch: it will be read again
                skips = [shard.skipped_after.pop(r["dynamodb"]["SequenceNumber"], None) for r in batch]
                skipped = skips[-1]
                if skipped is not None:
                    assert self.stream_arn is not None
                    self.checkpoints.update(self.key, self.stream_arn, shard.shard_id, sequence=skipped)
                del shard.buffer[: len(batch)]
                if shard.buffer:
                    shard.first_buffered = time.monotonic()
                worked = True
            else:
                pending = True
        if worked:
            return Outcome.WORKED
        return Outcome.PENDING if pending else Outcome.IDLE

    # -- delivery --

    def _checkpoint(self, shard: _Shard, record: dict[str, Any]) -> None:
        assert self.stream_arn is not None
        sequence = record["dynamodb"]["SequenceNumber"]
        self.checkpoints.update(self.key, self.stream_arn, shard.shard_id, sequence=sequence)

    def _invoke(self, batch: list[dict[str, Any]]) -> tuple[str, int, InvocationError | None]:
        """("ok"|"partial"|"error", index of the first failed record, error)."""
        assert self.stream_arn is not None
        records = [lambda_record(raw, self.stream_arn, self.region) for raw in batch]
        try:
            result = self.function.invoke({"Records": records})
        except InvocationError as exc:
            return "error", 0, exc
        if not self.event.report_batch_item_failures or not isinstance(result, dict):
            return "ok", len(batch), None
        failures = result.get("batchItemFailures")
        if not failures:
            return "ok", len(batch), None
        sequences = [r["dynamodb"]["SequenceNumber"] for r in batch]
        indexes = []
        for failure in failures if isinstance(failures, list) else [None]:
            identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
            if not identifier or identifier not in sequences:
                self.log(f"invalid batchItemFailures entry {failure!r}: the whole batch counts as failed")
                return "error", 0, None
            indexes.append(sequences.index(identifier))
        return "partial", min(indexes), None

    def _deliver(self, shard: _Shard, batch: list[dict[str, Any]]) -> bool:
        """Deliver ``batch`` with Lambda's retry semantics; False if interrupted by stop()."""
        pending: list[tuple[list[dict[str, Any]], int]] = [(batch, 0)]
        while pending:
            records, attempts = pending.pop(0)
            outcome, first_failed, error = self._invoke(records)
            if self.stopping and outcome != "ok":
                return False
            if outcome == "ok":
                self._checkpoint(shard, records[-1])
                self.delivered_batches += 1
                continue
            if outcome == "partial":
                if first_failed > 0:
                    self._checkpoint(shard, records[first_failed - 1])
                records = records[first_failed:]
            attempts += 1
            if self.event.maximum_retry_attempts != -1 and attempts > self.event.maximum_retry_attempts:
                self._exhausted(shard, records, attempts, error, "RetryAttemptsExhausted")
                self._checkpoint(shard, records[-1])
                continue
            if self._too_old(records):
                self._exhausted(shard, records, attempts, error, "RecordAgeExceeded")
                self._checkpoint(shard, records[-1])
                continue
            if outcome == "error" and self.event.bisect_batch_on_function_error and len(records) > 1:
                middle = len(records) // 2
                self.log(f"batch of {len(records)} failed; bisecting")
                pending[:0] = [(records[:middle], attempts - 1), (records[middle:], attempts - 1)]
                continue
            delay = min(self.retry_backoff[1], self.retry_backoff[0] * 2 ** (attempts - 1))
            self.log(
                f"batch of {len(records)} from {records[0]['dynamodb']['SequenceNumber']} failed "
                f"(attempt {attempts}); retrying in {delay:.1f}s"
            )
            pending.insert(0, (records, attempts))
            if not self.sleep(delay):
                return False
        return True

    def _too_old(self, records: list[dict[str, Any]]) -> bool:
        limit = self.event.maximum_record_age_seconds
        if limit == -1:
            return False
        created = _epoch(records[0]["dynamodb"].get("ApproximateCreationDateTime"))
        return isinstance(created, int | float) and time.time() - created > limit

    def _exhausted(
        self,
        shard: _Shard,
        records: list[dict[str, Any]],
        attempts: int,
        error: InvocationError | None,
        condition: str,
    ) -> None:
        self.failed_batches += 1
        first, last = records[0]["dynamodb"], records[-1]["dynamodb"]
        response_context: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
        if error is not None:
            response_context["functionError"] = "Unhandled"
        failure = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": self.function.spec.arn,
                "condition": condition,
                "approximateInvokeCount": attempts,
            },
            "responseContext": response_context,
            "version": "1.0",
            "timestamp": _iso_now(),
            "DDBStreamBatchInfo": {
                "shardId": shard.shard_id,
                "startSequenceNumber": first["SequenceNumber"],
                "endSequenceNumber": last["SequenceNumber"],
                "approximateArrivalOfFirstRecord": _iso(_epoch(first.get("ApproximateCreationDateTime"))),
                "approximateArrivalOfLastRecord": _iso(_epoch(last.get("ApproximateCreationDateTime"))),
                "batchSize": len(records),
                "streamArn": self.stream_arn,
            },
        }
        destination = self.event.on_failure_destination
        if self.on_failure_queue_url and self._sqs is not None:
            self._sqs.send_message(QueueUrl=self.on_failure_queue_url, MessageBody=json.dumps(failure))
            self.log(
                f"{condition}: {len(records)} record(s) {first['SequenceNumber']}..{last['SequenceNumber']} "
                f"sent to the on-failure destination {destination}"
            )
        else:
            self.log(
                f"{condition}: {len(records)} record(s) {first['SequenceNumber']}..{last['SequenceNumber']} "
                "discarded (no on-failure destination"
                + (f" emulated for {destination})" if destination else ")")
            )
