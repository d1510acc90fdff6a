"""The payment verification rules: what StepPay's order detail says about a claimed payment.

One function, `verify_payment(claim, order)`. The claim is what a caller says (order code, maybe
the order id) together with the registration the merchant's backend made (`POST /checkouts`);
the order is StepPay's answer. Verdicts, decided in this order (first match wins):

1. MISMATCH: the order is not the one claimed (code or id differ), or, once StepPay reports a
   payment, it is not what was registered: another customer, other product or price codes (a
   line the merchant did not register that is not one of StepPay's own lines), a quantity
   outside the registered `[quantity, maxQuantity]`, another currency, a charged amount other
   than StepPay's own total for the order (`lines_total`), or, when the shopper kept every
   registered quantity, other than the merchant's `expectedAmount`. A mismatched order never
   counts as paid, whatever else it says.
2. NEEDS_REVIEW: StepPay's answer carries an order type or item status this bundle does not
   know (StepPay added it later). It is never read as paid, never guessed at and never retried
   in a loop: the order is recorded as NEEDS_REVIEW, announced and alarmed, for a person to look.
3. PARTIALLY_REFUNDED: StepPay returned part of the payment, `0 < returnedAmount < paidAmount`
   (StepPay's `paidAmount` stays what was charged; `returnedAmount` is its running total of
   refunds). Decided by the amounts alone: the items' states (`..._REFUNDED_PARTIALLY`, or one
   item of several fully refunded) do not change it. Money is still held, so it is not CANCELED.
4. CANCELED: a refund that leaves nothing (`returnedAmount > 0` and `>= paidAmount`), or, with nothing
   returned, any item in a cancelled or refund state. A refunded order is not paid any more,
   even with a `paymentDate`.
5. PAID: StepPay's `paymentDate` is set (the guide's rule) and nothing contradicts it: no item
   failed (`PAYMENT_FAILURE`) or is still waiting for a deposit (`DEPOSIT_WAITING`: a virtual
   account issued, not paid). Items in delivery, exchange, return-request or finished states
   are paid orders going on with their life.
6. FAILED: no `paymentDate`, and a failure is reported (an item in `PAYMENT_FAILURE`, or the
   payment's `errorCode` / `errorMessage`).
7. NOT_PAID: anything else (not paid yet; also a `paymentDate` that items contradict, which is
   looked at again later rather than trusted).

What an order costs (the one pricing rule, used at registration and at payment):

* StepPay's own lines are the items whose `type` is TAX, SHIPPING, FEE or DISCOUNT (StepPay's
  `OrderItemV1DTO.type`; its order guide's item types): StepPay adds them to an order of a price,
  the merchant never registers them. Every other item (SKU, OFFLINE, ADDS, INSTANT, no type, a
  type added later) is an ordered item and must be a registered product/price line.
* An ordered item costs StepPay's price x its quantity; a free trial's first payment (an item
  with StepPay's `demoCycle` on the subscription's initial order) costs 0.
* A TAX, SHIPPING or FEE line costs what StepPay charged for it (its `paidAmount`, known once
  paid). StepPay's discount is the order's `discountedAmount` (its DISCOUNT lines itemise it, a
  first-sale price among them), taken off once.
* `expectedAmount` is what StepPay must price the registered quantities at: checked when the
  order is created (`registered_total`) and, at payment, against the charge when the shopper kept
  every registered quantity. A quantity the shopper chose within the bounds changes the price
  (tax and per-unit discounts with it), so then the charge must equal StepPay's own total only.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from steppay.models import OrderDetail, OrderItem, OrderItemStatus, OrderType
from steppay.persistence import RegisteredItem, Registration
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
# The lines StepPay adds to an order itself (OrderItemV1DTO.type); never registered by a merchant.
DISCOUNT_LINE = "DISCOUNT"
STEPPAY_LINE_TYPES = frozenset({"TAX", "SHIPPING", "FEE", DISCOUNT_LINE})


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


LineKey = tuple[str | None, str | None]


def is_steppay_line(item: OrderItem) -> bool:
    """One of StepPay's own lines (tax, shipping, fee, discount): StepPay adds it, nobody registers it.

    Told by the item's `type` alone: any other type is an ordered item, so a line StepPay could
    not justify (an OFFLINE or ADDS item, a type it adds later) still has to be registered.
    """
    return item.type in STEPPAY_LINE_TYPES


def line_key(item: OrderItem) -> LineKey:
    return (item.product.code if item.product else None, item.price.code if item.price else None)


def is_free_trial(item: OrderItem, order: OrderDetail) -> bool:
    """The first payment of a free trial: StepPay charges the item 0.

    Only on the subscription's initial order: renewals pay the full price, so a `demoCycle` on
    any other order prices nothing away (and its charge would be judged MISMATCH).
    """
    return item.demo_cycle is not None and order.type is OrderType.RECURRING_INITIAL


def item_price(item: OrderItem, order: OrderDetail, quantity: int | None) -> Decimal | None:
    """StepPay's price of an ordered item at `quantity`; None when there is nothing to multiply."""
    if is_free_trial(item, order):
        return Decimal(0)
    if item.price is None or item.price.price is None or quantity is None:
        return None
    return item.price.price * quantity


def line_amount(item: OrderItem) -> Decimal | None:
    """What StepPay charged for one line (its `paidAmount`), a DISCOUNT's as a negative amount.

    StepPay publishes no sign for a discount line's amount; negative whatever it sends, so the
    lines of an order always add up to its charge.
    """
    if item.paid_amount is None:
        return None
    return -abs(item.paid_amount) if item.type == DISCOUNT_LINE else item.paid_amount


def order_discount(order: OrderDetail) -> Decimal:
    """StepPay's discount: the order's `discountedAmount`, else what its DISCOUNT lines took off."""
    if order.discounted_amount is not None:
        return order.discounted_amount
    return sum((abs(i.paid_amount or Decimal(0)) for i in order.items if i.type == DISCOUNT_LINE), Decimal(0))


def lines_total(order: OrderDetail) -> Decimal | None:
    """StepPay's own total for the order as charged: what the charge must equal.

    Each ordered item's price x its charged quantity (0 for a free trial's first payment), plus
    what StepPay charged for its TAX, SHIPPING and FEE lines, less its discount (its DISCOUNT
    lines itemise `discountedAmount`, so they are not counted again). None when an item has no
    price or quantity, or a line no amount: the charge cannot be checked.
    """
    total = Decimal(0)
    for item in order.items:
        if item.type == DISCOUNT_LINE:
            continue
        amount = item.paid_amount if is_steppay_line(item) else item_price(item, order, item.quantity)
        if amount is None:
            return None
        total += amount
    return total - order_discount(order)


def _priced_by_steppay_alone(order: OrderDetail) -> bool:
    """Before payment, does the order carry a line whose amount only StepPay's own total knows?

    StepPay reports a line's amount as its `paidAmount`, so tax, shipping and fee lines (and
    discount lines without a `discountedAmount`) show 0 until the order is paid.
    """
    return any(
        is_steppay_line(item) and (item.type != DISCOUNT_LINE or order.discounted_amount is None)
        for item in order.items
    )


def registered_total(order: OrderDetail, registration: Registration) -> Decimal | None:
    """What StepPay prices a new (unpaid) order at for the registered quantities.

    This is what `expectedAmount` must be. The items are priced at the registration's quantities,
    not StepPay's (before payment StepPay reports quantity 0); a free trial at 0; StepPay's
    discount taken off. An order carrying tax, shipping or fee lines is priced by StepPay's own
    `leftAmount` (what is left to pay: the whole order, lines included, before payment), the one
    figure that has their amounts then. None when an item is not registered (or a registered one
    is missing) or has no price, or when no figure prices StepPay's lines: such an order cannot be
    registered.
    """
    registered = _registered_lines(registration)
    ordered = _ordered(order)
    if _foreign_lines(registration, order) or set(registered) - set(ordered):
        return None
    total = Decimal(0)
    for key, item in ordered.items():
        amount = item_price(item, order, registered[key].quantity)
        if amount is None:
            return None
        total += amount
    if _priced_by_steppay_alone(order):
        return order.left_amount
    return total - order_discount(order)


def _registered_lines(registration: Registration) -> dict[LineKey, RegisteredItem]:
    return {(i.product_code, i.price_code): i for i in registration.items}


def _ordered(order: OrderDetail) -> dict[LineKey, OrderItem]:
    """The ordered items (not StepPay's own lines), by product and price code."""
    return {line_key(i): i for i in order.items if not is_steppay_line(i)}


def _foreign_lines(registration: Registration, order: OrderDetail) -> list[str]:
    """The order's lines that nothing registered justifies.

    An ordered item must be a registered product/price line. One of StepPay's own lines needs no
    registration, but when it names a product or price it must be a registered one (it belongs
    to an item that was sold).
    """
    registered = _registered_lines(registration)
    foreign = [f"{p}/{c}" for (p, c) in _ordered(order) if (p, c) not in registered]
    products = {p for p, _ in registered}
    prices = {c for _, c in registered}
    for item in order.items:
        product, price = line_key(item)
        if is_steppay_line(item) and (product not in products | {None} or price not in prices | {None}):
            foreign.append(f"{item.type} line of {product}/{price}")
    return foreign


def kept_registered_quantities(registration: Registration, order: OrderDetail) -> bool:
    """Whether each registered line was charged at its registered quantity (the shopper chose none)."""
    registered = _registered_lines(registration)
    return all(
        item.quantity == registered[key].quantity
        for key, item in _ordered(order).items()
        if key in registered
    )


def _line_reasons(registration: Registration, order: OrderDetail, *, renewal: bool) -> list[str]:
    """Lines added, missing, out of their quantity bounds or in another currency."""
    reasons: list[str] = []
    registered = _registered_lines(registration)
    ordered = _ordered(order)
    unknown = _foreign_lines(registration, order)
    if unknown:
        reasons.append("items: StepPay charged lines that were not registered: " + ", ".join(sorted(unknown)))
    missing = [f"{p}/{c}" for (p, c) in registered if (p, c) not in ordered]
    if missing and not renewal:
        reasons.append("items: registered lines missing from StepPay's order: " + ", ".join(sorted(missing)))
    for key, item in ordered.items():
        line = registered.get(key)
        if line is None:
            continue
        low, high = line.quantity_bounds
        if item.quantity is None or not low <= item.quantity <= high:
            reasons.append(f"quantity: {key[0]}/{key[1]} charged {item.quantity}, registered {low}..{high}")
        if item.currency != line.currency:
            reasons.append(
                f"currency: {key[0]}/{key[1]} charged in {item.currency}, registered {line.currency}"
            )
    currencies = {line.currency for line in registration.items}
    for item in order.items:
        if is_steppay_line(item) and item.currency not in currencies:
            known = ", ".join(sorted(currencies))
            reasons.append(f"currency: a {item.type} line charged in {item.currency}, registered {known}")
    return reasons


def _amount_reasons(registration: Registration, order: OrderDetail, *, renewal: bool) -> list[str]:
    """The charge against StepPay's own total, and against `expectedAmount` when it applies."""
    reasons: list[str] = []
    total = lines_total(order)
    if total is None:
        reasons.append("amount: StepPay's lines carry no price, quantity or amount to check the charge by")
    elif order.paid_amount != total:
        reasons.append(f"amount: charged {order.paid_amount}, StepPay's lines total {total}")
    expected = registration.expected_amount
    if (
        expected is not None
        and not renewal
        and kept_registered_quantities(registration, order)
        and order.paid_amount != expected
    ):
        reasons.append(f"amount: charged {order.paid_amount}, the merchant expected {expected}")
    return reasons


def registration_mismatches(registration: Registration, order: OrderDetail, *, renewal: bool) -> list[str]:
    """What a paid order disagrees with its registration on (empty: it is what was sold)."""
    reasons: list[str] = []
    customer = order.customer
    if registration.customer_id is not None and (customer is None or customer.id != registration.customer_id):
        reasons.append("customer: StepPay's order is for another customer than registered")
    reasons += _line_reasons(registration, order, renewal=renewal)
    reasons += _amount_reasons(registration, order, renewal=renewal)
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
    elif 0 < returned < order.paid_amount:
        verdict = Verdict.PARTIALLY_REFUNDED
        reasons.append(f"StepPay reports {returned} of {order.paid_amount} returned (a partial refund)")
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
    "STEPPAY_LINE_TYPES",
    "UNSETTLED_ITEM_STATES",
    "PaymentClaim",
    "Verdict",
    "VerificationEvidence",
    "VerificationResult",
    "is_free_trial",
    "is_steppay_line",
    "item_price",
    "kept_registered_quantities",
    "line_amount",
    "lines_total",
    "registered_total",
    "registration_mismatches",
    "verify_payment",
]
