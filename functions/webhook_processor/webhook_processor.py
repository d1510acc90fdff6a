"""Processes queued webhooks: asks StepPay what is true and records it (SQS event source).

A record that fails (StepPay down, throttled, storage unavailable) is reported as a batch
item failure, so SQS makes it visible again later; after the queue's maxReceiveCount it moves
to the dead-letter queue, where an alarm waits for a human.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

# Loaded at init, not at the first message: steppay.intake defers it for the intake's sake,
# and this path always needs StepPay's client and the payment flows.
import steppay.service  # noqa: F401
from steppay.intake import process_stored_webhook
from steppay.tracing import get_tracer

logger = Logger()
tracer = get_tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)


@tracer.capture_method
def handle_record(record: SQSRecord) -> None:
    message = json.loads(record.body)
    outcome = process_stored_webhook(str(message["dedupeKey"]))
    metrics.add_metric(name=f"WebhooksProcessed{outcome.state.value.title()}", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=handle_record, processor=processor, context=context
    )
