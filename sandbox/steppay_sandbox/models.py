"""The sandbox's own records of orders, payments and subscriptions.

Times are timezone-aware; amounts are ``int`` in the order's currency (KRW has no minor unit).
Records serialise to plain JSON for the optional state file (ISO 8601 times with offsets).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from steppay_sandbox.timeutil import from_iso, to_iso

# Item statuses used here (all from the spec's enum).
CREATED = "CREATED"
DEPOSIT_WAITING = "DEPOSIT_WAITING"
PAID = "PAID"
PAYMENT_FAILURE = "PAYMENT_FAILURE"
CANCELLED = "CANCELLED"
REFUNDED = "CANCELLATION_REFUNDED"
REFUNDED_PARTIALLY = "CANCELLATION_REFUNDED_PARTIALLY"
# Item statuses after which the shopper's chosen quantity is reported (before: 0, as StepPay does).
PAID_STATUSES = frozenset({PAID, REFUNDED, REFUNDED_PARTIALLY})

# Order item types (the spec's enum): SKU is what was ordered; TAX, SHIPPING, FEE and DISCOUNT
# are lines StepPay adds to an order (the order guide's "주문 아이템 타입").
SKU = "SKU"
LINE_TYPES = ("TAX", "SHIPPING", "FEE", "DISCOUNT")

SUBSCRIPTION_STATUSES = (
    "ACTIVE",
    "UNPAID",
    "PENDING_PAUSE",
    "PAUSE",
    "PENDING_CANCEL",
    "EXPIRED",
    "CANCELED",
    "INCOMPLETE",
    "QUEUEING",
)


@dataclass
class OrderItem:
    id: int
    code: str
    product_code: str
    price_code: str
    quantity: int
    minimum_quantity: int
    maximum_quantity: int | None
    currency: str
    unit_price: int
    status: str
    created_at: datetime
    modified_at: datetime
    paid_amount: int = 0
    returned_amount: int = 0
    canceled_at: datetime | None = None
    # A TAX / SHIPPING / FEE / DISCOUNT line (``type`` not SKU) belongs to the SKU item
    # ``parent_item_id``; its amount is ``rate_percent`` of the parent's amount, or
    # ``base_amount`` (per unit of the parent when ``per_unit``). A DISCOUNT's amount is negative.
    type: str = "SKU"
    name: str | None = None
    parent_item_id: int | None = None
    rate_percent: int | None = None
    base_amount: int = 0
    per_unit: bool = False
    # A free trial (the product's demo period): the first payment of this item is 0 won.
    trial_period: int | None = None
    trial_unit: str | None = None

    @property
    def amount(self) -> int:
        return self.unit_price * self.quantity

    @property
    def is_line(self) -> bool:
        return self.type != SKU

    @property
    def reported_quantity(self) -> int:
        """What StepPay reports as ``quantity``: 0 until paid, then the chosen quantity."""
        return self.quantity if self.status in PAID_STATUSES else 0


@dataclass
class Payment:
    """The order's payment attempt (the latest one)."""

    id: int
    status: str  # receipt/webhook status: STANDBY, COMPLETE, FAILED, CANCELED, PARTIAL_CANCELED
    amount: int
    method: str
    gateway: str
    card_number: str | None
    paid_at: datetime | None
    error_code: str | None = None
    error_message: str | None = None
    canceled_at: datetime | None = None
    # A virtual account (paymentMethod VBANK) issued to the shopper: the spec's VBankV1DTO.
    vbank_code: str | None = None
    vbank_name: str | None = None
    vbank_account: str | None = None
    vbank_holder: str | None = None
    vbank_due: datetime | None = None


@dataclass
class OrderLog:
    id: int
    type: str
    content: str
    created_at: datetime


@dataclass
class Order:
    id: int
    code: str
    id_key: str
    type: str
    customer_id: int
    items: list[OrderItem]
    created_at: datetime
    modified_at: datetime
    purchase_deadline: datetime | None = None
    payment_gateway: str | None = None
    payment: Payment | None = None
    payment_date: datetime | None = None
    paid_amount: int = 0
    returned_amount: int = 0
    subscription_ids: list[int] = field(default_factory=list)
    parent_subscription_id: int | None = None
    logs: list[OrderLog] = field(default_factory=list)

    @property
    def amount(self) -> int:
        return sum(item.amount for item in self.items)

    @property
    def discounted_amount(self) -> int:
        """The DISCOUNT lines' total, as a positive amount (``discountedAmount``)."""
        return -sum(item.amount for item in self.items if item.type == "DISCOUNT")

    @property
    def is_deposit_waiting(self) -> bool:
        return any(item.status == DEPOSIT_WAITING for item in self.items)

    @property
    def currency(self) -> str:
        return self.items[0].currency

    @property
    def is_paid(self) -> bool:
        return self.payment_date is not None

    @property
    def is_cancelled(self) -> bool:
        return all(item.status in (CANCELLED, REFUNDED) for item in self.items)

    @property
    def left_amount(self) -> int:
        """What is still to be paid (0 once paid)."""
        return max(self.amount - self.paid_amount, 0)


@dataclass
class SubscriptionItem:
    id: int
    code: str
    product_code: str
    price_code: str
    quantity: int
    unit_price: int
    currency: str


@dataclass
class Subscription:
    id: int
    status: str
    customer_id: int
    price_code: str
    product_code: str
    items: list[SubscriptionItem]
    interval: str
    interval_count: int
    start_date: datetime
    created_at: datetime
    modified_at: datetime
    parent_order_id: int
    last_payment_date: datetime | None = None
    next_payment_date: datetime | None = None
    end_date: datetime | None = None
    paused_at: datetime | None = None
    recurring_count: int = 0
    order_ids: list[int] = field(default_factory=list)  # renewal (RECURRING) orders
    card_number: str | None = None
    gateway: str = "NICE"
    trial_end: datetime | None = None  # a free trial's end (the first renewal's date)

    @property
    def amount(self) -> int:
        return sum(item.unit_price * item.quantity for item in self.items)


# -- (de)serialisation for the state file ------------------------------------------------------

T = TypeVar("T")

_NESTED: dict[tuple[str, str], type[Any]] = {
    ("Order", "items"): OrderItem,
    ("Order", "logs"): OrderLog,
    ("Order", "payment"): Payment,
    ("Subscription", "items"): SubscriptionItem,
}


def dump(record: Any) -> Any:
    """A dataclass record as JSON-ready data (datetimes as ISO 8601 with offset)."""
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return {f.name: dump(getattr(record, f.name)) for f in dataclasses.fields(record)}
    if isinstance(record, list):
        return [dump(value) for value in record]
    if isinstance(record, datetime):
        return to_iso(record)
    return record


def load(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a record written by ``dump``."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name not in data:
            continue
        value = data[f.name]
        nested = _NESTED.get((cls.__name__, f.name))
        if nested is not None and value is not None:
            value = [load(nested, v) for v in value] if isinstance(value, list) else load(nested, value)
        elif "datetime" in str(f.type) and value is not None:
            value = from_iso(value)
        values[f.name] = value
    return cls(**values)
