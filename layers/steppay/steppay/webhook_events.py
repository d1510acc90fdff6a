"""StepPay's webhook event names, in one place (docs/STEPPAY.md: webhook v2 and v1 guides).

v2 bodies name their event (`order.payment_completed`...); v1 bodies are classified by the intake
as `v1.order.<webHookType>` and `v1.subscription`. Which of them could change what the bundle
records is decided here too, so that the intake (what to queue), the processor (what the record
already answers) and the metric dimension read one list.
"""

from __future__ import annotations

ORDER_EVENTS = frozenset({"order.created", "order.updated", "order.payment_completed"})
PAYMENT_EVENTS = frozenset({"payment.completed", "payment.failed", "payment.canceled", "payment.standby"})
SUBSCRIPTION_EVENTS = frozenset(
    {"subscription.created", "subscription.updated", "subscription.payment_due_notification"}
)
V1_EVENTS = frozenset({"v1.order.PAYMENT", "v1.subscription"})

# Nothing we record can change with these: `order.created` (an order exists: we made it, or it is
# not ours), `payment.standby` (a virtual account was issued: still unpaid), and the reminder
# before a renewal. They are acknowledged and never queued.
INERT_EVENTS = frozenset({"order.created", "payment.standby", "subscription.payment_due_notification"})
ACTIONABLE_ORDER_EVENTS = ORDER_EVENTS - INERT_EVENTS
ACTIONABLE_PAYMENT_EVENTS = PAYMENT_EVENTS - INERT_EVENTS
ACTIONABLE_SUBSCRIPTION_EVENTS = SUBSCRIPTION_EVENTS - INERT_EVENTS

# Hints whose answer a recorded PAID (or CANCELED: final) order already gives: "it was paid".
# Refunds, cancellations and updates always look up: they report a change we may not hold yet.
PAYMENT_COMPLETED_EVENTS = frozenset({"order.payment_completed", "payment.completed", "v1.order.PAYMENT"})

# Every name StepPay documents: the only values the EventType metric dimension takes.
KNOWN_EVENTS = ORDER_EVENTS | PAYMENT_EVENTS | SUBSCRIPTION_EVENTS | V1_EVENTS

__all__ = [
    "ACTIONABLE_ORDER_EVENTS",
    "ACTIONABLE_PAYMENT_EVENTS",
    "ACTIONABLE_SUBSCRIPTION_EVENTS",
    "INERT_EVENTS",
    "KNOWN_EVENTS",
    "ORDER_EVENTS",
    "PAYMENT_COMPLETED_EVENTS",
    "PAYMENT_EVENTS",
    "SUBSCRIPTION_EVENTS",
    "V1_EVENTS",
]
