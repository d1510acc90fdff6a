"""Processes queued webhooks: asks StepPay what is true and records it (SQS event source).

Each message is what the intake queued (`steppay.intake.QueuedWebhook`): what a delivery names,
never its data; a message that is not one fails and, after the retries, waits in the dead-letter
queue.

Deliveries of one batch that name the same order or subscription share one StepPay look-up
(`steppay.intake.BatchLookups`), and a payment-completed delivery for an order recorded PAID
needs none. A record that fails (StepPay down, throttled, storage unavailable) is reported as a batch
item failure, so SQS makes it visible again later; after the queue's maxReceiveCount it moves
to the dead-letter queue, where an alarm waits for a human.
"""

from __future__ import annotations

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
from steppay.intake import BatchLookups, QueuedWebhook, WebhookOutcome, process_queued_webhook
from steppay.tracing import get_tracer

logger = Logger()
tracer = get_tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)


# One per invocation (reset by the handler): deliveries of a batch naming the same order or
# subscription are answered by one StepPay look-up.
_batch = BatchLookups()
# Outcome metrics have fixed names and the fixed dimension set of the namespace (no event type).
OUTCOME_METRICS = {
    WebhookOutcome.PROCESSED: "WebhooksProcessedProcessed",
    WebhookOutcome.IGNORED: "WebhooksProcessedIgnored",
    WebhookOutcome.REJECTED: "WebhooksProcessedRejected",
}


@tracer.capture_method
def handle_record(record: SQSRecord) -> None:
    outcome = process_queued_webhook(QueuedWebhook.model_validate_json(record.body), _batch)
    metrics.add_metric(name=OUTCOME_METRICS[outcome.state], unit=MetricUnit.Count, value=1)
    if outcome.looked_up:
        metrics.add_metric(name="WebhookLookups", unit=MetricUnit.Count, value=1)
    else:
        metrics.add_metric(name="WebhookLookupsSaved", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    global _batch
    _batch = BatchLookups()  # a look-up answers only the deliveries received before it
    return process_partial_response(
        event=event, record_handler=handle_record, processor=processor, context=context
    )
