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
from decimal import Decimal
from enum import StrEnum

from steppay.verdicts import Verdict


class PaymentState(StrEnum):
    PENDING = "PENDING"  # registered, pay link issued, nothing confirmed yet
    PAID = "PAID"  # StepPay confirmed the payment, for what was registered
    MISMATCH = "MISMATCH"  # StepPay took money, but not for what was registered: a person must look
    FAILED = "FAILED"  # StepPay confirmed that the charge failed (renewals)
    # StepPay returned part of a recorded payment (0 < returnedAmount < paidAmount); more may follow
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    CANCELED = "CANCELED"  # a recorded payment was refunded in full or cancelled at StepPay
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
PAYMENT_REFUNDED = "Payment Refunded"
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
    # From these of `from_states`, the move also needs StepPay's running `returnedAmount` to be
    # larger than the recorded one (a refund row: a stale or repeated lookup records nothing).
    grows_from: tuple[PaymentState, ...] = ()

    def applies_to(self, kind: OrderKind) -> bool:
        return kind in self.events

    def allows(self, before: PaymentState | None) -> bool:
        return self.from_nothing if before is None else before in self.from_states

    def permits(
        self, before: PaymentState | None, recorded_returned: Decimal | None, returned: Decimal | None
    ) -> bool:
        """`allows`, and, from a `grows_from` state, only a larger returned amount than recorded."""
        if not self.allows(before):
            return False
        if before in self.grows_from:
            return (returned or Decimal(0)) > (recorded_returned or Decimal(0))
        return True


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
        Verdict.PARTIALLY_REFUNDED,
        PaymentState.PARTIALLY_REFUNDED,
        (PaymentState.PAID, PaymentState.PARTIALLY_REFUNDED, PaymentState.NEEDS_REVIEW),
        False,
        dict.fromkeys(BOTH, PAYMENT_REFUNDED),
        "StepPay returned part of a recorded payment (0 < returnedAmount < paidAmount); each later "
        "partial refund is another move, recorded only when returnedAmount grows",
        grows_from=(PaymentState.PARTIALLY_REFUNDED,),
    ),
    Transition(
        Verdict.CANCELED,
        PaymentState.CANCELED,
        (PaymentState.PAID, PaymentState.PARTIALLY_REFUNDED, PaymentState.NEEDS_REVIEW),
        False,
        dict.fromkeys(BOTH, PAYMENT_CANCELED),
        "a recorded payment was refunded in full (the refund that empties it, at once or after partial "
        "ones) or cancelled at StepPay; it never becomes PAID again",
        grows_from=(PaymentState.PARTIALLY_REFUNDED,),
    ),
    Transition(
        Verdict.NEEDS_REVIEW,
        PaymentState.NEEDS_REVIEW,
        (PaymentState.PENDING, PaymentState.FAILED, PaymentState.PAID, PaymentState.PARTIALLY_REFUNDED),
        True,
        dict.fromkeys(BOTH, PAYMENT_NEEDS_REVIEW),
        "StepPay answered with an order type or item status this bundle does not know: never paid, "
        "never retried in a loop; a paid order too (a new value may hide a refund); alarmed",
    ),
)

# Orders in these states are settled (paid, maybe refunded since): no first payment can change
# them; StepPay's settled-orders index holds them. Only a refund (or a new value) still moves a
# PAID or PARTIALLY_REFUNDED one, which reconciliation's refund lists find.
SETTLED_STATES = frozenset({PaymentState.PAID, PaymentState.PARTIALLY_REFUNDED, PaymentState.CANCELED})
# The states a refund leaves an order in (its record carries StepPay's running returnedAmount).
REFUNDED_STATES = frozenset({PaymentState.PARTIALLY_REFUNDED, PaymentState.CANCELED})


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


def event_for(
    before: PaymentState | None,
    after: PaymentState,
    kind: OrderKind,
    *,
    returned_before: Decimal | None = None,
    returned_after: Decimal | None = None,
) -> str | None:
    """The event a stored change stands for: its row's, when the table allows it, else none.

    A write that leaves the state as it was stands for nothing, except a row's move from its own
    state when the returned amount grew (a later partial refund).
    """
    for row in TRANSITIONS:
        if row.to is not after or not row.applies_to(kind):
            continue
        if before is after and before not in row.grows_from:
            continue
        if row.permits(before, returned_before, returned_after):
            return row.events[kind]
    return None


def render_markdown() -> str:
    """The table as docs/ARCHITECTURE.md shows it."""
    lines = ["| from | StepPay says | order kind | to | event | why |", "|" + " --- |" * 6]
    for row in TRANSITIONS:
        starts = (["none"] if row.from_nothing else []) + [
            f"{state.value} (returnedAmount grows)" if state in row.grows_from else state.value
            for state in row.from_states
        ]
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
    "PAYMENT_REFUNDED",
    "PAYMENT_VERIFIED",
    "REFUNDED_STATES",
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
