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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import boto3

from steppay.persistence import PaymentRecord, Registration, SubscriptionRecord
from steppay.settings import get_settings
from steppay.transitions import (
    PAYMENT_CANCELED,
    PAYMENT_MISMATCH,
    PAYMENT_NEEDS_REVIEW,
    PAYMENT_REFUNDED,
    PAYMENT_VERIFIED,
    RENEWAL_PAYMENT_FAILED,
    RENEWAL_PAYMENT_VERIFIED,
    event_for,
    order_kind,
)

EVENT_SOURCE = "steppay.payments"
SUBSCRIPTION_STATUS_CHANGED = "Subscription Status Changed"
# Every detail-type the outbox publishes (the publisher counts each as `<DetailType>Events`).
DETAIL_TYPES = (
    PAYMENT_VERIFIED,
    PAYMENT_MISMATCH,
    PAYMENT_NEEDS_REVIEW,
    RENEWAL_PAYMENT_VERIFIED,
    RENEWAL_PAYMENT_FAILED,
    PAYMENT_REFUNDED,
    PAYMENT_CANCELED,
    SUBSCRIPTION_STATUS_CHANGED,
)
PUT_EVENTS_BATCH = 10  # EventBridge's limit per PutEvents call

# Fixed namespace: event ids must stay the same across deployments and retries.
_EVENT_ID_NAMESPACE = uuid.UUID("7d0c6a52-4b7e-4f61-9a3c-2f1b0d9e8c41")


def event_id_for(order_code: str, change: str) -> str:
    return str(uuid.uuid5(_EVENT_ID_NAMESPACE, f"{change}:{order_code}"))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _money(value: Decimal | None) -> str | None:
    return str(value) if value is not None else None


def _customer(registration: Registration | None, customer_id: int | None) -> dict[str, Any]:
    if registration is None:
        return {"id": customer_id, "code": None, "uuid": None}
    return {
        "id": registration.customer_id,
        "code": registration.customer_code,
        "uuid": registration.customer_uuid,
    }


def _registered(registration: Registration | None) -> dict[str, Any]:
    """What the merchant's backend bound at registration: a subscriber checks it against its own order."""
    return {
        "checkoutId": registration.checkout_id if registration is not None else None,
        "merchantRef": registration.merchant_ref if registration is not None else None,
        "items": [
            {
                "productCode": item.product_code,
                "priceCode": item.price_code,
                "currency": item.currency,
                "quantity": item.quantity,
                "maxQuantity": item.max_quantity,
            }
            for item in (registration.items if registration is not None else [])
        ],
    }


def _charged(record: PaymentRecord) -> list[dict[str, Any]]:
    """What StepPay charged, line by line: its own tax, shipping, fee and discount lines too."""
    return [
        {
            "type": item.type,
            "name": item.name,
            "productCode": item.product_code,
            "priceCode": item.price_code,
            "quantity": item.quantity,
            "unitPrice": _money(item.unit_price),
            "amount": _money(item.amount),
        }
        for item in record.charged_items
    ]


def _order_detail(record: PaymentRecord, change: str) -> dict[str, Any]:
    return {
        "eventId": event_id_for(record.order_code, change),
        "orderCode": record.order_code,
        "orderId": record.order_id,
        "orderType": record.order_type,
        **_registered(record.registration),
        "chargedItems": _charged(record),
        "amount": _money(record.paid_amount if record.paid_amount is not None else record.amount),
        "currency": record.currency,
        "customer": _customer(record.registration, record.customer_id),
        "customerId": record.customer_id,
        "subscriptionIds": list(record.subscription_ids),
    }


def payment_verified_detail(record: PaymentRecord) -> dict[str, Any]:
    """`Payment Verified` (schema: events/schemas/payment-verified.json)."""
    return {**_order_detail(record, "payment-verified"), "paidAt": _iso(record.paid_at)}


def renewal_verified_detail(record: PaymentRecord) -> dict[str, Any]:
    """`Renewal Payment Verified` (events/schemas/renewal-payment-verified.json)."""
    return {
        **payment_verified_detail(record),
        "eventId": event_id_for(record.order_code, "renewal-payment-verified"),
        "subscriptionId": record.subscription_id,
        "periodStart": _iso(record.period_start),
        "periodEnd": _iso(record.period_end),
        "nextPaymentDate": _iso(record.next_payment_date),
    }


def renewal_failed_detail(record: PaymentRecord) -> dict[str, Any]:
    """`Renewal Payment Failed` (events/schemas/renewal-payment-failed.json)."""
    return {
        **_order_detail(record, "renewal-payment-failed"),
        "amount": _money(record.amount),
        "subscriptionId": record.subscription_id,
        "errorCode": record.error_code,
        "errorMessage": record.error_message,
        "failedAt": _iso(record.failed_at),
    }


def _refund_amount(record: PaymentRecord, previous: PaymentRecord | None) -> Decimal:
    """What this change returned: the growth of StepPay's running total over the recorded one."""
    before = previous.returned_amount if previous is not None else None
    return (record.returned_amount or Decimal(0)) - (before or Decimal(0))


def payment_refunded_detail(record: PaymentRecord, previous: PaymentRecord | None = None) -> dict[str, Any]:
    """`Payment Refunded` (events/schemas/payment-refunded.json): part of a payment returned.

    One per recorded growth of StepPay's `returnedAmount`; its `eventId` names the running total
    it reached, so each partial refund has its own and a retried publish repeats it.
    """
    returned = record.returned_amount or Decimal(0)
    paid = record.paid_amount if record.paid_amount is not None else record.amount
    return {
        **payment_verified_detail(record),
        "eventId": event_id_for(record.order_code, f"payment-refunded:{returned.normalize():f}"),
        "refundAmount": _money(_refund_amount(record, previous)),
        "returnedAmount": _money(returned),
        "remainingAmount": _money(paid - returned if paid is not None else None),
        "refundedAt": _iso(record.refunded_at),
    }


def payment_canceled_detail(record: PaymentRecord, previous: PaymentRecord | None = None) -> dict[str, Any]:
    """`Payment Canceled` (events/schemas/payment-canceled.json): nothing of the payment is left."""
    return {
        **payment_verified_detail(record),
        "eventId": event_id_for(record.order_code, "payment-canceled"),
        "refundAmount": _money(_refund_amount(record, previous)),
        "returnedAmount": _money(record.returned_amount),
        "canceledAt": _iso(record.canceled_at),
    }


def payment_mismatch_detail(record: PaymentRecord) -> dict[str, Any]:
    """`Payment Mismatch` (events/schemas/payment-mismatch.json): money taken for the wrong thing."""
    registration = record.registration
    return {
        **payment_verified_detail(record),
        "eventId": event_id_for(record.order_code, "payment-mismatch"),
        "expectedAmount": _money(registration.expected_amount if registration is not None else None),
        "mismatches": list(record.mismatches),
    }


def payment_needs_review_detail(record: PaymentRecord) -> dict[str, Any]:
    """`Payment Needs Review` (events/schemas/payment-needs-review.json): StepPay said something new."""
    return {
        **payment_verified_detail(record),
        "eventId": event_id_for(record.order_code, "payment-needs-review"),
        "unknownValues": list(record.unknown_values),
    }


def subscription_changed_detail(old: SubscriptionRecord | None, new: SubscriptionRecord) -> dict[str, Any]:
    """`Subscription Status Changed` (events/schemas/subscription-status-changed.json)."""
    observed = new.observed_at.isoformat()
    return {
        "eventId": event_id_for(f"{new.subscription_id}:{observed}:{new.status}", "subscription-status"),
        "subscriptionId": new.subscription_id,
        "status": new.status,
        "previousStatus": old.status if old is not None else None,
        "nextPaymentDate": _iso(new.next_payment_date),
        "customerId": new.customer_id,
        "orderCode": new.order_code,
        "orderId": new.order_id,
        **_registered(new.registration),
        "customer": _customer(new.registration, new.customer_id),
        "observedAt": observed,
    }


# Each order event's detail, by detail-type (which change is which event: steppay.transitions).
DETAILS: dict[str, Callable[[PaymentRecord], dict[str, Any]]] = {
    PAYMENT_VERIFIED: payment_verified_detail,
    RENEWAL_PAYMENT_VERIFIED: renewal_verified_detail,
    RENEWAL_PAYMENT_FAILED: renewal_failed_detail,
    PAYMENT_REFUNDED: payment_refunded_detail,
    PAYMENT_CANCELED: payment_canceled_detail,
    PAYMENT_MISMATCH: payment_mismatch_detail,
    PAYMENT_NEEDS_REVIEW: payment_needs_review_detail,
}
# The refund events' details also need the change's previous record (what this refund returned).
REFUND_DETAILS: dict[str, Callable[[PaymentRecord, PaymentRecord | None], dict[str, Any]]] = {
    PAYMENT_REFUNDED: payment_refunded_detail,
    PAYMENT_CANCELED: payment_canceled_detail,
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


def events_for_order_change(old: PaymentRecord | None, new: PaymentRecord) -> list[OutgoingEvent]:
    """The event one stored order change stands for, by the transition table (none for most writes)."""
    detail_type = event_for(
        old.state if old is not None else None,
        new.state,
        order_kind(new.order_type),
        returned_before=old.returned_amount if old is not None else None,
        returned_after=new.returned_amount,
    )
    if detail_type is None:
        return []
    if detail_type in REFUND_DETAILS:
        return [OutgoingEvent(detail_type, REFUND_DETAILS[detail_type](new, old))]
    return [OutgoingEvent(detail_type, DETAILS[detail_type](new))]


def events_for_subscription_change(
    old: SubscriptionRecord | None, new: SubscriptionRecord
) -> list[OutgoingEvent]:
    if old is not None and old.status == new.status:
        return []
    return [OutgoingEvent(SUBSCRIPTION_STATUS_CHANGED, subscription_changed_detail(old, new))]


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
    # Created once per container; AWS_ENDPOINT_URL_EVENTBRIDGE points it at moto locally.
    return boto3.client("events")


@functools.cache
def get_event_publisher() -> EventPublisher:
    return EventPublisher(_events_client(), get_settings().event_bus_name)
