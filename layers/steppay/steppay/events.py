"""EventBridge notifications for the merchant's own subscribers.

Events are derived from the payments table's stream (the outbox), never written beside a
DynamoDB write, so a verified payment cannot be recorded without its event eventually going
out. Each event carries an `eventId` derived from the state change itself, so a retried
publish repeats the same id and subscribers can deduplicate on it.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import boto3

from steppay.persistence import PaymentRecord, PaymentState
from steppay.settings import get_settings

EVENT_SOURCE = "steppay.payments"
PAYMENT_VERIFIED = "Payment Verified"
PUT_EVENTS_BATCH = 10  # EventBridge's limit per PutEvents call

# Fixed namespace: event ids must stay the same across deployments and retries.
_EVENT_ID_NAMESPACE = uuid.UUID("7d0c6a52-4b7e-4f61-9a3c-2f1b0d9e8c41")


def event_id_for(order_code: str, change: str) -> str:
    return str(uuid.uuid5(_EVENT_ID_NAMESPACE, f"{change}:{order_code}"))


def payment_verified_detail(record: PaymentRecord) -> dict[str, Any]:
    """The `Payment Verified` detail (schema: events/schemas/payment-verified.json)."""
    return {
        "eventId": event_id_for(record.order_code, "payment-verified"),
        "orderCode": record.order_code,
        "orderId": record.order_id,
        "orderType": record.order_type,
        "amount": str(record.paid_amount if record.paid_amount is not None else record.amount),
        "currency": record.currency,
        "paidAt": record.paid_at.isoformat() if record.paid_at else None,
        "customerId": record.customer_id,
        "merchantRef": record.merchant_ref,
        "subscriptionIds": list(record.subscription_ids),
    }


@dataclass(frozen=True)
class OutgoingEvent:
    detail_type: str
    detail: dict[str, Any]
    source: str = EVENT_SOURCE
    resources: tuple[str, ...] = ()

    @property
    def event_id(self) -> str:
        return str(self.detail["eventId"])


def events_for_change(old: PaymentRecord | None, new: PaymentRecord) -> list[OutgoingEvent]:
    """The events one stored state change stands for (none for most writes)."""
    if new.state is PaymentState.PAID and (old is None or old.state is not PaymentState.PAID):
        return [OutgoingEvent(PAYMENT_VERIFIED, payment_verified_detail(new))]
    return []


@dataclass(frozen=True)
class PublishFailure:
    event: OutgoingEvent
    error_code: str


class EventPublisher:
    def __init__(self, client: Any, bus_name: str) -> None:
        self._client = client
        self._bus_name = bus_name

    def publish(self, events: Sequence[OutgoingEvent]) -> list[PublishFailure]:
        """Put the events on the bus; returns the ones EventBridge did not take."""
        failures: list[PublishFailure] = []
        for start in range(0, len(events), PUT_EVENTS_BATCH):
            chunk = events[start : start + PUT_EVENTS_BATCH]
            entries = [
                {
                    "Source": event.source,
                    "DetailType": event.detail_type,
                    "Detail": json.dumps(event.detail, ensure_ascii=False, separators=(",", ":")),
                    "EventBusName": self._bus_name,
                    "Resources": list(event.resources),
                }
                for event in chunk
            ]
            try:
                response = self._client.put_events(Entries=entries)
            except Exception as exc:  # noqa: BLE001 - any failure means "not published, retry"
                failures.extend(PublishFailure(e, type(exc).__name__) for e in chunk)
                continue
            for event, result in zip(chunk, response.get("Entries", []), strict=False):
                if result.get("ErrorCode") or not result.get("EventId"):
                    failures.append(PublishFailure(event, str(result.get("ErrorCode", "Unknown"))))
            # Entries missing from the answer were not confirmed either.
            for event in chunk[len(response.get("Entries", [])) :]:
                failures.append(PublishFailure(event, "NotConfirmed"))
        return failures


@functools.cache
def _events_client() -> Any:
    # Created once per container; AWS_ENDPOINT_URL_EVENTS points it at moto locally.
    return boto3.client("events")


@functools.cache
def get_event_publisher() -> EventPublisher:
    return EventPublisher(_events_client(), get_settings().event_bus_name)
