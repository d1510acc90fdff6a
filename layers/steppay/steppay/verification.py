"""The payment verification rules: what StepPay's order detail says about a claimed payment.

One function, `verify_payment(claim, order)`. The claim is what a caller says (order code, maybe
the order id) together with the registration the merchant's backend made (`POST /checkouts`);
the order is StepPay's answer. Verdicts, decided in this order (first match wins):

1. MISMATCH: the order is not the one claimed (code or id differ), or, once StepPay reports a
   payment, it is not what was registered: another customer, other product or price codes, a
   quantity outside the registered `[quantity, maxQuantity]`, another currency, or a charged
   amount other than StepPay's own total for those lines (and than `expectedAmount`, when the
   merchant gave one). A mismatched order never counts as paid, whatever else it says.
2. NEEDS_REVIEW: StepPay's answer carries an order type or item status this bundle does not
   know (StepPay added it later). It is never read as paid, never guessed at and never retried
   in a loop: the order is recorded as NEEDS_REVIEW, announced and alarmed, for a person to look.
3. CANCELED: any refund (`returnedAmount > 0`) or any item in a cancelled or refund state.
   A refunded order is not paid any more, even with a `paymentDate`.
4. PAID: StepPay's `paymentDate` is set (the guide's rule) and nothing contradicts it: no item
   failed (`PAYMENT_FAILURE`) or is still waiting for a deposit (`DEPOSIT_WAITING`: a virtual
   account issued, not paid). Items in delivery, exchange, return-request or finished states
   are paid orders going on with their life.
5. FAILED: no `paymentDate`, and a failure is reported (an item in `PAYMENT_FAILURE`, or the
   payment's `errorCode` / `errorMessage`).
6. NOT_PAID: anything else (not paid yet; also a `paymentDate` that items contradict, which is
   looked at again later rather than trusted).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from steppay.models import OrderDetail, OrderItemStatus, OrderType
from steppay.persistence import Registration
from steppay.verdicts import Verdict

CANCELED_ITEM_STATES = frozenset(
    {
        OrderItemStatus.CANCELLED,
        OrderItemStatus.CANCELLATION_REFUNDING,
        OrderItemStatus.CANCELLATION_REFUNDED,
        OrderItemStatus.CANCELLATION_REFUNDED_PARTIALLY,
        OrderItemStatus.RETURN_REFUNDING,
        OrderItemStatus.RETURN_REFUNDED,
        OrderItemStatus.RETURN_REFUNDED_PARTIALLY,
    }
)
FAILED_ITEM_STATES = frozenset({OrderItemStatus.PAYMENT_FAILURE})
# States that say "not paid (yet)" even when a paymentDate is present.
UNSETTLED_ITEM_STATES = frozenset({OrderItemStatus.DEPOSIT_WAITING})


def _no_float(value: object) -> object:
    if isinstance(value, float | bool):
        raise ValueError("amounts are Decimal or int, never float")
    return value


ExpectedAmount = Annotated[Decimal, BeforeValidator(_no_float), Field(allow_inf_nan=False)]


class PaymentClaim(BaseModel):
    """What a caller claims: this order (code, and id when the redirect gave one) is paid.

    `expected_amount` / `expected_currency` are what we asked the shopper to pay, when known.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)  # built on first use

    order_code: str
    order_id: int | None = None
    expected_amount: ExpectedAmount | None = None
    expected_currency: str | None = None
    # What the merchant's backend registered; None only for the unit tests of the other rules.
    registration: Registration | None = None
    # A renewal charges some of the registered lines (its subscription's), not all of them.
    renewal: bool = False


class VerificationEvidence(BaseModel):
    """What the verdict was decided from, as StepPay reported it."""

    model_config = ConfigDict(frozen=True, defer_build=True)  # built on first use (cold starts)

    order_code: str
    order_id: int
    order_type: OrderType | str
    paid_amount: Decimal
    returned_amount: Decimal | None
    currency: str | None  # the items' single currency; None when absent or mixed
    payment_date: datetime | None  # timezone-aware
    payment_date_raw: str | None  # StepPay's string as it came
    payment_method: str | None
    payment_gateway: str | None
    error_code: str | None
    error_message: str | None
    item_statuses: tuple[str, ...]
    claimed_order_code: str
    claimed_order_id: int | None
    expected_amount: Decimal | None
    expected_currency: str | None
    reasons: tuple[str, ...]
    # What a paid order disagrees with its registration on (recorded as MISMATCH).
    registration_mismatches: tuple[str, ...] = ()
    # Values we decide with that this bundle does not know (recorded as NEEDS_REVIEW).
    unknown_values: tuple[str, ...] = ()


class VerificationResult(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)  # built on first use (cold starts)

    verdict: Verdict
    evidence: VerificationEvidence

    @property
    def verified(self) -> bool:
        """True only for PAID."""
        return self.verdict is Verdict.PAID

    @property
    def reasons(self) -> tuple[str, ...]:
        return self.evidence.reasons


def _mismatches(claim: PaymentClaim, order: OrderDetail) -> list[str]:
    reasons: list[str] = []
    if order.order_code != claim.order_code:
        reasons.append("StepPay's order code differs from the claimed one")
    if claim.order_id is not None and order.order_id != claim.order_id:
        reasons.append("StepPay's order id differs from the claimed one")
    if claim.expected_currency is not None:
        expected = claim.expected_currency.upper()
        if not order.currencies:
            reasons.append("StepPay reports no currency to compare with the expected one")
        elif order.currencies != {expected}:
            reasons.append("StepPay's currency differs from the expected one")
    # Before payment StepPay reports paidAmount 0, so the amount is compared once it is paid.
    if (
        claim.expected_amount is not None
        and order.payment_date is not None
        and order.paid_amount != claim.expected_amount
    ):
        reasons.append("StepPay's paid amount differs from the expected amount")
    return reasons


def lines_total(order: OrderDetail) -> Decimal | None:
    """StepPay's own total for the order's lines: price x quantity, less its discount.

    None when a line has no price or quantity to multiply (the amount cannot be checked).
    """
    total = Decimal(0)
    for item in order.items:
        if item.price is None or item.price.price is None or item.quantity is None:
            return None
        total += item.price.price * item.quantity
    return total - (order.discounted_amount or Decimal(0))


def registration_mismatches(registration: Registration, order: OrderDetail, *, renewal: bool) -> list[str]:
    """What a paid order disagrees with its registration on (empty: it is what was sold)."""
    reasons: list[str] = []
    customer = order.customer
    if registration.customer_id is not None and (customer is None or customer.id != registration.customer_id):
        reasons.append("customer: StepPay's order is for another customer than registered")
    registered = {(i.product_code, i.price_code): i for i in registration.items}
    charged = {
        (i.product.code if i.product else None, i.price.code if i.price else None): i for i in order.items
    }
    unknown = [f"{p}/{c}" for (p, c) in charged if (p, c) not in registered]
    if unknown:
        reasons.append("items: StepPay charged lines that were not registered: " + ", ".join(sorted(unknown)))
    missing = [f"{p}/{c}" for (p, c) in registered if (p, c) not in charged]
    if missing and not renewal:
        reasons.append("items: registered lines missing from StepPay's order: " + ", ".join(sorted(missing)))
    for key, item in charged.items():
        line = registered.get(key)  # type: ignore[arg-type]
        if line is None:
            continue
        low, high = line.quantity_bounds
        if item.quantity is None or not low <= item.quantity <= high:
            reasons.append(f"quantity: {key[0]}/{key[1]} charged {item.quantity}, registered {low}..{high}")
        if item.currency != line.currency:
            reasons.append(
                f"currency: {key[0]}/{key[1]} charged in {item.currency}, registered {line.currency}"
            )
    total = lines_total(order)
    if total is None:
        reasons.append("amount: StepPay's lines carry no price or quantity to check the charge against")
    elif order.paid_amount != total:
        reasons.append(f"amount: charged {order.paid_amount}, StepPay's lines total {total}")
    if (
        registration.expected_amount is not None
        and not renewal
        and order.paid_amount != registration.expected_amount
    ):
        reasons.append(
            f"amount: charged {order.paid_amount}, the merchant expected {registration.expected_amount}"
        )
    return reasons


def verify_payment(claim: PaymentClaim, order: OrderDetail) -> VerificationResult:
    """Decide what StepPay's order detail says about the claim (see the module docstring)."""
    statuses = order.item_statuses
    payment = order.payment
    error_code = payment.error_code if payment is not None else None
    error_message = payment.error_message if payment is not None else None
    returned = order.returned_amount or Decimal(0)

    reasons = _mismatches(claim, order)
    bound: list[str] = []
    if claim.registration is not None and order.payment_date is not None:
        bound = registration_mismatches(claim.registration, order, renewal=claim.renewal)
    unknown = order.unknown_values
    if reasons or bound:
        verdict = Verdict.MISMATCH
        reasons += bound
    elif unknown:
        verdict = Verdict.NEEDS_REVIEW
        reasons.append("StepPay reports values this bundle does not know: " + ", ".join(unknown))
    elif returned > 0 or any(status in CANCELED_ITEM_STATES for status in statuses):
        verdict = Verdict.CANCELED
        if returned > 0:
            reasons.append("StepPay reports a refunded amount")
        if any(status in CANCELED_ITEM_STATES for status in statuses):
            reasons.append("an item is cancelled or refunded")
    elif order.payment_date is not None:
        contradicting = [s for s in statuses if s in FAILED_ITEM_STATES | UNSETTLED_ITEM_STATES]
        if contradicting:
            verdict = Verdict.NOT_PAID
            reasons.append("paymentDate is set but an item is " + ", ".join(sorted(set(contradicting))))
        else:
            verdict = Verdict.PAID
            reasons.append("StepPay reports a paymentDate")
            if error_code or error_message:
                reasons.append("an earlier payment error is reported, but the payment completed")
    elif any(status in FAILED_ITEM_STATES for status in statuses) or error_code or error_message:
        verdict = Verdict.FAILED
        reasons.append("StepPay reports a failed payment")
    else:
        verdict = Verdict.NOT_PAID
        reasons.append("StepPay reports no paymentDate")

    evidence = VerificationEvidence(
        order_code=order.order_code,
        order_id=order.order_id,
        order_type=order.type,
        paid_amount=order.paid_amount,
        returned_amount=order.returned_amount,
        currency=order.currency,
        payment_date=order.payment_date,
        payment_date_raw=order.payment_date_raw,
        payment_method=payment.payment_method if payment is not None else None,
        payment_gateway=payment.payment_gateway if payment is not None else None,
        error_code=error_code,
        error_message=error_message,
        item_statuses=tuple(str(s) for s in statuses),
        claimed_order_code=claim.order_code,
        claimed_order_id=claim.order_id,
        expected_amount=claim.expected_amount,
        expected_currency=claim.expected_currency,
        reasons=tuple(reasons),
        registration_mismatches=tuple(bound),
        unknown_values=unknown,
    )
    return VerificationResult(verdict=verdict, evidence=evidence)


__all__ = [
    "CANCELED_ITEM_STATES",
    "FAILED_ITEM_STATES",
    "UNSETTLED_ITEM_STATES",
    "PaymentClaim",
    "Verdict",
    "VerificationEvidence",
    "VerificationResult",
    "lines_total",
    "registration_mismatches",
    "verify_payment",
]
