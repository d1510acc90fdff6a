"""Publishes the events that the payments table's stream stands for.

Fed by the table's stream (Lambda event source mapping with ReportBatchItemFailures): each
record that moves an order into a new state becomes one EventBridge event. Records whose
events EventBridge did not take are reported as failed, so Lambda retries from the first of
them; events re-sent by such a retry keep their eventId.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from steppay.events import get_event_publisher
from steppay.outbox import events_for_stream_record
from steppay.tracing import get_tracer

logger = Logger()
tracer = get_tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=DynamoDBStreamEvent)
def lambda_handler(event: DynamoDBStreamEvent, context: LambdaContext) -> dict[str, Any]:
    pending = []  # (sequence number, event)
    failed_sequences: list[str] = []
    for record in event.records:
        sequence = record.dynamodb.sequence_number if record.dynamodb else None
        try:
            for outgoing in events_for_stream_record(record):
                pending.append((sequence, outgoing))
        except Exception:
            logger.exception("Could not read a stream record", extra={"sequence_number": sequence})
            if sequence:
                failed_sequences.append(sequence)

    failures = get_event_publisher().publish([outgoing for _, outgoing in pending])
    failed_ids = {failure.event.event_id for failure in failures}
    for sequence, outgoing in pending:
        if outgoing.event_id in failed_ids and sequence:
            failed_sequences.append(sequence)
    published = len(pending) - len(failures)
    if published:
        metrics.add_metric(name="EventsPublished", unit=MetricUnit.Count, value=published)
    # One metric per detail-type ("Payment Verified" -> PaymentVerifiedEvents): the outbox sees
    # every recorded change once, whichever door (redirect, webhook, reconciliation) recorded it.
    for detail_type, count in Counter(
        outgoing.detail_type for _, outgoing in pending if outgoing.event_id not in failed_ids
    ).items():
        metrics.add_metric(name=f"{detail_type.replace(' ', '')}Events", unit=MetricUnit.Count, value=count)
    if failures:
        metrics.add_metric(name="EventPublishFailures", unit=MetricUnit.Count, value=len(failures))
        logger.warning(
            "EventBridge did not take some events",
            extra={"failures": [{"eventId": f.event.event_id, "error": f.error_code} for f in failures]},
        )
    # Lambda retries from the lowest failed sequence number; report each at most once.
    unique = sorted(set(failed_sequences), key=lambda s: int(s) if s.isdigit() else s)
    return {"batchItemFailures": [{"itemIdentifier": s} for s in unique]}
