"""The order state machine, in one table: (state, StepPay's verdict, order kind) -> (new state, event).

Every part that moves an order reads this table and nothing else:

* the payment flows (`steppay.payments`) pick the row for a verdict and an order kind, and do
  nothing when there is none (a failed first payment, say, is the shopper's to retry);
* the store (`steppay.persistence.PaymentStore.record_transition`) writes the new state only
  from the row's `from` states (a conditional write), so one change is recorded exactly once
  however many callers race;
* the outbox (`steppay.events.events_for_order_change`) names the event of a stored change from
  the same row, so a write and its announcement cannot disagree.

docs/ARCHITECTURE.md shows `render_markdown()`'s output; a unit test keeps the two equal, and
another drives every row through the payment flows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from steppay.verdicts import Verdict


class PaymentState(StrEnum):
    PENDING = "PENDING"  # registered, pay link issued, nothing confirmed yet
    PAID = "PAID"  # StepPay confirmed the payment, for what was registered
    MISMATCH = "MISMATCH"  # StepPay took money, but not for what was registered: a person must look
    FAILED = "FAILED"  # StepPay confirmed that the charge failed (renewals)
    CANCELED = "CANCELED"  # a recorded payment was refunded or cancelled at StepPay
    NEEDS_REVIEW = "NEEDS_REVIEW"  # StepPay answered with a value we do not know: a person must look


class OrderKind(StrEnum):
    FIRST = "first"  # ONE_TIME or RECURRING_INITIAL: paid through a checkout the merchant registered
    RENEWAL = "renewal"  # RECURRING: StepPay charged a subscription on its own schedule


RENEWAL_ORDER_TYPE = "RECURRING"  # StepPay's order type for a renewal (steppay.models.OrderType)


def order_kind(order_type: str | None) -> OrderKind:
    return OrderKind.RENEWAL if order_type == RENEWAL_ORDER_TYPE else OrderKind.FIRST


# The events the outbox publishes for order changes (EventBridge detail-types).
PAYMENT_VERIFIED = "Payment Verified"
RENEWAL_PAYMENT_VERIFIED = "Renewal Payment Verified"
RENEWAL_PAYMENT_FAILED = "Renewal Payment Failed"
PAYMENT_CANCELED = "Payment Canceled"
PAYMENT_MISMATCH = "Payment Mismatch"
PAYMENT_NEEDS_REVIEW = "Payment Needs Review"

BOTH = (OrderKind.FIRST, OrderKind.RENEWAL)


@dataclass(frozen=True)
class Transition:
    """One row: a verdict moves an order of these kinds from these states to `to`, announcing `events`."""

    verdict: Verdict | None  # None: not a verdict (the checkout's registration stores the order)
    to: PaymentState
    from_states: tuple[PaymentState, ...]
    from_nothing: bool  # the order may have no record yet (a renewal is first seen paid)
    events: Mapping[OrderKind, str | None]  # the kinds the row applies to, each with its event
    why: str

    def applies_to(self, kind: OrderKind) -> bool:
        return kind in self.events

    def allows(self, before: PaymentState | None) -> bool:
        return self.from_nothing if before is None else before in self.from_states


TRANSITIONS: tuple[Transition, ...] = (
    Transition(
        None,
        PaymentState.PENDING,
        (),
        True,
        {OrderKind.FIRST: None},
        "the merchant's backend registered the checkout; its StepPay order is created unpaid",
    ),
    Transition(
        Verdict.PAID,
        PaymentState.PAID,
        (PaymentState.PENDING, PaymentState.FAILED, PaymentState.NEEDS_REVIEW),
        True,
        {OrderKind.FIRST: PAYMENT_VERIFIED, OrderKind.RENEWAL: RENEWAL_PAYMENT_VERIFIED},
        "StepPay reports the payment, for what was registered (a failed renewal may be paid later; "
        "an order under review is, once StepPay's answer is one we know)",
    ),
    Transition(
        Verdict.MISMATCH,
        PaymentState.MISMATCH,
        (PaymentState.PENDING, PaymentState.FAILED, PaymentState.NEEDS_REVIEW),
        True,
        dict.fromkeys(BOTH, PAYMENT_MISMATCH),
        "StepPay took money for something else than was registered; it stays there (a person decides)",
    ),
    Transition(
        Verdict.FAILED,
        PaymentState.FAILED,
        (PaymentState.PENDING, PaymentState.NEEDS_REVIEW),
        True,
        {OrderKind.RENEWAL: RENEWAL_PAYMENT_FAILED},
        "StepPay could not charge a renewal (a failed first payment records nothing: the shopper retries)",
    ),
    Transition(
        Verdict.CANCELED,
        PaymentState.CANCELED,
        (PaymentState.PAID, PaymentState.NEEDS_REVIEW),
        False,
        dict.fromkeys(BOTH, PAYMENT_CANCELED),
        "a recorded payment was refunded or cancelled at StepPay; it never becomes PAID again",
    ),
    Transition(
        Verdict.NEEDS_REVIEW,
        PaymentState.NEEDS_REVIEW,
        (PaymentState.PENDING, PaymentState.FAILED, PaymentState.PAID),
        True,
        dict.fromkeys(BOTH, PAYMENT_NEEDS_REVIEW),
        "StepPay answered with an order type or item status this bundle does not know: never paid, "
        "never retried in a loop; a paid order too (a new value may hide a refund); alarmed",
    ),
)

# Orders in these states are settled: reconciliation has nothing more to learn about them.
SETTLED_STATES = frozenset({PaymentState.PAID, PaymentState.CANCELED})


def transition_for(verdict: Verdict, kind: OrderKind) -> Transition | None:
    """The row a verdict follows for an order of this kind, or None (nothing is recorded)."""
    for row in TRANSITIONS:
        if row.verdict is verdict and row.applies_to(kind):
            return row
    return None


def transition_into(to: PaymentState, kind: OrderKind) -> Transition:
    """The row that moves an order of this kind into `to` (the store writes only through one)."""
    for row in TRANSITIONS:
        if row.to is to and row.applies_to(kind):
            return row
    raise ValueError(f"no transition into {to} for a {kind} order")


def event_for(before: PaymentState | None, after: PaymentState, kind: OrderKind) -> str | None:
    """The event a stored change stands for: its row's, when the table allows it, else none."""
    if before is after:
        return None
    for row in TRANSITIONS:
        if row.to is after and row.applies_to(kind) and row.allows(before):
            return row.events[kind]
    return None


def render_markdown() -> str:
    """The table as docs/ARCHITECTURE.md shows it."""
    lines = ["| from | StepPay says | order kind | to | event | why |", "|" + " --- |" * 6]
    for row in TRANSITIONS:
        starts = (["none"] if row.from_nothing else []) + [state.value for state in row.from_states]
        says = f"`{row.verdict.value}`" if row.verdict is not None else "(registration)"
        for kind, event in row.events.items():
            shown = f"`{event}`" if event else "none"
            cells = (" / ".join(starts), says, kind.value, row.to.value, shown, row.why)
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


__all__ = [
    "PAYMENT_CANCELED",
    "PAYMENT_MISMATCH",
    "PAYMENT_NEEDS_REVIEW",
    "PAYMENT_VERIFIED",
    "RENEWAL_ORDER_TYPE",
    "RENEWAL_PAYMENT_FAILED",
    "RENEWAL_PAYMENT_VERIFIED",
    "SETTLED_STATES",
    "TRANSITIONS",
    "OrderKind",
    "PaymentState",
    "Transition",
    "event_for",
    "order_kind",
    "render_markdown",
    "transition_for",
    "transition_into",
]
