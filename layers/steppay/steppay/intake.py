"""Webhook intake and processing: the two halves around the queue.

`accept_webhook` runs in the HTTP intake: authenticate, store, queue. `process_stored_webhook`
runs from the queue: look up what the webhook names at StepPay and record what StepPay says.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from steppay.errors import InvalidIdentifier, StepPayNotFound, StepPayRejected
from steppay.persistence import (
    AWS_CLIENT_CONFIG,
    StoredWebhook,
    VerifiedVia,
    WebhookState,
    get_payment_store,
)
from steppay.problems import Problem
from steppay.secrets import get_webhook_keys
from steppay.settings import get_settings
from steppay.webhooks import authenticate_webhook, hint_for

logger = Logger(child=True)


class QueueUnavailable(Problem):
    status = 503
    code = "queue_unavailable"
    retry_after_seconds = 5


@dataclass(frozen=True)
class AcceptedWebhook:
    webhook: StoredWebhook
    duplicate: bool


@functools.cache
def _sqs_client() -> Any:
    # Created once per container; AWS_ENDPOINT_URL_SQS points it at moto locally.
    return boto3.client("sqs", config=AWS_CLIENT_CONFIG)


def check_webhook_keys() -> None:
    """Log, once per container, that signed webhooks will be refused for want of a usable key."""
    from steppay.errors import SecretUnavailable

    try:
        keys = get_webhook_keys()
    except SecretUnavailable as exc:
        logger.error(
            "Webhook verification keys unreadable; signed webhooks are refused", extra={"error": str(exc)}
        )
        return
    if not keys:
        logger.error(
            "No webhook verification key configured (STEPPAY_WEBHOOK_KEYS_PARAM is blank or only commas); "
            "every signed webhook is refused with 503 webhook_keys_unconfigured"
        )


def accept_webhook(raw_body: bytes, headers: Mapping[str, str]) -> AcceptedWebhook:
    settings = get_settings()
    webhook = authenticate_webhook(
        raw_body, headers, get_webhook_keys(), tolerance_seconds=settings.webhook_tolerance_seconds
    )
    store = get_payment_store()
    stored, new = store.save_webhook(webhook)
    # Queue when new, and again for a redelivery of one not yet processed (its first queueing
    # may have failed after the store): processing is idempotent, losing one is not.
    if new or stored.state is WebhookState.RECEIVED:
        try:
            _sqs_client().send_message(
                QueueUrl=settings.webhook_queue_url,
                MessageBody=json.dumps({"dedupeKey": stored.dedupe_key}),
            )
        except (ClientError, BotoCoreError) as exc:
            logger.warning("Could not queue a stored webhook", extra={"error": type(exc).__name__})
            raise QueueUnavailable("The webhook could not be queued; StepPay will deliver it again.") from exc
    logger.info(
        "Webhook accepted",
        extra={
            "event_type": stored.event_type,
            "version": stored.version,
            "duplicate": not new,
            "signature_verified": stored.signature_verified,
        },
    )
    return AcceptedWebhook(stored, duplicate=not new)


@dataclass(frozen=True)
class ProcessingOutcome:
    state: WebhookState
    detail: str


def process_stored_webhook(dedupe_key: str) -> ProcessingOutcome:
    """Act on one stored webhook by asking StepPay. Raises (so the queue retries) on outages."""
    store = get_payment_store()
    webhook = store.get_webhook(dedupe_key)
    if webhook is None:
        logger.error("Queued webhook is not in the store", extra={"dedupe_key": dedupe_key})
        return ProcessingOutcome(WebhookState.REJECTED, "not stored")
    if webhook.state is not WebhookState.RECEIVED:
        return ProcessingOutcome(webhook.state, "already processed")

    # Imported here: the intake (which shares this module) never calls StepPay, and the
    # client, flows and order models would add to its cold start.
    from steppay.service import get_payment_flows

    flows = get_payment_flows()
    hint = hint_for(webhook)
    try:
        if hint.kind == "order" and hint.order_ref is not None:
            confirmation = flows.confirm_order(hint.order_ref, via=VerifiedVia.WEBHOOK)
            record = confirmation.record
            # A renewal is recorded under its subscription too: the status and next payment
            # date StepPay reports now.
            if record is not None and record.subscription_id is not None:
                flows.sync_subscription(record.subscription_id)
            if confirmation.registered:
                outcome = ProcessingOutcome(
                    WebhookState.PROCESSED, f"order {confirmation.result.verdict.value}"
                )
            else:
                outcome = ProcessingOutcome(WebhookState.IGNORED, "order not registered by this bundle")
        elif hint.kind == "subscription" and hint.subscription_id is not None:
            subscription, _ = flows.sync_subscription(hint.subscription_id)
            outcome = ProcessingOutcome(WebhookState.PROCESSED, f"subscription {subscription.status}")
        else:
            outcome = ProcessingOutcome(WebhookState.IGNORED, f"{webhook.event_type} not acted on")
    except (StepPayNotFound, StepPayRejected) as exc:
        # StepPay does not know what the webhook names (forged, foreign or malformed): keep it,
        # record nothing, do not retry.
        outcome = ProcessingOutcome(WebhookState.REJECTED, f"StepPay: {type(exc).__name__}")
    except InvalidIdentifier:
        # What it names cannot even be looked up (`../customers`, an object...): no retry will
        # change that, so it is kept as rejected instead of failing until the dead-letter queue.
        outcome = ProcessingOutcome(WebhookState.REJECTED, "invalid identifier")
    store.mark_webhook(dedupe_key, outcome.state, outcome.detail)
    logger.info(
        "Webhook processed",
        extra={"event_type": webhook.event_type, "state": outcome.state.value, "detail": outcome.detail},
    )
    return outcome
