"""Webhook intake and processing: the two halves around the queue.

`accept_webhook` runs in the HTTP intake: authenticate, queue, answer. The queue is the only
durable store a delivery needs (SQS keeps it until processed, then a dead-letter queue), so the
intake touches no table. `process_queued_webhook` runs from the queue: look up what the message
names at StepPay and record what StepPay says.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

import boto3
from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field

from steppay.aws import AWS_CLIENT_CONFIG
from steppay.errors import InvalidIdentifier, StepPayNotFound, StepPayRejected
from steppay.problems import Problem
from steppay.secrets import get_webhook_keys
from steppay.settings import get_settings
from steppay.webhook_events import PAYMENT_COMPLETED_EVENTS
from steppay.webhooks import AuthenticatedWebhook, WebhookHint, authenticate_webhook

logger = Logger(child=True)
MAX_QUEUED_REF = 200  # an order ref longer than any code or id is cut: the processor rejects it anyway


class QueueUnavailable(Problem):
    status = 503
    code = "queue_unavailable"
    retry_after_seconds = 5


class QueuedWebhook(BaseModel):
    """The queue message: what a delivery asks us to look up, with small metadata (no body, no
    personal data: StepPay's data is never believed, so it need not travel)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, defer_build=True)

    version: Literal["v1", "v2"]
    event_type: str = Field(alias="eventType", max_length=100)
    received_at: datetime = Field(alias="receivedAt")
    body_sha256: str = Field(alias="bodySha256", pattern="^[0-9a-f]{64}$")
    hint: Literal["order", "subscription"]
    order_ref: str | None = Field(default=None, alias="orderRef", max_length=MAX_QUEUED_REF)
    subscription_id: int | None = Field(default=None, alias="subscriptionId", gt=0, lt=2**63)
    signature_timestamp: int | None = Field(default=None, alias="signatureTimestamp")

    @classmethod
    def of(cls, delivery: AuthenticatedWebhook) -> QueuedWebhook:
        hint = delivery.hint
        return cls(
            version=delivery.version,
            event_type=delivery.event_type,
            received_at=delivery.received_at,
            body_sha256=delivery.body_sha256,
            hint=hint.kind,
            order_ref=hint.order_ref[:MAX_QUEUED_REF] if hint.order_ref is not None else None,
            subscription_id=hint.subscription_id,
            signature_timestamp=delivery.signature_timestamp,
        )

    @property
    def webhook_hint(self) -> WebhookHint:
        return WebhookHint(self.hint, order_ref=self.order_ref, subscription_id=self.subscription_id)

    def to_message(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


@dataclass(frozen=True)
class AcceptedWebhook:
    webhook: AuthenticatedWebhook
    queued: bool  # False for a type that cannot change anything we record: acknowledged only


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
    """Authenticate a delivery and, when it could change what we record, queue it: one durable write.

    Nothing is deduplicated here: a repeated delivery is queued again and costs the processor at
    most one look-up, while a dedupe key could make a real change look like a repeat.
    """
    settings = get_settings()
    delivery = authenticate_webhook(
        raw_body,
        headers,
        get_webhook_keys(),
        tolerance_seconds=settings.webhook_tolerance_seconds,
        v1_enabled=settings.webhook_v1_intake == "enabled",
    )
    log = {
        "event_type": delivery.event_type,
        "version": delivery.version,
        "body_sha256": delivery.body_sha256,
    }
    if delivery.stale_signature:
        # Authentic but older than the tolerance: a portal resend (or a replay, harmless as a hint).
        logger.warning("Signed webhook older than the tolerance accepted as a hint", extra=log)
    if not delivery.actionable:
        # order.created, unknown types, bodies naming nothing: nothing to look up, nothing to keep.
        logger.info("Webhook acknowledged, not acted on", extra=log)
        return AcceptedWebhook(delivery, queued=False)
    try:
        _sqs_client().send_message(
            QueueUrl=settings.webhook_queue_url, MessageBody=QueuedWebhook.of(delivery).to_message()
        )
    except (ClientError, BotoCoreError) as exc:
        logger.warning("Could not queue a webhook", extra={**log, "error": type(exc).__name__})
        raise QueueUnavailable("The webhook could not be queued; have StepPay deliver it again.") from exc
    logger.info(
        "Webhook accepted",
        extra={**log, "signature_verified": delivery.signature_verified, "stale": delivery.stale_signature},
    )
    return AcceptedWebhook(delivery, queued=True)


class WebhookOutcome(StrEnum):
    PROCESSED = "PROCESSED"
    IGNORED = "IGNORED"  # names an order this bundle did not register, or nothing we act on
    REJECTED = "REJECTED"  # StepPay does not confirm what it names (unknown, foreign, malformed)


@dataclass(frozen=True)
class ProcessingOutcome:
    state: WebhookOutcome
    detail: str
    looked_up: bool = True  # False: answered by what is recorded, or by an earlier message of the batch


class BatchLookups:
    """What one SQS batch has already asked StepPay, so that deliveries naming the same order or
    subscription cost one look-up. A look-up that raised is raised again for the others (they
    go back to the queue together)."""

    def __init__(self) -> None:
        self._done: dict[tuple[str, str], ProcessingOutcome | Exception] = {}

    def get(self, key: tuple[str, str]) -> ProcessingOutcome | None:
        done = self._done.get(key)
        if isinstance(done, Exception):
            raise done
        return done

    def keep(self, key: tuple[str, str], result: ProcessingOutcome | Exception) -> None:
        self._done[key] = result

    def __len__(self) -> int:
        return len(self._done)


def coalescing_key(hint: WebhookHint) -> tuple[str, str] | None:
    """Deliveries with the same key in one batch are answered by one look-up."""
    if hint.kind == "order" and hint.order_ref is not None:
        return ("order", hint.order_ref)
    if hint.kind == "subscription" and hint.subscription_id is not None:
        return ("subscription", str(hint.subscription_id))
    return None


def process_queued_webhook(webhook: QueuedWebhook, batch: BatchLookups | None = None) -> ProcessingOutcome:
    """Act on one queued webhook by asking StepPay. Raises (so the queue retries) on outages."""
    hint = webhook.webhook_hint
    key = coalescing_key(hint)
    earlier = batch.get(key) if batch is not None and key is not None else None
    if earlier is not None:
        # StepPay was asked after this delivery arrived (the batch was received before): its
        # answer is this delivery's answer too.
        outcome = ProcessingOutcome(earlier.state, earlier.detail, looked_up=False)
    else:
        try:
            outcome = _answer(webhook, hint, batch)
        except Exception as exc:
            if batch is not None and key is not None:
                batch.keep(key, exc)
            raise
        # Only StepPay's answers are shared: a record-only answer ("it was paid") does not
        # answer a refund or update delivery about the same order.
        if batch is not None and key is not None and outcome.looked_up:
            batch.keep(key, outcome)
    logger.info(
        "Webhook processed",
        extra={
            "event_type": webhook.event_type,
            "body_sha256": webhook.body_sha256,
            "order_ref": webhook.order_ref,
            "subscription_id": webhook.subscription_id,
            "state": outcome.state.value,
            "detail": outcome.detail,
            "looked_up": outcome.looked_up,
        },
    )
    return outcome


def _is_order_code(value: str) -> bool:
    from steppay.identifiers import order_code

    try:
        order_code(value)
    except InvalidIdentifier:
        return False
    return not value.isdigit()


def _recorded_settled(ref: str) -> str | None:
    """PAID, PARTIALLY_REFUNDED or CANCELED when the order `ref` names is recorded so (by code: the
    record; by StepPay's numeric id: the settled-orders index, eventually consistent: a miss only
    asks StepPay), else None."""
    from steppay.persistence import get_payment_store
    from steppay.transitions import SETTLED_STATES

    store = get_payment_store()
    if _is_order_code(ref):
        known = store.get_payment(ref)
        return known.state.value if known is not None and known.state in SETTLED_STATES else None
    if ref.isdigit() and 0 < int(ref) < 2**63:
        state = store.settled_state_by_order_id(int(ref))
        return state.value if state is not None else None
    return None


def _answer(
    webhook: QueuedWebhook, hint: WebhookHint, batch: BatchLookups | None = None
) -> ProcessingOutcome:
    """What StepPay (or, where it already answers the hint, our record) says about the hint."""
    # Imported here: the intake (which shares this module) never reads the table or calls
    # StepPay, and the store, client, flows and order models would add to its cold start.
    from steppay.persistence import VerifiedVia

    if hint.kind == "order" and hint.order_ref is not None and webhook.event_type in PAYMENT_COMPLETED_EVENTS:
        settled = _recorded_settled(hint.order_ref)
        if settled is not None:
            return ProcessingOutcome(WebhookOutcome.PROCESSED, f"order {settled} (recorded)", looked_up=False)

    from steppay.service import get_payment_flows

    flows = get_payment_flows()
    try:
        if hint.kind == "order" and hint.order_ref is not None:
            confirmation = flows.confirm_order(hint.order_ref, via=VerifiedVia.WEBHOOK)
            record = confirmation.record
            # A renewal is recorded under its subscription too: the status and next payment
            # date StepPay reports now. That answer is also the batch's for the subscription:
            # a subscription delivery of the same batch was received before it was asked.
            if record is not None and record.subscription_id is not None:
                synced, _ = flows.sync_subscription(record.subscription_id)
                if batch is not None:
                    detail = f"subscription {synced.status}"
                    batch.keep(
                        ("subscription", str(record.subscription_id)),
                        ProcessingOutcome(WebhookOutcome.PROCESSED, detail),
                    )
            if confirmation.registered:
                return ProcessingOutcome(
                    WebhookOutcome.PROCESSED, f"order {confirmation.result.verdict.value}"
                )
            return ProcessingOutcome(WebhookOutcome.IGNORED, "order not registered by this bundle")
        if hint.kind == "subscription" and hint.subscription_id is not None:
            subscription, _ = flows.sync_subscription(hint.subscription_id)
            return ProcessingOutcome(WebhookOutcome.PROCESSED, f"subscription {subscription.status}")
        return ProcessingOutcome(
            WebhookOutcome.IGNORED, f"{webhook.event_type} not acted on", looked_up=False
        )
    except (StepPayNotFound, StepPayRejected) as exc:
        # StepPay does not know what the webhook names (forged, foreign or malformed): record
        # nothing, do not retry.
        return ProcessingOutcome(WebhookOutcome.REJECTED, f"StepPay: {type(exc).__name__}")
    except InvalidIdentifier:
        # What it names cannot even be looked up (`../customers`, an object...): no retry will
        # change that, so it is rejected (and logged) instead of failing until the dead-letter queue.
        return ProcessingOutcome(WebhookOutcome.REJECTED, "invalid identifier", looked_up=False)
